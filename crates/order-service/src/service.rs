//! The order service's writes, as functions the saga wiring extends.
//!
//! [`Orders::place`] and [`Orders::cancel`] each run one transaction: the
//! order's change, its event, and whatever the caller's [`Hook`] adds (the
//! saga wiring starts the CreateOrder or CancelOrder saga there, sending its
//! first command through the outbox) commit together or not at all. The
//! steps the saga drives afterwards ([`approve`], [`reject`], …) run inside
//! the saga's own transaction and return the event for it to append.

use crate::domain::{Action, Draft, Order};
use crate::error::Error;
use crate::manage_token::ManageToken;
use crate::{menu_view, store};
use events::{DomainEvent, Metadata, OrderEvent, OrderId, UnitOfWork};
use futures::future::BoxFuture;
use service_kit::extract::IfMatch;
use service_kit::idempotency::Reply;
use service_kit::write::{self, Begun, Request, Writer};
use sqlx::PgConnection;
use std::sync::Arc;

/// What a write adds to its transaction before the commit, given the order
/// as written and the metadata of the request's events: the saga wiring
/// starts a saga and sends its first command.
pub type Hook =
    Arc<dyn for<'a> Fn(&'a mut UnitOfWork, &'a Order, &'a Metadata) -> BoxFuture<'a, anyhow::Result<()>> + Send + Sync>;

/// A hook that adds nothing.
pub fn no_hook() -> Hook {
    Arc::new(|_, _, _| Box::pin(async { Ok(()) }))
}

/// The hooks the HTTP routes run: on placing and on a cancellation request.
#[derive(Clone)]
pub struct Hooks {
    /// Run with a newly placed order (status `approval_pending`).
    pub placed: Hook,
    /// Run with an order whose cancellation was just requested (`cancel_pending`).
    pub cancel_requested: Hook,
}

impl Default for Hooks {
    fn default() -> Self {
        Self { placed: no_hook(), cancel_requested: no_hook() }
    }
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hooks")
    }
}

/// Who places an order, as far as the order is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placer {
    /// Staff with `orders:manage`: any kind, no manage token.
    Staff,
    /// An anonymous guest: takeaway only, and a manage token once.
    Guest,
}

/// The orders: writes through the service's [`Writer`], and the hooks.
#[derive(Debug, Clone)]
pub struct Orders {
    writer: Writer,
    hooks: Hooks,
}

impl Orders {
    /// Orders written through `writer`, running `hooks`.
    pub fn new(writer: Writer, hooks: Hooks) -> Self {
        Self { writer, hooks }
    }

    /// The pool, for reads.
    pub fn pool(&self) -> &sqlx::PgPool {
        self.writer.pool()
    }

    /// The hooks the routes run.
    pub fn hooks(&self) -> &Hooks {
        &self.hooks
    }

    /// Places `draft` for `placer`: prices it from the menu view, inserts it
    /// as `approval_pending` (with a manage token's hash for a guest),
    /// appends `OrderPlaced`, runs `hook`, stores the reply for the request's
    /// idempotency key and commits. `respond` gets the guest's token, if any.
    /// A key used before answers with its first reply and does nothing.
    ///
    /// # Errors
    /// A line cannot be ordered (422 naming it), the key is in use or reused,
    /// the hook failed, or the database failed.
    pub async fn place(
        &self,
        draft: Draft,
        placer: Placer,
        request: Request<'_>,
        hook: &Hook,
        respond: impl FnOnce(&Order, Option<&ManageToken>) -> Result<Reply, serde_json::Error>,
    ) -> Result<Reply, Error> {
        let mut work = match self.writer.begin(request).await? {
            Begun::Replay(reply) => return Ok(reply),
            Begun::Work(work) => work,
        };
        let offers = menu_view::offers(&mut *work.connection(), &draft.items()).await?;
        let priced = draft.price(&offers)?;
        let (order, placed) = Order::place(OrderId::new(), draft, priced, write::now());
        store::insert(work.connection(), &order).await?;
        let token = (placer == Placer::Guest).then(crate::manage_token::generate);
        if let Some(token) = &token {
            store::set_manage_token(work.connection(), order.id, &token.hash()).await?;
        }
        let event = work.event(&order, placed);
        work.unit().append(&[event]).await?;
        let metadata = work.metadata();
        hook(work.unit(), &order, &metadata).await.map_err(Error::Hook)?;
        let reply = respond(&order, token.as_ref()).map_err(encoding)?;
        tracing::info!(order_id = %order.id, total_cents = order.total_cents, "order placed");
        Ok(work.finish::<OrderEvent>(&[], reply).await?)
    }

