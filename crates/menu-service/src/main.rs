//! `menu-service`: loads settings, sets up logs, runs until SIGTERM or Ctrl-C.

service_kit::service_main!(service_kit::service::NoSettings, |settings, _| menu_service::build(settings));
