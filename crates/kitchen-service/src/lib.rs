//! The kitchen service: one ticket per order, from the order saga's
//! `kitchen-commands` to the pass, published as `kitchen-events`.
//!
//! A ticket lists what to cook, line by line, each line on the station that
//! cooks its menu category ([`domain::StationMap`]); the kitchen learns the
//! items' names and categories only from `menu-events` ([`menu_items`]). Its
//! status follows one function ([`domain::transition`]), so that a repeated
//! command or a second click on the kitchen display changes nothing, and a
//! ticket that cooking has started on can no longer be cancelled.
//!
//! [`domain`] holds the rules, without I/O; [`store`] the tables
//! ([`MIGRATIONS`]). The saga's commands are applied by [`commands`], staff
//! work the tickets through [`http`] (and watch them live on its feed), and
//! [`overdue`] announces tickets whose promised time has passed.

pub mod commands;
pub mod domain;
pub mod error;
pub mod feed;
pub mod http;
pub mod menu_items;
pub mod overdue;
pub mod store;

use domain::StationMap;
use service_kit::Settings;
pub use service_kit::service::Application;
use service_kit::service::{Blueprint, Builder};
use std::time::Duration;

/// What the service is: its catalog entry and its tables. Its name is also
/// its consumer group on `menu-events` and `kitchen-commands`.
pub static BLUEPRINT: Blueprint = Blueprint { entry: service_kit::catalog::KITCHEN, migrations: &MIGRATIONS };

/// The service's tables: tickets, their lines, and the menu items it has seen.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The stations of [`KitchenSettings::default`].
pub const DEFAULT_STATIONS: &str = "grill:main,mains,steak,steaks;cold:starter,starters,salad,dessert,desserts";

/// How the kitchen is laid out and swept, from the environment.
#[derive(Debug, Clone, clap::Args)]
pub struct KitchenSettings {
    /// Which station cooks which menu categories: `station:category,…;…`.
    #[arg(long, env = "KITCHEN_STATIONS", default_value = DEFAULT_STATIONS)]
    pub kitchen_stations: String,
    /// The station of items whose category no station lists.
    #[arg(long, env = "KITCHEN_DEFAULT_STATION", default_value = StationMap::DEFAULT_STATION)]
    pub kitchen_default_station: String,
    /// How often overdue tickets are looked for, in milliseconds.
    #[arg(long, env = "OVERDUE_SWEEP_INTERVAL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub overdue_sweep_interval_ms: u64,
}

impl Default for KitchenSettings {
    fn default() -> Self {
        Self {
            kitchen_stations: DEFAULT_STATIONS.to_owned(),
            kitchen_default_station: StationMap::DEFAULT_STATION.to_owned(),
            overdue_sweep_interval_ms: 1000,
        }
    }
}

impl KitchenSettings {
    /// The station map the settings describe.
    ///
    /// # Errors
    /// `KITCHEN_STATIONS` or `KITCHEN_DEFAULT_STATION` cannot be read.
    pub fn stations(&self) -> Result<StationMap, domain::StationSpecError> {
        StationMap::parse(&self.kitchen_stations)?.with_default(&self.kitchen_default_station)
    }
}

/// Reads the station map, connects to PostgreSQL (migrating the schema) and
/// Redis, binds the listener, and sets up the consumers of `menu-events` and
/// `kitchen-commands`, the overdue sweep and the API with its live feed.
///
/// # Errors
/// The station settings are malformed, PostgreSQL is unreachable, a
/// migration fails, the port is taken, or no key to verify staff tokens
/// with is usable.
pub async fn build(settings: &Settings, kitchen: &KitchenSettings) -> anyhow::Result<Application> {
    let stations = kitchen.stations().map_err(|error| anyhow::anyhow!("KITCHEN_STATIONS: {error}"))?;
    tracing::info!(stations = %stations, default = stations.default_station(), "kitchen stations");
    let mut service = Builder::new::<events::KitchenEvent>(settings, &BLUEPRINT).await?;
    service.consume::<events::MenuEvent, _>(menu_items::MenuItems);
    service.consume::<events::KitchenCommand, _>(commands::Commands::new(stations));
    let sweep = overdue::Sweep::new(service.consumer_pool().clone(), service.outbox().clone());
    let interval = Duration::from_millis(kitchen.overdue_sweep_interval_ms);
    service.spawn("overdue sweep", move |cancel| sweep.run(interval, cancel));
    let redis = redis::Client::open(settings.redis.url())?;
    let stream = settings.streams().of::<events::KitchenEvent>();
    let state = http::Kitchen::new(service.writer(), redis, stream);
    Ok(service.serve(http::router(state), <http::ApiDoc as utoipa::OpenApi>::openapi()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_settings_are_the_documented_ones() {
        let default_of = testkit::default_of::<KitchenSettings>;
        let defaults = KitchenSettings::default();
        assert_eq!(default_of("kitchen_stations"), Some(defaults.kitchen_stations.clone()));
        assert_eq!(default_of("kitchen_default_station"), Some(defaults.kitchen_default_station.clone()));
        assert_eq!(default_of("overdue_sweep_interval_ms"), Some(defaults.overdue_sweep_interval_ms.to_string()));
        assert!(defaults.stations().is_ok_and(|stations| stations.station_for(Some("Steaks")) == "grill"));
    }
}
