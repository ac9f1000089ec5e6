//! The gateway's configuration, from the environment.

use clap::Args;
use service_kit::catalog::{self, Entry};
use std::collections::BTreeMap;
use std::time::Duration;

/// Where the services are and how to treat requests.
#[derive(Debug, Clone, Args)]
pub struct GatewaySettings {
    /// HTTP port; 0 picks a free one.
    #[arg(long, env = "SERVER_PORT", default_value_t = 8080)]
    pub server_port: u16,
    /// Base URLs of services, by name, overriding `<NAME>_URL` from the
    /// environment (`MENU_SERVICE_URL`), whose default is the service's port
    /// on this machine (see [`service_kit::catalog`]).
    #[arg(skip)]
    pub upstream_urls: BTreeMap<&'static str, String>,
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
    /// The Redis where every gateway instance keeps the shared rate-limit budgets.
    #[command(flatten)]
    pub redis: service_kit::settings::RedisSettings,
    /// The rate limits, per client and route class.
    #[command(flatten)]
    pub rate_limits: RateLimitSettings,
    /// How long a client may take to send a small request body in full, and
    /// each part of a larger one, in milliseconds; slower ones get 408.
    #[arg(long, env = "CLIENT_BODY_TIMEOUT_MS", default_value_t = 10_000)]
    pub client_body_timeout_ms: u64,
    /// Request bodies up to this size, in bytes, are read in full before an
    /// upstream slot is taken, so that a client sending slowly holds none.
    #[arg(long, env = "CLIENT_BODY_BUFFER_BYTES", default_value_t = 64 * 1024)]
    pub client_body_buffer_bytes: usize,
    /// Client connections each worker keeps open at most; further ones are
    /// closed at once.
    #[arg(long, env = "MAX_CONNECTIONS_PER_WORKER", default_value_t = 10_000)]
    pub max_connections_per_worker: usize,
    /// Client connections from one address each worker keeps open at most;
    /// further ones are closed at once.
    #[arg(long, env = "MAX_CONNECTIONS_PER_CLIENT", default_value_t = 256)]
    pub max_connections_per_client: usize,
    /// How staff tokens are verified (`AUTH_*`, as for the services).
    #[command(flatten)]
    pub auth: service_kit::auth::AuthSettings,
    /// The services' stream prefix, for the operator API's view of the
    /// streams (in the Redis of `REDIS_*`).
    #[arg(long, env = "STREAM_PREFIX", default_value = "")]
    pub stream_prefix: String,
    /// The services' `STREAM_MIN_AGE_SECONDS`, for the operator API to say
    /// where retention would trim.
    #[arg(long, env = "STREAM_MIN_AGE_SECONDS", default_value_t = 86_400)]
    pub stream_min_age_seconds: u64,
}

/// Rate limits: a GCRA budget per client and route class, `*_PER_MINUTE`
/// requests a minute on average with bursts of up to `*_BURST` at once.
#[derive(Debug, Clone, Args)]
pub struct RateLimitSettings {
    /// Whether requests to the services are rate limited at all.
    #[arg(long, env = "RATE_LIMIT_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub rate_limit_enabled: bool,
    /// Bookings (`POST /api/v1/reservations`) per client per minute.
    #[arg(long, env = "RATE_LIMIT_BOOKING_PER_MINUTE", default_value_t = 10)]
    pub booking_per_minute: u32,
    /// Bookings a client may make at once.
    #[arg(long, env = "RATE_LIMIT_BOOKING_BURST", default_value_t = 5)]
    pub booking_burst: u32,
    /// Other writes (any method but GET, HEAD, OPTIONS) per client per minute.
    #[arg(long, env = "RATE_LIMIT_WRITE_PER_MINUTE", default_value_t = 120)]
    pub write_per_minute: u32,
    /// Other writes a client may make at once.
    #[arg(long, env = "RATE_LIMIT_WRITE_BURST", default_value_t = 30)]
    pub write_burst: u32,
    /// Reads per client per minute.
    #[arg(long, env = "RATE_LIMIT_READ_PER_MINUTE", default_value_t = 1200)]
    pub read_per_minute: u32,
    /// Reads a client may make at once.
    #[arg(long, env = "RATE_LIMIT_READ_BURST", default_value_t = 200)]
    pub read_burst: u32,
    /// Put before every rate-limit key in Redis (tests, shared Redis instances).
    #[arg(long, env = "RATE_LIMIT_KEY_PREFIX", default_value = "ratelimit:")]
    pub key_prefix: String,
    /// How long a rate-limit decision may wait for Redis, in milliseconds,
    /// before the local limiter decides instead.
    #[arg(long, env = "RATE_LIMIT_REDIS_TIMEOUT_MS", default_value_t = 100)]
    pub redis_timeout_ms: u64,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            rate_limit_enabled: true,
            booking_per_minute: 10,
            booking_burst: 5,
            write_per_minute: 120,
            write_burst: 30,
            read_per_minute: 1200,
            read_burst: 200,
            key_prefix: "ratelimit:".to_owned(),
            redis_timeout_ms: 100,
        }
    }
}