    /// Asks to cancel order `id` (at the version `if_match` names, if any):
    /// `approved` → `cancel_pending`, `OrderCancellationRequested`, then
    /// `hook`, in one transaction. An order already `cancel_pending` changes
    /// nothing and runs no hook.
    ///
    /// # Errors
    /// No such order (404), a stale version or a status that cannot be
    /// cancelled (409), the hook failed, or the database failed.
    pub async fn cancel(
        &self,
        id: OrderId,
        if_match: IfMatch,
        request: Request<'_>,
        hook: &Hook,
        respond: impl FnOnce(&Order) -> Result<Reply, serde_json::Error>,
    ) -> Result<Reply, Error> {
        let mut work = match self.writer.begin(request).await? {
            Begun::Replay(reply) => return Ok(reply),
            Begun::Work(work) => work,
        };
        let command = |order: &mut Order| order.apply(&Action::RequestCancel).map_err(Error::from);
        let (order, payload) = write::change_in(work.connection(), id, if_match, command).await?;
        let Some(payload) = payload else { return respond(&order).map_err(encoding) };
        let event = work.event(&order, payload);
        work.unit().append(&[event]).await?;
        let metadata = work.metadata();
        hook(work.unit(), &order, &metadata).await.map_err(Error::Hook)?;
        let reply = respond(&order).map_err(encoding)?;
        Ok(work.finish::<OrderEvent>(&[], reply).await?)
    }

    /// Applies a staff `action` (completing) to order `id` as one versioned write.
    ///
    /// # Errors
    /// No such order (404), a stale version or a status that does not allow
    /// it (409), or the database failed.
    pub async fn act(
        &self,
        id: OrderId,
        if_match: IfMatch,
        request: Request<'_>,
        action: Action,
        respond: impl FnOnce(&Order) -> Result<Reply, serde_json::Error>,
    ) -> Result<Reply, Error> {
        let command = |order: &mut Order| order.apply(&action).map_err(Error::from);
        self.writer.change(id, if_match, request, command, respond).await
    }
}

fn encoding(error: serde_json::Error) -> Error {
    Error::Store(service_kit::database::StoreError::Encode(error))
}

/// An order changed inside a caller's transaction, and the event to append
/// with it (`None` when the order had already taken the step).
#[derive(Debug, Clone)]
pub struct Applied {
    /// The order as it is now.
    pub order: Order,
    /// Its event, carrying `metadata`; the caller appends it.
    pub event: Option<DomainEvent<OrderEvent>>,
}

/// Applies `action` to order `id` inside `tx`, under the order's row lock
/// ([`write::change_in`]); the caller appends the returned event in the same
/// transaction (a saga step consuming a reply through its inbox).
///
/// # Errors
/// No such order, a status that does not allow it, or the database failed.
pub async fn apply(tx: &mut PgConnection, id: OrderId, action: &Action, metadata: &Metadata) -> Result<Applied, Error> {
    let command = |order: &mut Order| order.apply(action).map_err(Error::from);
    let (order, payload) = write::change_in(tx, id, IfMatch { version: None }, command).await?;
    let event = payload.map(|payload| DomainEvent::new(order.id, order.version, payload, metadata.clone()));
    Ok(Applied { order, event })
}

/// `approval_pending` → `approved` (`OrderApproved`). See [`apply`].
///
/// # Errors
/// As [`apply`].
pub async fn approve(tx: &mut PgConnection, id: OrderId, metadata: &Metadata) -> Result<Applied, Error> {
    apply(tx, id, &Action::Approve, metadata).await
}

/// `approval_pending` or `approved` → `rejected` with `reason` naming the
/// items (`OrderRejected`). See [`apply`].
///
/// # Errors
/// As [`apply`].
pub async fn reject(tx: &mut PgConnection, id: OrderId, reason: &str, metadata: &Metadata) -> Result<Applied, Error> {
    apply(tx, id, &Action::Reject(reason.to_owned()), metadata).await
}

/// `approved` → `preparing` (`OrderPreparing`). See [`apply`].
///
/// # Errors
/// As [`apply`].
pub async fn preparing(tx: &mut PgConnection, id: OrderId, metadata: &Metadata) -> Result<Applied, Error> {
    apply(tx, id, &Action::StartPreparing, metadata).await
}

/// `preparing` → `ready` (`OrderReady`). See [`apply`].
///
/// # Errors
/// As [`apply`].
pub async fn ready(tx: &mut PgConnection, id: OrderId, metadata: &Metadata) -> Result<Applied, Error> {
    apply(tx, id, &Action::MarkReady, metadata).await
}

/// `ready` → `picked_up` (`OrderPickedUp`). See [`apply`].
///
/// # Errors
/// As [`apply`].
pub async fn picked_up(tx: &mut PgConnection, id: OrderId, metadata: &Metadata) -> Result<Applied, Error> {
    apply(tx, id, &Action::MarkPickedUp, metadata).await
}

/// `cancel_pending` → `cancelled` (`OrderCancelled`). See [`apply`].
///
/// # Errors
/// As [`apply`].
pub async fn cancelled(tx: &mut PgConnection, id: OrderId, metadata: &Metadata) -> Result<Applied, Error> {
    apply(tx, id, &Action::ConfirmCancelled, metadata).await
}

/// `cancel_pending` → the status it had (or the later one the kitchen's
/// `kitchen_status` names), the refusal recorded (`OrderCancellationRefused`).
/// See [`apply`].
///
/// # Errors
/// As [`apply`].
pub async fn cancellation_refused(
    tx: &mut PgConnection,
    id: OrderId,
    kitchen_status: &str,
    metadata: &Metadata,
) -> Result<Applied, Error> {
    apply(tx, id, &Action::RefuseCancellation(kitchen_status.to_owned()), metadata).await
}
