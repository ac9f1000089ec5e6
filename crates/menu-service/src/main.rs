//! `menu-service`: loads settings, sets up logs, runs until SIGTERM or Ctrl-C.

#[global_allocator]
static ALLOCATOR: service_kit::Allocator = service_kit::Allocator;

/// Menus and their items; publishes menu-events.
#[derive(Debug, clap::Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    settings: service_kit::Settings,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli: Cli = clap::Parser::parse();
    service_kit::service::run(menu_service::build(&cli.settings)).await
}
