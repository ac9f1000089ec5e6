//! `platform-ctl`: what an operator asks of the event streams.
//!
//! ```text
//! platform-ctl tail                       # follow menu-events and reservation-events
//! platform-ctl tail menu-events --from-start --count 10
//! platform-ctl groups                     # length, groups, pending, lag, what holds trimming back
//! platform-ctl delete-group menu-events old-service   # retire a group that is gone for good
//! platform-ctl dead-letters menu-events   # what reservation-service gave up on, and why
//! platform-ctl redrive menu-events        # put them back on menu-events, each for its group
//! platform-ctl redrive menu-events --group reservation-service
//! platform-ctl redrive menu-events --entry 1764626400000-0   # one letter, by its id on menu-events.dlq
//! platform-ctl auth init                  # an Ed25519 key pair in ~/.config/restaurant-platform
//! platform-ctl token --scope menus:write --ttl 8h --subject alice
//! platform-ctl services                   # name, port, schema and routes of every service
//! platform-ctl sagas list --status stuck   # the order sagas an operator must look at
//! platform-ctl sagas retry <saga id>        # send its step again; `abort` compensates now
//! ```

mod auth;
mod commands;
mod sagas;

use clap::{Parser, Subcommand};

/// Operator CLI for the platform's event streams and staff tokens.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Redis host.
    #[arg(long, env = "REDIS_HOST", default_value = "127.0.0.1", global = true)]
    redis_host: String,
    /// Redis port.
    #[arg(long, env = "REDIS_PORT", default_value_t = 6379, global = true)]
    redis_port: u16,
    /// Redis password, empty for none.
    #[arg(long, env = "REDIS_PASSWORD", default_value = "", hide_env_values = true, global = true)]
    redis_password: String,
    /// Redis database number.
    #[arg(long, env = "REDIS_DB", default_value_t = 0, global = true)]
    redis_db: i64,
    /// The services' STREAM_PREFIX.
    #[arg(long, env = "STREAM_PREFIX", default_value = "", global = true)]
    stream_prefix: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prints new entries of the streams as they arrive, decoded.
    Tail {
        /// Streams to follow, without prefix; every event stream if none.
        streams: Vec<String>,
        /// Start with the entries already there.
        #[arg(long)]
        from_start: bool,
        /// Stop after this many entries.
        #[arg(long)]
        count: Option<usize>,
    },
    /// Shows each stream's length, dead letters, every consumer group's consumers, pending entries, lag,
    /// oldest pending and last delivered ids, and the group that holds trimming back.
    Groups {
        /// Streams to show, without prefix; every event stream if none.
        streams: Vec<String>,
        /// The services' STREAM_MIN_AGE_SECONDS: history retention keeps whatever the groups say.
        #[arg(long, env = "STREAM_MIN_AGE_SECONDS", default_value_t = 86_400)]
        min_age_seconds: u64,
    },
    /// Deletes a retired consumer group, so that it no longer holds trimming back. Its pending entries
    /// are forgotten; a consumer of it still running would create it again and replay the stream.
    DeleteGroup {
        /// The stream, such as menu-events.
        stream: String,
        /// The group, such as a service that is gone for good.
        group: String,
    },
    /// Lists the dead letters of a stream, oldest first, with their errors.
    DeadLetters {
        /// The stream whose dead letters to list, such as menu-events.
        stream: String,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        count: usize,
    },
    /// Moves dead letters back onto their stream, oldest first, each for the group that gave up on it to handle again.
    Redrive {
        /// The stream whose dead letters to re-drive, such as menu-events.
        stream: String,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        count: usize,
        /// Only the letters of this consumer group.
        #[arg(long, conflicts_with = "entry")]
        group: Option<String>,
        /// Only this one letter: its entry id on the dead-letter stream, as `dead-letters` shows it.
        #[arg(long)]
        entry: Option<String>,
    },
    /// Lists the platform's services, one per line: name, port, schema and
    /// the gateway's path prefixes for it, separated by tabs (what `scripts/run` starts).
    Services,
    /// The order sagas, through the gateway (`GATEWAY_URL`) with a `platform:operate` token.
    Sagas {
        #[command(flatten)]
        operator: sagas::Operator,
        #[command(subcommand)]
        command: sagas::SagaCommand,
    },
    /// The key pair that signs staff tokens.
    Auth {
        #[command(subcommand)]
        command: AuthCommand,
    },
    /// Prints a staff token signed by the key pair of `auth init`.
    Token {
        /// A scope the token carries (repeat for more): menus:write, reservations:manage, inventory:manage,
        /// kitchen:operate, orders:manage, platform:operate.
        #[arg(long = "scope", value_parser = auth::parse_scope)]
        scopes: Vec<service_kit::auth::Scope>,
        /// Every scope there is.
        #[arg(long)]
        all_scopes: bool,
        /// How long it is valid: 8h, 30m, 90s, 2d.
        #[arg(long, default_value = "8h", value_parser = auth::parse_ttl)]
        ttl: std::time::Duration,
        /// Who it names (`sub`).
        #[arg(long, default_value = "operator")]
        subject: String,
        /// Its `iss`; the services' AUTH_ISSUER.
        #[arg(long, env = "AUTH_ISSUER", default_value = service_kit::auth::PLATFORM)]
        issuer: String,
        /// Its `aud`; the services' AUTH_AUDIENCE.
        #[arg(long, env = "AUTH_AUDIENCE", default_value = service_kit::auth::PLATFORM)]
        audience: String,
        /// Where the key pair is; default PLATFORM_AUTH_DIR, else ~/.config/restaurant-platform.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum AuthCommand {
    /// Writes a new Ed25519 key pair as PEM (the private key with mode 0600).
    Init {
        /// Where; default PLATFORM_AUTH_DIR, else $XDG_CONFIG_HOME or ~/.config, /restaurant-platform.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// Replace a key pair that is there (tokens it signed stop working).
        #[arg(long)]
        force: bool,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let password = if cli.redis_password.is_empty() { String::new() } else { format!(":{}@", cli.redis_password) };
    let url = format!("redis://{password}{}:{}/{}", cli.redis_host, cli.redis_port, cli.redis_db);
    let client = redis::Client::open(url)?;
    let streams = events::Streams::with_prefix(cli.stream_prefix);
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Tail { streams: names, from_start, count } => {
            commands::tail(&client, &commands::stream_names(&streams, &names), from_start, count, &mut out).await
        }
        Command::Groups { streams: names, min_age_seconds } => {
            let min_age = std::time::Duration::from_secs(min_age_seconds);
            commands::groups(&client, &commands::stream_names(&streams, &names), min_age, &mut out).await
        }
        Command::DeleteGroup { stream, group } => {
            commands::delete_group(&client, &streams.named(&stream), &group, &mut out).await
        }
        Command::DeadLetters { stream, count } => {
            commands::dead_letters(&client, &streams.named(&stream), count, &mut out).await
        }
        Command::Redrive { stream, entry: Some(entry), .. } => {
            commands::redrive_entry(&client, &streams.named(&stream), &entry, &mut out).await
        }
        Command::Redrive { stream, count, group, entry: None } => {
            commands::redrive(&client, &streams.named(&stream), count, group.as_deref(), &mut out).await
        }
        Command::Services => commands::services(&mut out),
        Command::Sagas { operator, command } => sagas::run(&operator, command, &mut out).await,
        Command::Auth { command: AuthCommand::Init { dir, force } } => {
            auth::init(&auth::key_dir(dir)?, force, &mut out)
        }
        Command::Token { scopes, all_scopes, ttl, subject, issuer, audience, dir } => {
            let scopes = if all_scopes { service_kit::auth::Scope::ALL.to_vec() } else { scopes };
            let request = auth::TokenRequest { subject, scopes, ttl, issuer, audience };
            let token = auth::token(&auth::key_dir(dir)?, &request)?;
            std::io::Write::write_all(&mut out, format!("{token}\n").as_bytes()).map_err(anyhow::Error::from)
        }
    }
}
