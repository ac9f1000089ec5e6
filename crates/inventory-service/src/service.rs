//! The write path of staff's changes: each runs in one unit of work that
//! changes the stock, records it in the ledger, and commits with its event
//! and the low-stock and sold-out events that follow from it.

use crate::domain::{DomainError, Ingredient, IngredientName, Note, Quantity, Reason, Recipe, StockLevel, Unit};
use crate::error::Error;
use crate::store::{self, Inserted, Outgoing, RecipeOutcome, StockChange};
use events::{DomainEvent, IngredientId, InventoryEvent, Metadata, Outbox};
use service_kit::extract::IfMatch;
use service_kit::idempotency::Reply;
use service_kit::write::{Begun, Request, WriteError, Writer};
use sqlx::{PgConnection, PgPool};

/// A change of an ingredient's stock that staff make.
#[derive(Debug, Clone)]
pub enum Adjustment {
    /// A delivery arrived.
    Receipt {
        /// How much.
        quantity: Quantity,
        /// Anything worth writing down.
        note: Option<Note>,
    },
    /// Someone counted what is there.
    Count {
        /// What they counted.
        on_hand: StockLevel,
        /// Anything worth writing down.
        note: Option<Note>,
    },
    /// Some went in the bin.
    Waste {
        /// How much.
        quantity: Quantity,
        /// Why.
        reason: Reason,
    },
}

/// The inventory's writes.
#[derive(Debug, Clone)]
pub struct Inventory {
    writer: Writer,
}

impl Inventory {
    /// Stock stored in `pool`, publishing through `outbox`.
    pub fn new(pool: PgPool, outbox: Outbox) -> Self {
        Self { writer: Writer::new(pool, outbox, crate::BLUEPRINT.name()) }
    }

    /// The pool, for reads.
    pub fn pool(&self) -> &PgPool {
        self.writer.pool()
    }

    /// Stocks a new ingredient, with nothing on hand, and publishes
    /// `IngredientCreated`.
    ///
    /// # Errors
    /// The name is taken, the idempotency key is in use or was used for
    /// another request, or the database failed.
    pub async fn create_ingredient(
        &self,
        name: IngredientName,
        unit: Unit,
        low_stock_threshold: StockLevel,
        request: Request<'_>,
        respond: impl FnOnce(&Ingredient) -> Result<Reply, serde_json::Error>,
    ) -> Result<Reply, Error> {
        let mut work = match self.writer.begin(request).await? {
            Begun::Replay(reply) => return Ok(reply),
            Begun::Work(work) => work,
        };
        let (ingredient, created) = Ingredient::create(name, unit, low_stock_threshold, service_kit::write::now());
        if let Inserted::NameTaken(existing) = store::insert_ingredient(work.connection(), &ingredient).await? {
            return Err(Error::NameTaken { name: ingredient.name.as_str().to_owned(), existing });
        }
        let event = DomainEvent::new(ingredient.id, ingredient.version, created, work.metadata());
        let reply = respond(&ingredient).map_err(encoding)?;
        tracing::info!(ingredient_id = %ingredient.id, "ingredient created");
        Ok(work.finish(&[event], reply).await?)
    }

    /// Receives, counts or wastes stock of ingredient `id`, at the version
    /// `if_match` names if any, and publishes what changed.
    ///
    /// # Errors
    /// No such ingredient, a stale version, a count or waste below what
    /// orders hold (naming them), the key is in use, or the database failed.
    pub async fn adjust(
        &self,
        id: IngredientId,
        adjustment: Adjustment,
        actor: &str,
        if_match: IfMatch,
        request: Request<'_>,
        respond: impl FnOnce(&Ingredient) -> Result<Reply, serde_json::Error>,
    ) -> Result<Reply, Error> {
        let mut work = match self.writer.begin(request).await? {
            Begun::Replay(reply) => return Ok(reply),
            Begun::Work(work) => work,
        };
        let tx = work.connection();
        let current = store::lock_ingredient(tx, id).await?.ok_or_else(|| Error::not_found(id))?;
        if_match.check(current.version).map_err(|stale| WriteError::Stale { kind: "ingredient", stale })?;
        let change = match &adjustment {
            Adjustment::Receipt { quantity, note } => store::receive(tx, id, *quantity, actor, note.as_ref()).await?,
            Adjustment::Count { on_hand, note } => store::count(tx, id, *on_hand, actor, note.as_ref()).await?,
            Adjustment::Waste { quantity, reason } => store::waste(tx, id, *quantity, actor, reason).await?,
        };
        let (ingredient, payload) = match change {
            Some(StockChange::Applied { ingredient, event }) => (ingredient, event),
            Some(StockChange::Refused(refusal)) => return Err(refusal.into()),
            None => return Err(Error::not_found(id)),
        };
        let metadata = work.metadata();
        let mut published = vec![DomainEvent::new(ingredient.id, ingredient.version, payload, metadata.clone())];
        published.extend(signals(work.connection(), &[id], &metadata).await?);
        // The signals may have bumped the ingredient (a low-stock crossing).
        let ingredient = store::lock_ingredient(work.connection(), id).await?.unwrap_or(ingredient);
        let reply = respond(&ingredient).map_err(encoding)?;
        tracing::info!(ingredient_id = %id, events = published.len(), "stock adjusted");
        Ok(work.finish(&published, reply).await?)
    }

