//! Configuration from environment variables, named as in the seed.

use clap::Args;
use sqlx::postgres::PgConnectOptions;
use std::time::Duration;

/// Settings every service reads. Flatten into a service's own `clap::Parser`.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// PostgreSQL host.
    #[arg(long, env = "DB_HOST", default_value = "localhost")]
    pub db_host: String,
    /// PostgreSQL port.
    #[arg(long, env = "DB_PORT", default_value_t = 5432)]
    pub db_port: u16,
    /// PostgreSQL user.
    #[arg(long, env = "DB_USERNAME", default_value = "postgres")]
    pub db_username: String,
    /// PostgreSQL password.
    #[arg(long, env = "DB_PASSWORD", default_value = "postgres", hide_env_values = true)]
    pub db_password: String,
    /// The database holding every service's schema.
    #[arg(long, env = "DB_NAME", default_value = "restaurant_platform")]
    pub db_name: String,
    /// The schema this service owns; defaults to the service's own name.
    #[arg(long, env = "DB_SCHEMA")]
    pub db_schema: Option<String>,
    /// Connections in the pool.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 20)]
    pub db_max_connections: u32,
    /// Connections in the second pool, the one event handlers use, so that
    /// they cannot take every connection HTTP requests need.
    #[arg(long, env = "DB_CONSUMER_MAX_CONNECTIONS", default_value_t = 5)]
    pub db_consumer_max_connections: u32,
    /// Longest a statement may run before PostgreSQL cancels it (`statement_timeout`), in milliseconds.
    #[arg(long, env = "DB_STATEMENT_TIMEOUT_MS", default_value_t = 5000)]
    pub db_statement_timeout_ms: u64,
    /// Longest a statement may wait for a lock (`lock_timeout`), in milliseconds.
    #[arg(long, env = "DB_LOCK_TIMEOUT_MS", default_value_t = 2000)]
    pub db_lock_timeout_ms: u64,
    /// Longest a transaction may sit idle before PostgreSQL ends its session
    /// (`idle_in_transaction_session_timeout`), in milliseconds.
    #[arg(long, env = "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", default_value_t = 10_000)]
    pub db_idle_in_transaction_timeout_ms: u64,
    /// Where Redis is.
    #[command(flatten)]
    pub redis: RedisSettings,
    /// HTTP port; 0 picks a free one. Defaults to the service's own port.
    #[arg(long, env = "SERVER_PORT")]
    pub server_port: Option<u16>,
    /// Put in front of every stream name (tests, shared Redis instances).
    #[arg(long, env = "STREAM_PREFIX", default_value = "")]
    pub stream_prefix: String,
    /// Seconds of history each stream keeps for replay, even when every
    /// consumer group has acknowledged it.
    #[arg(long, env = "STREAM_MIN_AGE_SECONDS", default_value_t = 86_400)]
    pub stream_min_age_seconds: u64,
    /// How often, in seconds, the service trims the streams it publishes.
    #[arg(long, env = "STREAM_TRIM_INTERVAL_SECONDS", default_value_t = 10)]
    pub stream_trim_interval_seconds: u64,
    /// A consumer group further behind than this many entries is logged as a warning.
    #[arg(long, env = "STREAM_LAG_WARNING", default_value_t = 10_000)]
    pub stream_lag_warning: u64,
    /// Emergency cap on each stream's length, trimming even entries a group
    /// has not acknowledged (loudly). Unset: no cap, nothing unconsumed is trimmed.
    #[arg(long, env = "STREAM_HARD_CAP")]
    pub stream_hard_cap: Option<u64>,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,
    /// How long, after a shutdown signal, requests in flight and background
    /// tasks (relay, consumers) get in total to finish before they are aborted.
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", default_value_t = 10)]
    pub shutdown_grace_seconds: u64,
    /// How long, in hours, a consuming service remembers which events it
    /// applied: a redelivery within this window is recognised and skipped.
    #[arg(long, env = "INBOX_RETENTION_HOURS", default_value_t = 168)]
    pub inbox_retention_hours: u64,
    /// How long, in hours, an `Idempotency-Key` and its stored reply are kept.
    #[arg(long, env = "IDEMPOTENCY_KEY_TTL_HOURS", default_value_t = 24)]
    pub idempotency_key_ttl_hours: u64,
    /// This instance's consumer name in its consumer groups; defaults to `<host>:<port>`.
    #[arg(long, env = "CONSUMER_NAME")]
    pub consumer_name: Option<String>,
    /// How staff tokens are verified (`AUTH_*`).
    #[command(flatten)]
    pub auth: crate::auth::AuthSettings,
}

