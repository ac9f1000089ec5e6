//! The menu service: menus and their items, published as `menu-events`.
//!
//! Every change commits with its event through the transactional outbox, and
//! the service runs its own outbox relay, and the retention that trims
//! `menu-events` below what its consumer groups have acknowledged. It
//! consumes `inventory-events` as group `menu-service`, so that an item that
//! sells out is unavailable until it is back in stock ([`stock`]).

pub mod domain;
pub mod error;
pub mod http;
pub mod service;
pub mod stock;
pub mod store;

use service_kit::Settings;
pub use service_kit::service::Application;
use service_kit::service::{Blueprint, Builder};

/// What the service is: its catalog entry and its tables.
pub static BLUEPRINT: Blueprint = Blueprint { entry: service_kit::catalog::MENU, migrations: &MIGRATIONS };

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connects to PostgreSQL (migrating the schema) and Redis, binds the
/// listener, and sets up the verification of staff tokens.
///
/// # Errors
/// PostgreSQL is unreachable, a migration fails, the port is taken, or no
/// key to verify staff tokens with is configured (or it is unreadable).
pub async fn build(settings: &Settings) -> anyhow::Result<Application> {
    let mut service = Builder::new::<events::MenuEvent>(settings, &BLUEPRINT).await?;
    service.consume::<events::InventoryEvent, _>(stock::StockFollower);
    let menus = service::Menus::new(service.pool().clone(), service.outbox().clone());
    Ok(service.serve(http::router(menus), <http::ApiDoc as utoipa::OpenApi>::openapi()))
}