    /// Sets the recipe of a menu item the service has seen on a menu, and
    /// publishes `RecipeSet` and, if the stock allows no portion of it,
    /// `MenuItemSoldOut`. `respond` gets the item's version after the change.
    ///
    /// # Errors
    /// The item was never on a menu, an ingredient does not exist, the
    /// version `if_match` names is not the recipe's, the key is in use, or
    /// the database failed.
    pub async fn set_recipe(
        &self,
        recipe: Recipe,
        if_match: IfMatch,
        request: Request<'_>,
        respond: impl FnOnce(&Recipe, i64) -> Result<Reply, serde_json::Error>,
    ) -> Result<Reply, Error> {
        let item = recipe.menu_item_id();
        let mut work = match self.writer.begin(request).await? {
            Begun::Replay(reply) => return Ok(reply),
            Begun::Work(work) => work,
        };
        let tx = work.connection();
        if !store::item_seen(&mut *tx, item).await? {
            return Err(Error::UnknownMenuItem(item));
        }
        let current = sqlx::query_scalar::<_, i64>("SELECT version FROM recipes WHERE menu_item_id = $1 FOR UPDATE")
            .bind(item)
            .fetch_optional(&mut *tx)
            .await
            .map_err(WriteError::from)?;
        if let (Some(expected), current) = (if_match.version, current.unwrap_or(0))
            && expected != current
        {
            let stale = service_kit::extract::StaleVersion { expected, current };
            return Err(WriteError::Stale { kind: "recipe", stale }.into());
        }
        let version = match store::set_recipe(tx, &recipe).await? {
            RecipeOutcome::Set { version } => version,
            RecipeOutcome::Refused(refusal) => return Err(refusal.into()),
        };
        let metadata = work.metadata();
        let mut published = vec![DomainEvent::new(item, version, recipe.event(), metadata.clone())];
        published.extend(signals(work.connection(), &recipe.ingredient_ids(), &metadata).await?);
        // A sold-out event for the item bumps its version once more.
        let version = published.iter().filter(|e| e.aggregate_id == item.as_uuid()).map(|e| e.version).max();
        let reply = respond(&recipe, version.unwrap_or(1)).map_err(encoding)?;
        tracing::info!(menu_item_id = %item, "recipe set");
        Ok(work.finish(&published, reply).await?)
    }
}

fn encoding(error: serde_json::Error) -> Error {
    WriteError::Store(service_kit::database::StoreError::Encode(error)).into()
}

/// The low-stock and sold-out events that a change of `touched` made due,
/// as envelopes with `metadata` (see [`store::stock_signals`]).
///
/// # Errors
/// The database failed.
pub async fn signals(
    tx: &mut PgConnection,
    touched: &[IngredientId],
    metadata: &Metadata,
) -> Result<Vec<DomainEvent<InventoryEvent>>, Error> {
    Ok(envelopes(store::stock_signals(tx, touched).await?, metadata))
}

/// [`signals`] for ingredients the transaction has locked and holds as they
/// are now (see [`store::signals_of_locked`]).
///
/// # Errors
/// The database failed.
pub async fn signals_of_locked(
    tx: &mut PgConnection,
    stock: Vec<Ingredient>,
    metadata: &Metadata,
) -> Result<Vec<DomainEvent<InventoryEvent>>, Error> {
    Ok(envelopes(store::signals_of_locked(tx, stock).await?, metadata))
}

fn envelopes(outgoing: Vec<Outgoing>, metadata: &Metadata) -> Vec<DomainEvent<InventoryEvent>> {
    outgoing
        .into_iter()
        .map(|Outgoing { aggregate_id, version, event }| {
            DomainEvent::new(aggregate_id, version, event, metadata.clone())
        })
        .collect()
}

impl From<DomainError> for Error {
    fn from(refusal: DomainError) -> Self {
        Self::Domain(refusal)
    }
}
