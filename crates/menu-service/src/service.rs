//! The write path: every change loads the menu under a row lock, lets the
//! domain decide, and commits the new state together with its events.

use crate::domain::{Description, DomainError, Menu, MenuName, NewItem};
use crate::error::Error;
use crate::store;
use chrono::{SubsecRound, Utc};
use events::{DomainEvent, MenuEvent, MenuId, Metadata, Outbox};
use service_kit::extract::IfMatch;
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

    /// Creates a draft menu and publishes `MenuCreated`.
    ///
    /// # Errors
    /// The domain refuses the items, or the database failed.
    #[tracing::instrument(skip_all)]
    pub async fn create(
        &self,
        name: MenuName,
        description: Option<Description>,
        items: Vec<NewItem>,
        correlation_id: &str,
    ) -> Result<Menu, Error> {
        let (menu, created) = Menu::create(name, description, items, Utc::now().trunc_subsecs(6))?;
        let event = DomainEvent::new(menu.id, menu.version, created, Metadata::new(SOURCE, correlation_id));
        let mut tx = self.pool.begin().await?;
        store::insert(&mut tx, &menu).await?;
        self.outbox.append(&mut tx, &[event]).await?;
        self.outbox.commit(tx).await?;
        tracing::info!(menu_id = %menu.id, "menu created");
        Ok(menu)
    }

    /// Applies `command` to menu `id`. If it yields an event, the version is
    /// bumped and the menu and its event commit together; if not, nothing is
    /// written. The version `if_match` names, if any, must be the stored one.
    ///
    /// # Errors
    /// No such menu, a stale version, the domain refuses, or the database failed.
    #[tracing::instrument(skip_all, fields(menu_id = %id))]
    pub async fn change(
        &self,
        id: MenuId,
        if_match: IfMatch,
        correlation_id: &str,
        command: impl FnOnce(&mut Menu) -> Result<Option<MenuEvent>, DomainError>,
    ) -> Result<Menu, Error> {
        let mut tx = self.pool.begin().await?;
        let mut menu = store::lock(&mut tx, id).await?.ok_or(Error::MenuNotFound(id))?;
        if_match.check(menu.version)?;
        let Some(payload) = command(&mut menu)? else {
            return Ok(menu);
        };
        menu.version += 1;
        menu.updated_at = Utc::now().trunc_subsecs(6);
        let event = DomainEvent::new(menu.id, menu.version, payload, Metadata::new(SOURCE, correlation_id));
        store::update(&mut tx, &menu).await?;
        self.outbox.append(&mut tx, std::slice::from_ref(&event)).await?;
        self.outbox.commit(tx).await?;
        tracing::info!(event_type = event.event_type(), version = menu.version, "menu changed");
        Ok(menu)
    }
}