/// The size of each pool of [`Settings::ephemeral`].
pub const EPHEMERAL_POOL: u32 = 5;

impl Settings {
    /// Settings for an instance on this machine's PostgreSQL (user and
    /// password `postgres`) and Redis, in `database` and `schema`, with
    /// streams under `stream_prefix`, listening on a free port, trusting the
    /// tokens of `testkit::auth::TestKeys::shared()`
    /// ([`crate::auth::AuthSettings::for_tests`]): what tests and benchmarks start.
    /// Its pools are small ([`EPHEMERAL_POOL`] connections each): tests run
    /// side by side, several services each, within PostgreSQL's default 100
    /// connections; a benchmark sets the sizes it measures.
    pub fn ephemeral(database: &str, schema: &str, stream_prefix: &str) -> Self {
        Self {
            db_host: "127.0.0.1".to_owned(),
            db_port: 5432,
            db_username: "postgres".to_owned(),
            db_password: "postgres".to_owned(),
            db_name: database.to_owned(),
            db_schema: Some(schema.to_owned()),
            db_max_connections: EPHEMERAL_POOL,
            db_consumer_max_connections: EPHEMERAL_POOL,
            db_statement_timeout_ms: 5000,
            db_lock_timeout_ms: 2000,
            db_idle_in_transaction_timeout_ms: 10_000,
            redis: RedisSettings::local(),
            server_port: Some(0),
            stream_prefix: stream_prefix.to_owned(),
            stream_min_age_seconds: 86_400,
            stream_trim_interval_seconds: 10,
            stream_lag_warning: 10_000,
            stream_hard_cap: None,
            max_body_bytes: 64 * 1024,
            shutdown_grace_seconds: 10,
            inbox_retention_hours: 168,
            idempotency_key_ttl_hours: 24,
            consumer_name: None,
            auth: crate::auth::AuthSettings::for_tests(),
        }
    }

    /// Connection options for the service's schema: `search_path` is set to
    /// it, and so are the statement, lock and idle-in-transaction timeouts,
    /// so that no request waits on PostgreSQL without end.
    pub fn database(&self, default_schema: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .host(&self.db_host)
            .port(self.db_port)
            .username(&self.db_username)
            .password(&self.db_password)
            .database(&self.db_name)
            .options([
                ("search_path", self.schema(default_schema).to_owned()),
                ("statement_timeout", self.db_statement_timeout_ms.to_string()),
                ("lock_timeout", self.db_lock_timeout_ms.to_string()),
                ("idle_in_transaction_session_timeout", self.db_idle_in_transaction_timeout_ms.to_string()),
            ])
    }

    /// How long shutdown may take: [`Settings::shutdown_grace_seconds`].
    pub fn shutdown_grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.shutdown_grace_seconds)
    }

    /// How long the inbox keeps its records: [`Settings::inbox_retention_hours`].
    pub fn inbox_retention(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.inbox_retention_hours.saturating_mul(3600))
    }

    /// How long idempotency keys are kept: [`Settings::idempotency_key_ttl_hours`].
    pub fn idempotency_key_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.idempotency_key_ttl_hours.saturating_mul(3600))
    }

    /// The schema the service owns.
    pub fn schema<'a>(&'a self, default_schema: &'a str) -> &'a str {
        self.db_schema.as_deref().unwrap_or(default_schema)
    }

    /// The Redis URL.
    pub fn redis_url(&self) -> String {
        self.redis.url()
    }

    /// How the service trims the streams it publishes.
    pub fn retention(&self) -> events::retention::RetentionConfig {
        events::retention::RetentionConfig {
            min_age: Duration::from_secs(self.stream_min_age_seconds),
            interval: Duration::from_secs(self.stream_trim_interval_seconds),
            lag_warning: self.stream_lag_warning,
            hard_cap: self.stream_hard_cap,
        }
    }

    /// Where the service's streams live.
    pub fn streams(&self) -> events::Streams {
        events::Streams::with_prefix(self.stream_prefix.clone())
    }
}

