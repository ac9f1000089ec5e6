//! `api-gateway`: loads settings, sets up logs and traces, runs until SIGTERM or Ctrl-C.

use api_gateway::{Application, GatewaySettings};
use clap::Parser;

#[global_allocator]
static ALLOCATOR: service_kit::Allocator = service_kit::Allocator;

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
    let _telemetry = service_kit::telemetry::init(env!("CARGO_PKG_NAME"))?;
    let application = Application::build(&cli.settings).await?;
    let cancel = service_kit::shutdown::on_signal();
    application.run_until_stopped(cancel).await
}
