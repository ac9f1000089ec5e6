//! The kitchen service from the outside: HTTP and commands in, rows and
//! stream entries out; and its store against PostgreSQL directly.

mod store;
