//! `order-service`: loads settings, sets up logs, runs until SIGTERM or Ctrl-C.

service_kit::service_main!(order_service::OrderSettings, order_service::build);
