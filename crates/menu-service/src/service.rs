//! The write path: every change loads the menu under a row lock, lets the
//! domain decide, and commits the new state together with its events
//! ([`service_kit::write`]).

use crate::domain::{Description, DomainError, Menu, MenuName, NewItem};
use crate::error::Error;
use events::{MenuEvent, MenuId, Outbox};
use service_kit::extract::IfMatch;
use service_kit::idempotency::{Idempotency, Reply};
use service_kit::write::{Request, Writer};
use sqlx::PgPool;

/// Menus and their changes.
#[derive(Debug, Clone)]
pub struct Menus {
    writer: Writer,
}

impl Menus {
    /// Menus stored in `pool`, publishing through `outbox`.
    pub fn new(pool: PgPool, outbox: Outbox) -> Self {
        Self { writer: Writer::new(pool, outbox, crate::BLUEPRINT.name()) }
    }

    /// The pool, for reads.
    pub fn pool(&self) -> &PgPool {
        self.writer.pool()
    }

    /// Creates a draft menu, publishes `MenuCreated`, and answers with the
    /// reply `respond` makes of it. With an idempotency key used before,
    /// nothing is created and the first reply is sent again; the reply to a
    /// new key commits with the menu and its event.
    ///
    /// # Errors
    /// The domain refuses the items, the key is in use or was used for
    /// another request, or the database failed.
    #[tracing::instrument(skip_all)]
    pub async fn create(
        &self,
        name: MenuName,
        description: Option<Description>,
        items: Vec<NewItem>,
        correlation_id: &str,
        key: Option<&Idempotency>,
        respond: impl FnOnce(&Menu) -> Result<Reply, serde_json::Error>,
    ) -> Result<Reply, Error> {
        let (menu, created) = Menu::create(name, description, items, service_kit::write::now())?;
        let id = menu.id;
        let request = Request::new(correlation_id).keyed(key);
        let reply = self.writer.create(menu, created, request, respond).await?;
        tracing::info!(menu_id = %id, "menu created");
        Ok(reply)
    }

    /// Applies `command` to menu `id` and answers with the reply `respond`
    /// makes of the result (see [`Writer::change`]).
    ///
    /// # Errors
    /// No such menu, a stale version, the domain refuses, the key is in use
    /// or was used for another request, or the database failed.
    #[tracing::instrument(skip_all, fields(menu_id = %id))]
    pub async fn change(
        &self,
        id: MenuId,
        if_match: IfMatch,
        correlation_id: &str,
        key: Option<&Idempotency>,
        command: impl FnOnce(&mut Menu) -> Result<Option<MenuEvent>, DomainError>,
        respond: impl FnOnce(&Menu) -> Result<Reply, serde_json::Error>,
    ) -> Result<Reply, Error> {
        let request = Request::new(correlation_id).keyed(key);
        self.writer.change(id, if_match, request, |menu| command(menu).map_err(Error::from), respond).await
    }
}
