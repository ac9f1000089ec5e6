//! `inventory-service`: loads settings, sets up logs, runs until SIGTERM or Ctrl-C.

service_kit::service_main!(inventory_service::InventorySettings, inventory_service::build);
