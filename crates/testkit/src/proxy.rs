//! A fault-injecting TCP proxy, for tests that need real network faults.
//!
//! A test puts a [`FaultProxy`] between a service and PostgreSQL or Redis,
//! points the service at [`FaultProxy::addr`], and then breaks the network on
//! cue, the same way every run:
//!
//! - [`pause`](FaultProxy::pause) is a partition that drops packets: every
//!   connection stays open but no byte moves in either direction, and new
//!   connections are accepted but not forwarded. Clients see *timeouts*, not
//!   errors. [`resume`](FaultProxy::resume) lets the held bytes flow.
//! - [`cut`](FaultProxy::cut) is the server going away: open connections are
//!   closed (the client reads EOF) and new ones are aborted as soon as they are
//!   accepted (the client sees a reset, as it would see a refusal), until
//!   [`restore`](FaultProxy::restore).
//! - [`reset`](FaultProxy::reset) aborts every open connection with a TCP RST
//!   (`SO_LINGER` 0), so the client sees `ECONNRESET`; new connections are
//!   forwarded as usual.
//!
//! Each accepted connection is a tokio task that connects to the target and
//! copies bytes both ways. Dropping the proxy stops the listener and closes
//! every connection.

use anyhow::Context;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

/// How many bytes one direction of a connection reads at a time.
const BUFFER_SIZE: usize = 16 * 1024;

/// A TCP proxy on `127.0.0.1` that forwards to one target and injects faults on demand.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    /// Cancelled on drop: stops the listener and every connection.
    shutdown: CancellationToken,
}

/// What the listener and the connection tasks share with the handle.
#[derive(Debug)]
struct Shared {
    /// `true` while paused; connections wait for it to turn `false`.
    paused: watch::Sender<bool>,
    registry: Mutex<Registry>,
}

/// The live connections, and whether new ones are refused.
///
/// `cut` lives under the same lock as the connections so that a connection
/// accepted while [`FaultProxy::cut`] runs is either closed by it or refused.
#[derive(Debug, Default)]
struct Registry {
    cut: bool,
    next_id: u64,
    /// How to end each live connection.
    connections: HashMap<u64, oneshot::Sender<Ending>>,
}

/// How a connection is ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// An orderly close: the peer reads EOF.
    Close,
    /// An abort: `SO_LINGER` 0, so the peer gets a TCP RST.
    Reset,
}

impl Shared {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        // The registry stays consistent even if a holder panicked: every change is one map operation.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends every live connection the given way.
    fn end_all(registry: &mut Registry, ending: Ending) {
        for (_, end) in registry.connections.drain() {
            // A connection that already finished has dropped its receiver; nothing to end.
            let _ = end.send(ending);
        }
    }
}

