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

pub mod domain;
pub mod error;
pub mod http;
pub mod manage_token;
pub mod menu_view;
pub mod service;
pub mod store;

use service_kit::Settings;
pub use service_kit::service::Application;
use service_kit::service::{Blueprint, Builder};

/// What the service is: its catalog entry and its tables. Its name is also
/// its consumer group on `menu-events`.
pub static BLUEPRINT: Blueprint = Blueprint { entry: service_kit::catalog::ORDER, migrations: &MIGRATIONS };

/// The service's tables: orders and its view of the menus.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The order service's own settings: none yet (the saga's deadlines will
/// come here).
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct OrderSettings {}

/// [`build_with`] with hooks that add nothing: orders are placed and stay
/// `approval_pending` until a saga drives them.
///
/// # Errors
/// As [`build_with`].
pub async fn build(settings: &Settings, _own: &OrderSettings) -> anyhow::Result<Application> {
    build_with(settings, service::Hooks::default()).await
}

/// Connects to PostgreSQL (migrating the schema) and Redis, binds the
/// listener, consumes `menu-events` into the menu view, and serves the API,
/// running `hooks` when orders are placed or their cancellation requested.
///
/// # Errors
/// PostgreSQL is unreachable, a migration fails, the port is taken, or no
/// key to verify staff tokens with is usable.
pub async fn build_with(settings: &Settings, hooks: service::Hooks) -> anyhow::Result<Application> {
    let mut service = Builder::new::<events::OrderEvent>(settings, &BLUEPRINT).await?;
    service.consume::<events::MenuEvent, _>(menu_view::MenuView);
    let orders = service::Orders::new(service.writer(), hooks);
    Ok(service.serve(http::router(orders), <http::ApiDoc as utoipa::OpenApi>::openapi()))
}
