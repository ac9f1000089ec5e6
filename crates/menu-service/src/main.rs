//! `menu-service`: loads settings, sets up logs, runs until SIGTERM or Ctrl-C.

use clap::Parser;
use menu_service::Application;
use tokio_util::sync::CancellationToken;

/// The outbox relay and the request path allocate and free small strings per
/// event and per request; mimalloc does that with less CPU than the system
/// allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Menus and their items; publishes menu-events.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    settings: service_kit::Settings,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    service_kit::telemetry::init();
    let application = Application::build(&cli.settings).await?;
    let cancel = CancellationToken::new();
    tokio::spawn(service_kit::shutdown::cancel_on_signal(cancel.clone()));
    application.run_until_stopped(cancel).await
}