impl FaultProxy {
    /// Listens on `127.0.0.1:0` and forwards every connection to `target`.
    ///
    /// Must be called inside a tokio runtime; the proxy's tasks run on it.
    ///
    /// # Errors
    /// The listening socket could not be bound.
    pub async fn start(target: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.context("binding the fault proxy's listener")?;
        let addr = listener.local_addr().context("reading the fault proxy's address")?;
        let shared = Arc::new(Shared { paused: watch::Sender::new(false), registry: Mutex::new(Registry::default()) });
        let shutdown = CancellationToken::new();
        tokio::spawn(accept_loop(listener, target, Arc::clone(&shared), shutdown.clone()));
        Ok(Self { addr, target, shared, shutdown })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Where the proxy forwards to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Stops every byte in both directions, holding connections open, until [`resume`](Self::resume).
    ///
    /// New connections are accepted but not forwarded (not even connected to
    /// the target) while paused.
    pub fn pause(&self) {
        self.shared.paused.send_replace(true);
    }

    /// Lets bytes flow again, the held ones first.
    pub fn resume(&self) {
        self.shared.paused.send_replace(false);
    }

    /// Closes every open connection and aborts new ones at once, until [`restore`](Self::restore).
    pub fn cut(&self) {
        let mut registry = self.shared.registry();
        registry.cut = true;
        Shared::end_all(&mut registry, Ending::Close);
    }

    /// Accepts and forwards new connections again after [`cut`](Self::cut).
    pub fn restore(&self) {
        self.shared.registry().cut = false;
    }

    /// Aborts every open connection with a TCP RST; new connections are forwarded as usual.
    pub fn reset(&self) {
        Shared::end_all(&mut self.shared.registry(), Ending::Reset);
    }

    /// How many proxied connections are live (including ones held by a pause).
    pub fn connections(&self) -> usize {
        self.shared.registry().connections.len()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let client = match accepted {
            Ok((client, _)) => client,
            Err(error) => {
                // Out of file descriptors and the like: back off rather than spin.
                tracing::warn!(%error, "fault proxy could not accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let ending = {
            let mut registry = shared.registry();
            if registry.cut {
                None
            } else {
                let (end, ending) = oneshot::channel();
                let id = registry.next_id;
                registry.next_id += 1;
                registry.connections.insert(id, end);
                Some((id, ending))
            }
        };
        match ending {
            None => abort(&client),
            Some((id, ending)) => {
                let connection = Connection { id, shared: Arc::clone(&shared) };
                tokio::spawn(connection.serve(client, target, ending, shutdown.clone()));
            }
        }
    }
}

/// One proxied connection; leaves the registry when its task ends.
struct Connection {
    id: u64,
    shared: Arc<Shared>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.registry().connections.remove(&self.id);
    }
}

impl Connection {
    async fn serve(
        self,
        mut client: TcpStream,
        target: SocketAddr,
        ending: oneshot::Receiver<Ending>,
        shutdown: CancellationToken,
    ) {
        let mut upstream = None;
        let paused = self.shared.paused.subscribe();
        let ending = tokio::select! {
            // A dropped sender means the connection was removed from the registry: close it.
            ending = ending => ending.unwrap_or(Ending::Close),
            () = shutdown.cancelled() => Ending::Close,
            forwarded = forward(&mut client, &mut upstream, target, paused) => match forwarded {
                Ok(()) => Ending::Close,
                Err(Fault::Connect(error)) => {
                    tracing::debug!(%error, %target, "fault proxy could not reach its target");
                    // The target refused us: let the client see an abort, as it would without the proxy.
                    Ending::Reset
                }
                Err(Fault::Io(error)) => {
                    tracing::debug!(%error, "fault proxy connection ended");
                    Ending::Close
                }
            },
        };
        if ending == Ending::Reset {
            abort(&client);
            if let Some(upstream) = &upstream {
                abort(upstream);
            }
        }
    }
}

/// Why forwarding stopped.
#[derive(Debug, thiserror::Error)]
enum Fault {
    #[error("connecting to the target")]
    Connect(#[source] std::io::Error),
    #[error("copying bytes")]
    Io(#[from] std::io::Error),
}

/// Connects to `target` once not paused, then copies bytes both ways until both sides are done.
async fn forward(
    client: &mut TcpStream,
    upstream: &mut Option<TcpStream>,
    target: SocketAddr,
    mut paused: watch::Receiver<bool>,
) -> Result<(), Fault> {
    wait_while_paused(&mut paused).await?;
    let upstream = upstream.insert(TcpStream::connect(target).await.map_err(Fault::Connect)?);
    let (client_read, client_write) = client.split();
    let (upstream_read, upstream_write) = upstream.split();
    tokio::try_join!(pump(client_read, upstream_write, paused.clone()), pump(upstream_read, client_write, paused),)?;
    Ok(())
}

/// Copies `from` to `to` until EOF, holding bytes while paused, then shuts `to` down.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    mut paused: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut buffer = vec![0; BUFFER_SIZE];
    loop {
        // Not reading while paused leaves the bytes in the kernel, so the sender's window fills as in a partition.
        wait_while_paused(&mut paused).await?;
        let read = from.read(&mut buffer).await?;
        // A pause that began during the read holds what it returned.
        wait_while_paused(&mut paused).await?;
        if read == 0 {
            return to.shutdown().await;
        }
        to.write_all(&buffer[..read]).await?;
    }
}

async fn wait_while_paused(paused: &mut watch::Receiver<bool>) -> std::io::Result<()> {
    paused
        .wait_for(|paused| !paused)
        .await
        .map(drop)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the fault proxy was dropped"))
}

/// Makes dropping `stream` send a RST instead of a FIN.
fn abort(stream: &TcpStream) {
    if let Err(error) = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO)) {
        tracing::warn!(%error, "fault proxy could not set SO_LINGER; the connection closes with a FIN");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;

    /// Long enough for bytes to cross loopback twice, short enough to keep the tests quick.
    const QUIET: Duration = Duration::from_millis(300);
    const PATIENCE: Duration = Duration::from_secs(5);

    /// Starts a server that echoes every byte back, and returns its address.
    async fn echo_server() -> anyhow::Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        Ok(addr)
    }

    async fn proxy_to_echo() -> anyhow::Result<FaultProxy> {
        FaultProxy::start(echo_server().await?).await
    }

    /// Writes `message` and reads the same number of bytes back within `within`.
    async fn round_trip(stream: &mut TcpStream, message: &[u8], within: Duration) -> anyhow::Result<Vec<u8>> {
        stream.write_all(message).await?;
        let mut echoed = vec![0; message.len()];
        tokio::time::timeout(within, stream.read_exact(&mut echoed)).await.context("no echo in time")??;
        Ok(echoed)
    }

    /// What one read yields within [`PATIENCE`]: `Ok(0)` for EOF.
    async fn read_once(stream: &mut TcpStream) -> anyhow::Result<std::io::Result<usize>> {
        let mut buffer = [0; 64];
        tokio::time::timeout(PATIENCE, stream.read(&mut buffer)).await.context("the read hung")
    }

    async fn connections_become(proxy: &FaultProxy, count: usize) -> anyhow::Result<()> {
        crate::eventually(PATIENCE, &format!("{count} live connections"), || async { Ok(proxy.connections() == count) })
            .await
    }

    #[tokio::test]
    async fn bytes_flow_through_the_proxy_both_ways() -> anyhow::Result<()> {
        let proxy = proxy_to_echo().await?;
        let mut client = TcpStream::connect(proxy.addr()).await?;

        assert_eq!(round_trip(&mut client, b"hello", PATIENCE).await?, b"hello");
        assert_eq!(round_trip(&mut client, b"again", PATIENCE).await?, b"again");
        assert_eq!(proxy.connections(), 1);
        drop(client);
        connections_become(&proxy, 0).await
    }

    #[tokio::test]
    async fn a_paused_proxy_holds_the_bytes_until_it_is_resumed() -> anyhow::Result<()> {
        let proxy = proxy_to_echo().await?;
        let mut client = TcpStream::connect(proxy.addr()).await?;
        round_trip(&mut client, b"warm", PATIENCE).await?;

        proxy.pause();
        let held = round_trip(&mut client, b"held", QUIET).await;
        assert!(held.is_err(), "no echo while paused, got {held:?}");

        proxy.resume();
        let mut echoed = [0; 4];
        tokio::time::timeout(PATIENCE, client.read_exact(&mut echoed)).await??;
        assert_eq!(&echoed, b"held", "the held bytes arrived after resume");
        Ok(())
    }

    #[tokio::test]
    async fn a_connection_made_while_paused_is_forwarded_only_after_resume() -> anyhow::Result<()> {
        let proxy = proxy_to_echo().await?;
        proxy.pause();

        let mut client = tokio::time::timeout(PATIENCE, TcpStream::connect(proxy.addr())).await??;
        let held = round_trip(&mut client, b"early", QUIET).await;
        assert!(held.is_err(), "no echo while paused, got {held:?}");
        assert_eq!(proxy.connections(), 1, "the connection is held open");

        proxy.resume();
        let mut echoed = [0; 5];
        tokio::time::timeout(PATIENCE, client.read_exact(&mut echoed)).await??;
        assert_eq!(&echoed, b"early");
        Ok(())
    }

    #[tokio::test]
    async fn a_cut_closes_open_connections_and_refuses_new_ones_until_restored() -> anyhow::Result<()> {
        let proxy = proxy_to_echo().await?;
        let mut open = TcpStream::connect(proxy.addr()).await?;
        round_trip(&mut open, b"before", PATIENCE).await?;

        proxy.cut();
        let ended = read_once(&mut open).await?;
        assert!(matches!(ended, Ok(0) | Err(_)), "the open connection ended, got {ended:?}");
        connections_become(&proxy, 0).await?;

        // The proxy may accept the connection before aborting it; either way no byte comes back.
        if let Ok(mut refused) = TcpStream::connect(proxy.addr()).await {
            let _ = refused.write_all(b"anyone?").await;
            let answer = read_once(&mut refused).await?;
            assert!(matches!(answer, Ok(0) | Err(_)), "a new connection was refused, got {answer:?}");
        }
        assert_eq!(proxy.connections(), 0);

        proxy.restore();
        let mut after = TcpStream::connect(proxy.addr()).await?;
        assert_eq!(round_trip(&mut after, b"after", PATIENCE).await?, b"after");
        Ok(())
    }

    #[tokio::test]
    async fn a_reset_aborts_open_connections_and_lets_new_ones_through() -> anyhow::Result<()> {
        let proxy = proxy_to_echo().await?;
        let mut open = TcpStream::connect(proxy.addr()).await?;
        round_trip(&mut open, b"before", PATIENCE).await?;

        proxy.reset();
        let ended = read_once(&mut open).await?;
        assert!(
            matches!(&ended, Err(error) if error.kind() == ErrorKind::ConnectionReset),
            "the peer saw ECONNRESET, got {ended:?}"
        );

        let mut after = TcpStream::connect(proxy.addr()).await?;
        assert_eq!(round_trip(&mut after, b"after", PATIENCE).await?, b"after");
        Ok(())
    }

    #[tokio::test]
    async fn dropping_the_proxy_closes_its_connections_and_its_port() -> anyhow::Result<()> {
        let proxy = proxy_to_echo().await?;
        let addr = proxy.addr();
        let mut open = TcpStream::connect(addr).await?;
        round_trip(&mut open, b"before", PATIENCE).await?;

        drop(proxy);
        let ended = read_once(&mut open).await?;
        assert!(matches!(ended, Ok(0) | Err(_)), "the open connection ended, got {ended:?}");
        crate::eventually(PATIENCE, "the port to refuse connections", || async {
            Ok(TcpStream::connect(addr).await.is_err())
        })
        .await
    }

    #[tokio::test]
    async fn a_pool_behind_a_cut_proxy_fails_its_queries_and_recovers_after_restore() -> anyhow::Result<()> {
        let db = crate::TestDb::new().await?;
        let proxy = FaultProxy::start(crate::postgres_addr().await?).await?;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(2))
            .connect_with(db.options.clone().host("127.0.0.1").port(proxy.port()))
            .await?;
        let answer = || async { sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&pool).await };
        assert_eq!(answer().await?, 1);

        proxy.cut();
        let failed = tokio::time::timeout(PATIENCE, answer()).await.context("the query hung")?;
        assert!(failed.is_err(), "the query failed while cut, got {failed:?}");

        proxy.restore();
        crate::eventually(PATIENCE, "the query to work again", || async {
            Ok(answer().await.is_ok_and(|one| one == 1))
        })
        .await
    }
}
