//! The one shutdown path: SIGTERM or Ctrl-C cancels a token that the HTTP
//! server, the outbox relay and every consumer watch.

use tokio_util::sync::CancellationToken;

/// A token that SIGTERM or Ctrl-C will cancel: what a `main` hands to its
/// application.
pub fn on_signal() -> CancellationToken {
    let cancel = CancellationToken::new();
    tokio::spawn(cancel_on_signal(cancel.clone()));
    cancel
}

/// Cancels `cancel` on SIGTERM or Ctrl-C; returns when either came or the
/// token was cancelled some other way.
pub async fn cancel_on_signal(cancel: CancellationToken) {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received; shutting down"),
        () = terminate => tracing::info!("SIGTERM received; shutting down"),
        () = cancel.cancelled() => return,
    }
    cancel.cancel();
}
