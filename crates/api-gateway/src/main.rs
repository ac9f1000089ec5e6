//! `api-gateway`: loads settings, sets up logs, runs until SIGTERM or Ctrl-C.

use api_gateway::{Application, GatewaySettings};
use clap::Parser;
use tokio_util::sync::CancellationToken;

/// The proxy allocates and frees small buffers on every request; mimalloc
/// does that with less CPU than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The platform's single entry point.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    settings: GatewaySettings,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    service_kit::telemetry::init();
    let application = Application::build(&cli.settings).await?;
    let cancel = CancellationToken::new();
    tokio::spawn(service_kit::shutdown::cancel_on_signal(cancel.clone()));
    application.run_until_stopped(cancel).await
}
