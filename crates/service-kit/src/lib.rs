//! Plumbing every service shares, written once: settings from the
//! environment, staff authentication, telemetry, the PostgreSQL pool and migrations, the Redis
//! client, problem+json errors and extractors, the operational endpoints
//! (`/health`, `/ready`, `/metrics`), request ids, and the one shutdown path.
//!
//! A service is a library with an `Application` that builds from
//! [`Settings`], binds its listener, and runs until a [`CancellationToken`]
//! fires; its `main` only loads settings, sets up telemetry and runs it.
//!
//! [`CancellationToken`]: tokio_util::sync::CancellationToken

#![deny(missing_docs)]

pub mod auth;
pub mod capability;
pub mod catalog;
pub mod clock;
pub mod database;
pub mod extract;
pub mod foundation;
pub mod http;
pub mod idempotency;
pub mod openapi;
pub mod problem;
pub mod service;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
pub mod values;
pub mod write;

pub use problem::Problem;
pub use settings::Settings;

/// The allocator every binary of the platform installs with
/// `#[global_allocator]`. The outbox relay, the consumers and the request
/// paths allocate and free small strings per event and per request; mimalloc
/// does that with less CPU than the system allocator.
pub use mimalloc::MiMalloc as Allocator;
