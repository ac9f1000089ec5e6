//! `reservation-service`: loads settings, sets up logs, runs until SIGTERM or Ctrl-C.

service_kit::service_main!(reservation_service::BookingSettings, reservation_service::build);