impl GatewaySettings {
    /// Defaults for a gateway in front of services at these URLs, on a free
    /// port, with rate limits off (tests that want them turn them on, with a
    /// key prefix of their own), trusting the test key as `Settings::ephemeral`
    /// does (tests, benchmarks).
    /// The menu and reservation services are at the URLs given; the others
    /// at [`Self::with_upstream`]'s, or their defaults.
    pub fn for_upstreams(menu_service_url: impl Into<String>, reservation_service_url: impl Into<String>) -> Self {
        Self {
            server_port: 0,
            upstream_urls: BTreeMap::from([
                (catalog::MENU.name, menu_service_url.into()),
                (catalog::RESERVATION.name, reservation_service_url.into()),
            ]),
            upstream_timeout_ms: 10_000,
            upstream_connect_timeout_ms: 1_000,
            upstream_max_in_flight: 32,
            max_body_bytes: 1024 * 1024,
            cors_allowed_origins: "*".to_owned(),
            workers: 1,
            redis: service_kit::settings::RedisSettings::local(),
            rate_limits: RateLimitSettings { rate_limit_enabled: false, ..RateLimitSettings::default() },
            client_body_timeout_ms: 10_000,
            client_body_buffer_bytes: 64 * 1024,
            max_connections_per_worker: 10_000,
            max_connections_per_client: 256,
            auth: service_kit::auth::AuthSettings::for_tests(),
            stream_prefix: String::new(),
            stream_min_age_seconds: 86_400,
        }
    }

    /// The same settings with the services' streams under `prefix`.
    #[must_use]
    pub fn with_stream_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.stream_prefix = prefix.into();
        self
    }

    /// The same settings with service `name` at `url`.
    #[must_use]
    pub fn with_upstream(mut self, name: &'static str, url: impl Into<String>) -> Self {
        self.upstream_urls.insert(name, url.into());
        self
    }

    /// Where `service` is: as set here, else its `<NAME>_URL`, else on this machine.
    pub fn upstream_url(&self, service: &Entry) -> String {
        self.upstream_urls
            .get(service.name)
            .cloned()
            .or_else(|| std::env::var(service.url_variable()).ok().filter(|url| !url.is_empty()))
            .unwrap_or_else(|| service.local_url())
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

    /// The Redis URL.
    pub fn redis_url(&self) -> String {
        self.redis.url()
    }

    /// Where the services' streams are.
    pub fn streams(&self) -> events::Streams {
        events::Streams::with_prefix(self.stream_prefix.clone())
    }

    /// How long a client may take to send a request body: [`GatewaySettings::client_body_timeout_ms`].
    pub fn client_body_timeout(&self) -> Duration {
        Duration::from_millis(self.client_body_timeout_ms)
    }

    /// The upstream connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.upstream_connect_timeout_ms)
    }
}
