//! The write path: every change loads the menu under a row lock, lets the
//! domain decide, and commits the new state together with its events.

use crate::domain::{Description, DomainError, Menu, MenuName, NewItem};
use crate::error::Error;
use crate::store;
use chrono::{SubsecRound, Utc};
use events::{DomainEvent, MenuEvent, MenuId, Metadata, Outbox};
use service_kit::database::StoreError;
use service_kit::extract::IfMatch;
use service_kit::idempotency::{self, Idempotency, Reply};
use sqlx::PgPool;

/// The name events carry as their `source`.
pub const SOURCE: &str = "menu-service";

/// Menus and their changes.
#[derive(Debug, Clone)]
pub struct Menus {
    pool: PgPool,
    outbox: Outbox,
}

impl Menus {
    /// Menus stored in `pool`, publishing through `outbox`.
    pub fn new(pool: PgPool, outbox: Outbox) -> Self {
        Self { pool, outbox }
    }

    /// The pool, for reads.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates a draft menu, publishes `MenuCreated`, and answers with the
    /// reply `respond` makes of it. With an idempotency `key` used before,
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
        let (menu, created) = Menu::create(name, description, items, Utc::now().trunc_subsecs(6))?;
        let mut tx = self.pool.begin().await?;
        if let Some(replay) = idempotency::begin(&mut tx, key).await? {
            return Ok(replay);
        }
        let event = DomainEvent::new(menu.id, menu.version, created, Metadata::new(SOURCE, correlation_id));
        store::insert(&mut tx, &menu).await?;
        self.outbox.append(&mut tx, &[event]).await?;
        let reply = respond(&menu).map_err(StoreError::Encode)?;
        idempotency::record(&mut tx, key, &reply).await?;
        self.outbox.commit(tx).await?;
        tracing::info!(menu_id = %menu.id, "menu created");
        Ok(reply)
    }

    /// Applies `command` to menu `id` and answers with the reply `respond`
    /// makes of the result. If it yields an event, the version is bumped and
    /// the menu and its event commit together; if not, nothing is written.
    /// The version `if_match` names, if any, must be the stored one. With an
    /// idempotency `key` used before, nothing is changed and the first reply
    /// is sent again.
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
        let mut tx = self.pool.begin().await?;
        if let Some(replay) = idempotency::begin(&mut tx, key).await? {
            return Ok(replay);
        }
        let mut menu = store::lock(&mut tx, id).await?.ok_or(Error::MenuNotFound(id))?;
        if_match.check(menu.version)?;
        let Some(payload) = command(&mut menu)? else {
            return Ok(respond(&menu).map_err(StoreError::Encode)?);
        };
        menu.version += 1;
        menu.updated_at = Utc::now().trunc_subsecs(6);
        let event = DomainEvent::new(menu.id, menu.version, payload, Metadata::new(SOURCE, correlation_id));
        store::update(&mut tx, &menu).await?;
        self.outbox.append(&mut tx, std::slice::from_ref(&event)).await?;
        let reply = respond(&menu).map_err(StoreError::Encode)?;
        idempotency::record(&mut tx, key, &reply).await?;
        self.outbox.commit(tx).await?;
        tracing::info!(event_type = event.event_type(), version = menu.version, "menu changed");
        Ok(reply)
    }
}
