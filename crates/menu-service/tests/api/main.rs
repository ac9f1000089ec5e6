//! The menu service from the outside: HTTP in, rows and stream entries out.

mod auth;
mod errors;
mod helpers;
mod idempotency;
mod menus;
mod stock;
