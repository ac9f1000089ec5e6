//! The platform's services, in one table: each one's name, port, schema and
//! the paths the gateway sends it.
//!
//! Everything that names the services reads this table or is checked
//! against it: the services' own [`Blueprint`](crate::service::Blueprint)s,
//! the gateway's routes and upstream URLs, `scripts/run` (through
//! `platform-ctl services`), and the Dockerfile and compose file (by the
//! deployment test). A new service is one entry here.

/// One service of the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Its name: its binary, its events' `source`, its consumer group, its
    /// gateway upstream (`menu-service`).
    pub name: &'static str,
    /// The port it listens on unless `SERVER_PORT` says otherwise.
    pub port: u16,
    /// The schema it owns unless `DB_SCHEMA` says otherwise.
    pub schema: &'static str,
    /// The path prefixes the gateway sends it (`/api/v1/menus` and below).
    pub routes: &'static [&'static str],
}

impl Entry {
    /// The environment variable that gives the gateway its URL: `MENU_SERVICE_URL`.
    pub fn url_variable(&self) -> String {
        format!("{}_URL", self.name.to_ascii_uppercase().replace('-', "_"))
    }

    /// Its URL on this machine: `http://127.0.0.1:<port>`.
    pub fn local_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Menus and their items.
pub const MENU: Entry = Entry { name: "menu-service", port: 8081, schema: "menu", routes: &["/api/v1/menus"] };

/// Table reservations.
pub const RESERVATION: Entry = Entry {
    name: "reservation-service",
    port: 8082,
    schema: "reservation",
    routes: &["/api/v1/reservations", "/api/v1/availability", "/api/v1/restaurant"],
};

/// Ingredients, recipes and stock.
pub const INVENTORY: Entry = Entry {
    name: "inventory-service",
    port: 8083,
    schema: "inventory",
    routes: &["/api/v1/ingredients", "/api/v1/recipes", "/api/v1/portions"],
};

/// Kitchen tickets, from the order saga's commands to the pass.
pub const KITCHEN: Entry =
    Entry { name: "kitchen-service", port: 8084, schema: "kitchen", routes: &["/api/v1/tickets"] };

/// Orders, placed through the saga over inventory and kitchen, and the
/// operators' view of the sagas.
pub const ORDER: Entry =
    Entry { name: "order-service", port: 8085, schema: "ordering", routes: &["/api/v1/orders", "/api/v1/sagas"] };

/// Every service behind the gateway, in the order they start.
pub const SERVICES: &[Entry] = &[MENU, RESERVATION, INVENTORY, KITCHEN, ORDER];

/// The gateway: in front of [`SERVICES`], the only port published.
pub const GATEWAY_PORT: u16 = 8080;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_ports_schemas_and_routes_are_each_used_once() {
        let all = |values: Vec<String>| values.len() == values.iter().collect::<HashSet<_>>().len();
        assert!(all(SERVICES.iter().map(|s| s.name.to_owned()).collect()));
        assert!(all(SERVICES.iter().map(|s| s.port.to_string()).chain([GATEWAY_PORT.to_string()]).collect()));
        assert!(all(SERVICES.iter().map(|s| s.schema.to_owned()).collect()));
        assert!(all(SERVICES.iter().flat_map(|s| s.routes.iter().map(|r| (*r).to_owned())).collect()));
    }

    #[test]
    fn the_url_variable_is_the_name_in_capitals() {
        assert_eq!(MENU.url_variable(), "MENU_SERVICE_URL");
        assert_eq!(RESERVATION.url_variable(), "RESERVATION_SERVICE_URL");
        assert_eq!(INVENTORY.local_url(), "http://127.0.0.1:8083");
        assert_eq!(KITCHEN.url_variable(), "KITCHEN_SERVICE_URL");
        assert_eq!(ORDER.url_variable(), "ORDER_SERVICE_URL");
    }
}
