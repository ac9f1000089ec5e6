//! How this crate's Redis connections notice a peer that went away.
//!
//! A Redis that vanishes without closing its connections (a host that lost
//! power, a network partition) leaves a reader waiting on a socket that never
//! answers. Response deadlines catch that for commands; TCP keepalive probes
//! catch it for a connection that is only waiting, such as a blocking
//! `XREADGROUP`, so that it fails and is reconnected instead of hanging.

use redis::io::tcp::{TcpSettings, socket2::TcpKeepalive};
use std::time::Duration;

/// Idle time before the first keepalive probe, and the time between probes.
const KEEPALIVE: Duration = Duration::from_secs(10);

/// `client` with TCP keepalive on the connections it opens.
///
/// # Errors
/// The client's connection settings cannot be reused (never for a URL the
/// client was opened with).
pub(crate) fn with_keepalive(client: &redis::Client) -> Result<redis::Client, redis::RedisError> {
    let keepalive = TcpKeepalive::new().with_time(KEEPALIVE).with_interval(KEEPALIVE).with_retries(3);
    let settings = TcpSettings::default().set_keepalive(keepalive);
    redis::Client::open(client.get_connection_info().clone().set_tcp_settings(settings))
}
