//! The kitchen service from the outside: HTTP and commands in, rows and
//! stream entries out; and its store against PostgreSQL directly.

mod commands;
mod feed;
mod helpers;
mod overdue;
mod store;
mod tickets;
