//! The inventory service: ingredients, recipes and stock. It holds stock for
//! orders (all of an order or nothing, never more than is on hand), and
//! publishes `inventory-events`, including when a menu item sells out or
//! comes back, which the menu service consumes.
//!
//! [`domain`] holds the types and rules, without I/O; [`store`] the SQL,
//! where the guarantees that span concurrent requests and instances live
//! (row locks in a fixed order, and the `CHECK`s of the tables).

pub mod domain;
pub mod store;

/// The service's own tables, to run on its schema after the events crate's.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
