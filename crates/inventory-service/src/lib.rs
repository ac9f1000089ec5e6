//! The inventory service: ingredients, recipes and stock. It holds stock for
//! orders (all of an order or nothing, never more than is on hand), and
//! publishes `inventory-events`, including when a menu item sells out or
//! comes back, which the menu service consumes.
//!
//! [`domain`] holds the types and rules, without I/O; [`store`] the SQL,
//! where the guarantees that span concurrent requests and instances live
//! (row locks in a fixed order, and the `CHECK`s of the tables). Staff change
//! the stock through [`http`]; the order saga holds, commits and releases it
//! with `inventory-commands` ([`commands`]); holds nobody decides on lapse
//! ([`expiry`]); and the menu items it may track are learnt from
//! `menu-events` ([`menu_items`]).

pub mod commands;
pub mod domain;
pub mod error;
pub mod expiry;
pub mod http;
pub mod menu_items;
pub mod service;
pub mod store;

use service_kit::Settings;
pub use service_kit::service::Application;
use service_kit::service::{Blueprint, Builder};
use std::time::Duration;

/// What the service is: its catalog entry and its tables. Its name is also
/// its consumer group on `menu-events` and `inventory-commands`.
pub static BLUEPRINT: Blueprint = Blueprint { entry: service_kit::catalog::INVENTORY, migrations: &MIGRATIONS };

/// The service's own tables, to run on its schema after the events crate's.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How the service holds stock, from the environment.
#[derive(Debug, Clone, clap::Args)]
pub struct InventorySettings {
    /// How long stock stays held for an order that neither commits nor
    /// releases it, in minutes.
    #[arg(long, env = "HOLD_EXPIRY_MINUTES", default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=10_080))]
    pub hold_expiry_minutes: u32,
    /// How often lapsed holds are looked for, in milliseconds.
    #[arg(long, env = "HOLD_SWEEP_INTERVAL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub hold_sweep_interval_ms: u64,
}

impl Default for InventorySettings {
    fn default() -> Self {
        Self { hold_expiry_minutes: 15, hold_sweep_interval_ms: 1000 }
    }
}

impl InventorySettings {
    /// How long a hold lasts.
    pub fn hold_expiry(&self) -> chrono::TimeDelta {
        chrono::TimeDelta::minutes(i64::from(self.hold_expiry_minutes))
    }
}

/// Connects to PostgreSQL (migrating the schema) and Redis, binds the
/// listener, and sets up the consumers of `menu-events` and
/// `inventory-commands` and the sweep of lapsed holds.
///
/// # Errors
/// PostgreSQL is unreachable, a migration fails, the port is taken, or no
/// key to verify staff tokens with is usable.
pub async fn build(settings: &Settings, inventory: &InventorySettings) -> anyhow::Result<Application> {
    let mut service = Builder::new::<events::InventoryEvent>(settings, &BLUEPRINT).await?;
    service.consume::<events::MenuEvent, _>(menu_items::MenuItems);
    service.consume::<events::InventoryCommand, _>(commands::Commands::new(inventory.hold_expiry()));
    let sweep = expiry::Sweep::new(service.consumer_pool().clone(), service.outbox().clone());
    let interval = Duration::from_millis(inventory.hold_sweep_interval_ms);
    service.spawn("hold expiry", move |cancel| sweep.run(interval, cancel));
    let inventory = service::Inventory::new(service.pool().clone(), service.outbox().clone());
    Ok(service.serve(http::router(inventory), <http::ApiDoc as utoipa::OpenApi>::openapi()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_settings_are_the_documented_ones() {
        let default_of = testkit::default_of::<InventorySettings>;
        let defaults = InventorySettings::default();
        assert_eq!(default_of("hold_expiry_minutes"), Some(defaults.hold_expiry_minutes.to_string()));
        assert_eq!(default_of("hold_sweep_interval_ms"), Some(defaults.hold_sweep_interval_ms.to_string()));
    }
}
