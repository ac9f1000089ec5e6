//! The order service: orders placed against its own view of the menus
//! (learnt from `menu-events`, [`menu_view`]), published as `order-events`.
//!
//! An order's status follows one function ([`domain::transition`]). The
//! writes ([`service`]) are functions the saga wiring extends: placing and
//! cancelling take a [`service::Hook`] run in the same transaction (where the
//! CreateOrder and CancelOrder sagas start), and the steps the sagas drive
//! ([`service::approve`], [`service::reject`], …) run inside the saga's
//! transaction and return the event to append. Staff and guests use the API
//! in [`http`]; the tables are in [`store`] ([`MIGRATIONS`]).

pub mod dine_in;
pub mod domain;
pub mod error;
pub mod http;
pub mod manage_token;
pub mod menu_view;
pub mod saga_api;
pub mod sagas;
pub mod service;
pub mod store;

use anyhow::Context;
use service_kit::Settings;
pub use service_kit::service::Application;
use service_kit::service::{Blueprint, Builder};

/// What the service is: its catalog entry and its tables. Its name is also
/// its consumer group on `menu-events`.
pub static BLUEPRINT: Blueprint = Blueprint { entry: service_kit::catalog::ORDER, migrations: &MIGRATIONS };

/// The service's tables: orders and its view of the menus.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How the order's sagas wait for the inventory and the kitchen.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct OrderSettings {
    /// How long a saga step waits for its participant's reply before the
    /// command is sent again, in milliseconds.
    #[arg(long, env = "SAGA_STEP_DEADLINE_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub saga_step_deadline_ms: u64,
    /// How often a step is sent again before the saga compensates (or,
    /// compensating, is left stuck for an operator).
    #[arg(long, env = "SAGA_STEP_RETRIES", default_value_t = 3)]
    pub saga_step_retries: u32,
    /// How often the deadlines of saga steps are checked, in milliseconds.
    #[arg(long, env = "SAGA_SWEEP_INTERVAL_MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub saga_sweep_interval_ms: u64,
}

impl Default for OrderSettings {
    fn default() -> Self {
        Self { saga_step_deadline_ms: 5000, saga_step_retries: 3, saga_sweep_interval_ms: 500 }
    }
}

impl OrderSettings {
    /// The saga steps' deadline and retries.
    pub fn timing(&self) -> sagas::Timing {
        sagas::Timing {
            deadline: std::time::Duration::from_millis(self.saga_step_deadline_ms),
            retries: self.saga_step_retries,
        }
    }
}

/// The order service with its sagas: placing an order starts CreateOrder,
/// asking to cancel starts CancelOrder; the replies of the inventory and the
/// kitchen (`inventory-events`, `kitchen-events`) drive them and the orders,
/// a seated party's pre-order (`reservation-events`) opens its dine-in order,
/// a sweep re-sends what is not answered in time, and operators see and act
/// on the sagas at `/api/v1/sagas`.
///
/// # Errors
/// As [`build_with`], or the saga tables cannot be migrated.
pub async fn build(settings: &Settings, own: &OrderSettings) -> anyhow::Result<Application> {
    let timing = own.timing();
    let mut service = Builder::new::<events::OrderEvent>(settings, &BLUEPRINT).await?;
    service.migrate(&saga::migrator()).await.context("migrating the saga tables")?;
    service.consume::<events::MenuEvent, _>(menu_view::MenuView);
    let replies = sagas::Replies::new(sagas::definitions(timing));
    service.consume::<events::InventoryEvent, _>(replies.clone());
    service.consume::<events::KitchenEvent, _>(replies);
    service.consume::<events::ReservationEvent, _>(dine_in::SeatedParties::new(sagas::hooks(timing).placed));
    let sweeper =
        saga::Sweeper::new(service.consumer_pool().clone(), service.outbox().clone(), sagas::definitions(timing));
    let interval = std::time::Duration::from_millis(own.saga_sweep_interval_ms);
    service.spawn("saga deadlines", move |cancel| sweeper.run(interval, cancel));
    let operators = saga_api::Sagas::new(service.pool().clone(), service.outbox().clone(), sagas::definitions(timing));
    let orders = service::Orders::new(service.writer(), sagas::hooks(timing));
    let routes = http::router(orders.clone()).merge(saga_api::router(operators));
    let mut api = <http::ApiDoc as utoipa::OpenApi>::openapi();
    api.merge(<saga_api::ApiDoc as utoipa::OpenApi>::openapi());
    Ok(service.serve(routes, api))
}

/// Connects to PostgreSQL (migrating the schema) and Redis, binds the
/// listener, consumes `menu-events` into the menu view, and serves the API,
/// running `hooks` when orders are placed or their cancellation requested.
///
/// # Errors
/// PostgreSQL is unreachable, a migration fails, the port is taken, or no
/// key to verify staff tokens with is usable.
/// (Without sagas: the service's API tests use it to place orders that stay
/// where the test puts them.)
pub async fn build_with(settings: &Settings, hooks: service::Hooks) -> anyhow::Result<Application> {
    let mut service = Builder::new::<events::OrderEvent>(settings, &BLUEPRINT).await?;
    // An order's view shows its sagas, if it has any.
    service.migrate(&saga::migrator()).await.context("migrating the saga tables")?;
    service.consume::<events::MenuEvent, _>(menu_view::MenuView);
    let orders = service::Orders::new(service.writer(), hooks);
    Ok(service.serve(http::router(orders), <http::ApiDoc as utoipa::OpenApi>::openapi()))
}
