//! The HTTP/1.1 server: keep-alive connections, `TCP_NODELAY`, connections
//! past the caps closed at once ([`crate::admission`]), and a graceful stop
//! that lets requests in flight finish. Each worker thread
//! runs one of these loops on its own listening socket.

use crate::gateway::Gateway;
use crate::proxy::Peer;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A listening socket on `port` of every interface that other workers can
/// bind too (`SO_REUSEPORT`): the kernel spreads connections over them.
///
/// # Errors
/// The port is taken by a socket without `SO_REUSEPORT`, or the system refuses.
pub fn bind(port: u16) -> std::io::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(std::net::SocketAddr::from(([0, 0, 0, 0], port)))?;
    socket.listen(1024)
}

/// How long a stop waits for open requests.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `gateway` on `listener` until `cancel` fires, then
/// stops accepting and waits up to ten seconds for requests in flight.
pub async fn serve(listener: TcpListener, gateway: Arc<Gateway>, cancel: CancellationToken) {
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(30)).keep_alive(true);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = cancel.cancelled() => break,
        };
        let admitted = match gateway.connection_limits().admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(refused) => {
                metrics::counter!("gateway_connections_refused_total", "cap" => refused.label()).increment(1);
                tracing::debug!(client = %peer.ip(), cap = refused.label(), "connection refused: too many open");
                drop(stream);
                continue;
            }
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "setting TCP_NODELAY failed");
        }
        let gateway = gateway.clone();
        let peer = Peer::new(peer.ip());
        let service = hyper::service::service_fn(move |request| {
            let (gateway, peer) = (gateway.clone(), peer.clone());
            async move { Ok::<_, Infallible>(gateway.handle(request, &peer).await) }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _admitted = admitted;
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection closed with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(DRAIN) => tracing::warn!("connections still open after {DRAIN:?}; stopping anyway"),
    }
}
