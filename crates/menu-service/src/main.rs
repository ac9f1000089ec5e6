//! `menu-service`: loads settings, sets up logs, runs until SIGTERM or Ctrl-C.

use clap::Parser;
use menu_service::Application;

#[global_allocator]
static ALLOCATOR: service_kit::Allocator = service_kit::Allocator;

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
    let cancel = service_kit::shutdown::on_signal();
    application.run_until_stopped(cancel).await
}
