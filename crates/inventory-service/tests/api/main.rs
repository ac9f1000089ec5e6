//! The inventory service from the outside: HTTP and commands in, rows and
//! stream entries out; and its store against PostgreSQL directly.

mod chain;
mod commands;
mod helpers;
mod ingredients;
mod recipes;
mod store;
mod storm;
