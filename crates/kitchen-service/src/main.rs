//! `kitchen-service`: loads settings, sets up logs, runs until SIGTERM or Ctrl-C.

service_kit::service_main!(kitchen_service::KitchenSettings, kitchen_service::build);
