//! The gateway's configuration, from the environment.

use clap::Args;
use std::time::Duration;

/// Where the services are and how to treat requests.
#[derive(Debug, Clone, Args)]
pub struct GatewaySettings {
    /// HTTP port; 0 picks a free one.
    #[arg(long, env = "SERVER_PORT", default_value_t = 8080)]
    pub server_port: u16,
    /// The menu service's base URL.
    #[arg(long, env = "MENU_SERVICE_URL", default_value = "http://127.0.0.1:8081")]
    pub menu_service_url: String,
    /// The reservation service's base URL.
    #[arg(long, env = "RESERVATION_SERVICE_URL", default_value = "http://127.0.0.1:8082")]
    pub reservation_service_url: String,
    /// How long to wait for an upstream's response head before answering 504, in milliseconds.
    #[arg(long, env = "UPSTREAM_TIMEOUT_MS", default_value_t = 10_000)]
    pub upstream_timeout_ms: u64,
    /// How long to wait for a connection to an upstream before answering 503, in milliseconds.
    #[arg(long, env = "UPSTREAM_CONNECT_TIMEOUT_MS", default_value_t = 1_000)]
    pub upstream_connect_timeout_ms: u64,
    /// Requests each worker has in flight to one service at most; more wait
    /// for a turn. A service does most per second with a bounded number of
    /// concurrent requests (its database pool is bounded too).
    #[arg(long, env = "UPSTREAM_MAX_IN_FLIGHT", default_value_t = 32)]
    pub upstream_max_in_flight: usize,
    /// Largest request body forwarded, in bytes; larger ones get 413.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: u64,
    /// Origins allowed by CORS, comma-separated; `*` for any, empty for none.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", default_value = "*")]
    pub cors_allowed_origins: String,
    /// Threads serving requests, each with its own event loop, listening
    /// socket (`SO_REUSEPORT`) and upstream connections; 0 means one per CPU.
    /// One thread proxies several thousand requests a second; give it more
    /// only when the gateway has CPUs the services do not need.
    #[arg(long, env = "GATEWAY_WORKERS", default_value_t = 1)]
    pub workers: usize,
    /// How staff tokens are verified (`AUTH_*`, as for the services).
    #[command(flatten)]
    pub auth: service_kit::auth::AuthSettings,
}

impl GatewaySettings {
    /// Defaults for a gateway in front of services at these URLs, on a free
    /// port, trusting the test key as `Settings::ephemeral` does (tests, benchmarks).
    pub fn for_upstreams(menu_service_url: impl Into<String>, reservation_service_url: impl Into<String>) -> Self {
        Self {
            server_port: 0,
            menu_service_url: menu_service_url.into(),
            reservation_service_url: reservation_service_url.into(),
            upstream_timeout_ms: 10_000,
            upstream_connect_timeout_ms: 1_000,
            upstream_max_in_flight: 32,
            max_body_bytes: 1024 * 1024,
            cors_allowed_origins: "*".to_owned(),
            workers: 1,
            auth: service_kit::auth::AuthSettings::for_tests(),
        }
    }

    /// How many worker threads to run.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        }
    }

    /// The upstream response timeout.
    pub fn upstream_timeout(&self) -> Duration {
        Duration::from_millis(self.upstream_timeout_ms)
    }

    /// The upstream connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.upstream_connect_timeout_ms)
    }
}