/// Where Redis is, from the seed's `REDIS_*` variables: what the services and
/// the gateway flatten into their settings.
#[derive(Debug, Clone, Args)]
pub struct RedisSettings {
    /// Redis host.
    #[arg(long, env = "REDIS_HOST", default_value = "localhost")]
    pub redis_host: String,
    /// Redis port.
    #[arg(long, env = "REDIS_PORT", default_value_t = 6379)]
    pub redis_port: u16,
    /// Redis password, empty for none.
    #[arg(long, env = "REDIS_PASSWORD", default_value = "", hide_env_values = true)]
    pub redis_password: String,
    /// Redis database number.
    #[arg(long, env = "REDIS_DB", default_value_t = 0)]
    pub redis_db: i64,
}

impl RedisSettings {
    /// This machine's Redis on its default port, database 0, no password.
    pub fn local() -> Self {
        Self { redis_host: "127.0.0.1".to_owned(), redis_port: 6379, redis_password: String::new(), redis_db: 0 }
    }

    /// The Redis URL.
    pub fn url(&self) -> String {
        let auth = if self.redis_password.is_empty() { String::new() } else { format!(":{}@", self.redis_password) };
        format!("redis://{auth}{}:{}/{}", self.redis_host, self.redis_port, self.redis_db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_timeouts_pool_size_and_shutdown_grace_default_to_the_documented_values() {
        let default_of = testkit::default_of::<Settings>;
        assert_eq!(default_of("db_statement_timeout_ms").as_deref(), Some("5000"));
        assert_eq!(default_of("db_lock_timeout_ms").as_deref(), Some("2000"));
        assert_eq!(default_of("db_idle_in_transaction_timeout_ms").as_deref(), Some("10000"));
        assert_eq!(default_of("db_consumer_max_connections").as_deref(), Some("5"));
        assert_eq!(default_of("shutdown_grace_seconds").as_deref(), Some("10"));

        let ephemeral = Settings::ephemeral("platform_test", "t_schema", "");
        assert_eq!(ephemeral.db_statement_timeout_ms, 5000);
        assert_eq!(ephemeral.db_lock_timeout_ms, 2000);
        assert_eq!(ephemeral.db_idle_in_transaction_timeout_ms, 10_000);
        assert_eq!(ephemeral.db_consumer_max_connections, EPHEMERAL_POOL);
        assert_eq!(ephemeral.shutdown_grace(), std::time::Duration::from_secs(10));
    }

    #[test]
    fn tokens_are_expected_from_the_platform_for_the_platform_with_30_seconds_of_leeway_and_no_key_by_default() {
        let command = Settings::augment_args(clap::Command::new("service"));
        let argument = |env: &str| command.get_arguments().find(|argument| argument.get_env() == Some(env.as_ref()));
        let default_of = |env: &str| {
            argument(env)
                .and_then(|argument| argument.get_default_values().first().cloned())
                .map(|value| value.to_string_lossy().into_owned())
        };
        assert_eq!(default_of("AUTH_ISSUER").as_deref(), Some("restaurant-platform"));
        assert_eq!(default_of("AUTH_AUDIENCE").as_deref(), Some("restaurant-platform"));
        assert_eq!(default_of("AUTH_LEEWAY_SECONDS").as_deref(), Some("30"));
        assert_eq!(default_of("AUTH_JWKS_COOLDOWN_SECONDS").as_deref(), Some("30"));
        for unset in ["AUTH_PUBLIC_KEY_FILE", "AUTH_JWKS_URL"] {
            assert!(argument(unset).is_some(), "{unset} is read");
            assert_eq!(default_of(unset), None, "{unset} has no default");
        }
    }
}
