//! `reservation-service`: loads settings, sets up logs, runs until SIGTERM or Ctrl-C.

use reservation_service::BookingSettings;

#[global_allocator]
static ALLOCATOR: service_kit::Allocator = service_kit::Allocator;

/// Table reservations that never overbook; publishes reservation-events, consumes menu-events.
#[derive(Debug, clap::Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    settings: service_kit::Settings,
    #[command(flatten)]
    booking: BookingSettings,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli: Cli = clap::Parser::parse();
    service_kit::service::run(reservation_service::build(&cli.settings, &cli.booking)).await
}
