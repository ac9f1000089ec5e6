//! The kitchen service: one ticket per order, from the order saga's
//! `kitchen-commands` to the pass, published as `kitchen-events`.
//!
//! A ticket lists what to cook, line by line, each line on the station that
//! cooks its menu category ([`domain::StationMap`]); the kitchen learns the
//! items' names and categories only from `menu-events`. Its status follows one
//! function ([`domain::transition`]), so that a repeated command or a second
//! click on the kitchen display changes nothing, and a ticket that cooking has
//! started on can no longer be cancelled.
//!
//! [`domain`] holds the rules, without I/O; [`store`] the tables
//! ([`MIGRATIONS`]). The HTTP API, the command handlers and the overdue sweep
//! build on both.

pub mod domain;
pub mod store;

/// The service's tables: tickets, their lines, and the menu items it has seen.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
