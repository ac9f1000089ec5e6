//! The menu service from the outside: HTTP in, rows and stream entries out.

mod errors;
mod helpers;
mod idempotency;
mod menus;
