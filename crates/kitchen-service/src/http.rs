//! The kitchen API: JSON in and out, problem+json errors, `ETag`/`If-Match`
//! on every change of a ticket. Every route needs a staff token with
//! `kitchen:operate`. Each staff action is one versioned write
//! ([`Writer::change`]): a repeated click changes nothing and publishes
//! nothing; a stale `If-Match` is a 409.

use crate::domain::{Action, Line, RejectReason, Ticket, TicketStatus};
use crate::error::Error;
use crate::store;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use events::{KitchenEvent, MenuItemId, OrderId, TicketId};
use serde::{Deserialize, Serialize};
use service_kit::Problem;
use service_kit::auth::{Staff, scopes::KitchenOperate};
use service_kit::extract::{IfMatch, Json, Path, Query, RequestId};
use service_kit::idempotency::Reply;
use service_kit::values::{Page, one_of, parse};
use service_kit::write::{Request, Writer};
use std::time::Duration;
use utoipa::{IntoParams, OpenApi, ToSchema};

/// The kitchen API's OpenAPI document (service-kit adds what all services share).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "kitchen-service",
        description = "Kitchen tickets, one per order; every change is published on kitchen-events."
    ),
    paths(list, show, accept, reject, start, line_done, line_recall, ready, pick_up, crate::feed::feed),
    components(schemas(Problem))
)]
pub struct ApiDoc;

/// What the routes share: the writes, Redis, and the name of `kitchen-events`.
#[derive(Debug, Clone)]
pub struct Kitchen {
    writer: Writer,
    redis: redis::Client,
    stream: String,
}

impl Kitchen {
    /// Tickets written through `writer`, their events read from `stream` on `redis`.
    pub fn new(writer: Writer, redis: redis::Client, stream: String) -> Self {
        Self { writer, redis, stream }
    }

    /// The pool, for reads.
    pub fn pool(&self) -> &sqlx::PgPool {
        self.writer.pool()
    }

    /// The name of the `kitchen-events` stream.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// A connection of its own to Redis, whose replies may take up to
    /// `response_timeout`.
    ///
    /// # Errors
    /// Redis is unreachable.
    pub async fn redis(
        &self,
        response_timeout: Duration,
    ) -> Result<redis::aio::MultiplexedConnection, redis::RedisError> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(response_timeout));
        self.redis.get_multiplexed_async_connection_with_config(&config).await
    }

    /// The id of the last entry of `kitchen-events`, or `0-0` if it is empty.
    ///
    /// # Errors
    /// Redis failed.
    pub async fn stream_position(&self) -> Result<String, redis::RedisError> {
        let mut redis = self.redis(Duration::from_secs(5)).await?;
        let last: Vec<(String, redis::Value)> = redis::cmd("XREVRANGE")
            .arg(&self.stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut redis)
            .await?;
        Ok(last.into_iter().next().map_or_else(|| "0-0".to_owned(), |(id, _)| id))
    }
}

/// The kitchen routes; the feed before the `{ticket_id}` routes.
pub fn router(kitchen: Kitchen) -> Router {
    Router::new()
        .route("/api/v1/tickets", get(list))
        .route("/api/v1/tickets/feed", get(crate::feed::feed))
        .route("/api/v1/tickets/{ticket_id}", get(show))
        .route("/api/v1/tickets/{ticket_id}/accept", post(accept))
        .route("/api/v1/tickets/{ticket_id}/reject", post(reject))
        .route("/api/v1/tickets/{ticket_id}/start", post(start))
        .route("/api/v1/tickets/{ticket_id}/lines/{line}/done", post(line_done))
        .route("/api/v1/tickets/{ticket_id}/lines/{line}/recall", post(line_recall))
        .route("/api/v1/tickets/{ticket_id}/ready", post(ready))
        .route("/api/v1/tickets/{ticket_id}/pick-up", post(pick_up))
        .with_state(kitchen)
}

/// `/api/v1/tickets/{ticket_id}…`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct TicketPath {
    /// The ticket.
    #[param(value_type = uuid::Uuid)]
    ticket_id: TicketId,
}

/// `/api/v1/tickets/{ticket_id}/lines/{line}/…`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct LinePath {
    /// The ticket.
    #[param(value_type = uuid::Uuid)]
    ticket_id: TicketId,
    /// The line's position on the ticket, from 1.
    line: u32,
}

/// One line of a ticket.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TicketLine)]
pub struct LineBody {
    /// Its position, from 1.
    line: u32,
    #[schema(value_type = uuid::Uuid)]
    menu_item_id: MenuItemId,
    /// The item's name, if the kitchen had seen it on a menu.
    name: Option<String>,
    quantity: u32,
    /// The station that cooks it.
    station: String,
    notes: Option<String>,
    /// Whether the kitchen had seen the item on a menu.
    known: bool,
    /// Whether a cook has bumped it.
    done: bool,
}

impl From<&Line> for LineBody {
    fn from(line: &Line) -> Self {
        Self {
            line: line.line,
            menu_item_id: line.menu_item_id,
            name: line.name.clone(),
            quantity: line.quantity.get(),
            station: line.station.clone(),
            notes: line.notes.as_ref().map(|notes| notes.as_str().to_owned()),
            known: line.known,
            done: line.done,
        }
    }
}

/// A kitchen ticket, as the API and the feed show it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Ticket)]
pub struct TicketBody {
    #[schema(value_type = uuid::Uuid)]
    id: TicketId,
    #[schema(value_type = uuid::Uuid)]
    order_id: OrderId,
    /// `pending`, `awaiting_acceptance`, `accepted`, `preparing`, `ready`,
    /// `picked_up`, `cancelled` or `rejected`.
    #[schema(value_type = String, example = "preparing")]
    status: &'static str,
    lines: Vec<LineBody>,
    /// When the kitchen promised it, once accepted.
    ready_by: Option<DateTime<Utc>>,
    /// Why the kitchen rejected it.
    reject_reason: Option<String>,
    /// Whether its promised time passed before it was ready.
    overdue: bool,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<&Ticket> for TicketBody {
    fn from(ticket: &Ticket) -> Self {
        Self {
            id: ticket.id,
            order_id: ticket.order_id,
            status: ticket.status.as_str(),
            lines: ticket.lines.iter().map(LineBody::from).collect(),
            ready_by: ticket.ready_by,
            reject_reason: ticket.reject_reason.as_ref().map(|reason| reason.as_str().to_owned()),
            overdue: ticket.overdue_notified,
            version: ticket.version,
            created_at: ticket.created_at,
            updated_at: ticket.updated_at,
        }
    }
}

/// The ticket, 200, with its version as `ETag`.
fn ticket_reply(ticket: &Ticket) -> Result<Reply, serde_json::Error> {
    Ok(Reply::json(StatusCode::OK, &TicketBody::from(ticket))?.with_etag(ticket.version))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only tickets in this status (default: every active one, that is not
    /// picked up, cancelled or rejected).
    status: Option<String>,
    /// Only tickets with a line for this station.
    station: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u16>,
    /// Tickets to skip (default 0).
    #[param(minimum = 0, maximum = 1_000_000)]
    offset: Option<u32>,
}

/// One page of tickets, oldest first.
#[derive(Debug, Serialize, ToSchema)]
struct TicketPage {
    tickets: Vec<TicketBody>,
    limit: i64,
    offset: i64,
    /// The last entry of `kitchen-events` before the tickets were read: a
    /// display resumes the feed from it (`after` or `Last-Event-ID`) and
    /// misses nothing; `0-0` if there is none.
    #[schema(example = "1764626400000-0")]
    stream_position: String,
}

#[utoipa::path(get, path = "/api/v1/tickets", tag = "tickets", params(ListQuery), security(("bearer" = ["kitchen:operate"])), responses(
    (status = 200, description = "A page of tickets, oldest first, and the stream position to follow them from", body = TicketPage),
    (status = 401, description = "No valid staff token", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token lacks kitchen:operate", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "status, limit or offset out of range", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "The database or Redis is unavailable", body = Problem, content_type = "application/problem+json"),
))]
async fn list(
    _staff: Staff<KitchenOperate>,
    State(kitchen): State<Kitchen>,
    Query(query): Query<ListQuery>,
) -> Result<Reply, Error> {
    let page = Page::new(query.limit, query.offset)?;
    let status =
        query.status.map(|status| one_of("status", &status, &TicketStatus::ALL, TicketStatus::as_str)).transpose()?;
    let stream_position = kitchen.stream_position().await?;
    let station = query.station.as_deref().map(str::trim).filter(|station| !station.is_empty());
    let found = store::list(kitchen.pool(), status, station, page).await?;
    let body = TicketPage {
        tickets: found.iter().map(TicketBody::from).collect(),
        limit: page.limit,
        offset: page.offset,
        stream_position,
    };
    Reply::json(StatusCode::OK, &body).map_err(encoding)
}

#[utoipa::path(get, path = "/api/v1/tickets/{ticket_id}", tag = "tickets", params(TicketPath), security(("bearer" = ["kitchen:operate"])), responses(
    (status = 200, description = "The ticket", body = TicketBody, headers(("ETag" = String, description = "Its version"))),
    (status = 401, description = "No valid staff token", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token lacks kitchen:operate", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "No such ticket", body = Problem, content_type = "application/problem+json"),
))]
async fn show(
    _staff: Staff<KitchenOperate>,
    State(kitchen): State<Kitchen>,
    Path(TicketPath { ticket_id }): Path<TicketPath>,
) -> Result<Reply, Error> {
    let ticket = store::find(kitchen.pool(), ticket_id).await?.ok_or_else(|| Error::not_found(ticket_id))?;
    ticket_reply(&ticket).map_err(encoding)
}

/// Applies `action` to ticket `id` at the version `if_match` names, if any.
async fn act(
    kitchen: &Kitchen,
    id: TicketId,
    if_match: IfMatch,
    request_id: &str,
    action: Action,
) -> Result<Reply, Error> {
    let command = |ticket: &mut Ticket| -> Result<Option<KitchenEvent>, Error> {
        Ok(ticket.apply(&action, service_kit::write::now())?)
    };
    kitchen.writer.change(id, if_match, Request::new(request_id), command, ticket_reply).await
}

/// Marks line `line` of ticket `id` done or not.
async fn mark(
    kitchen: &Kitchen,
    LinePath { ticket_id, line }: LinePath,
    if_match: IfMatch,
    request_id: &str,
    done: bool,
) -> Result<Reply, Error> {
    let command = |ticket: &mut Ticket| -> Result<Option<KitchenEvent>, Error> { Ok(ticket.mark_line(line, done)?) };
    kitchen.writer.change(ticket_id, if_match, Request::new(request_id), command, ticket_reply).await
}

/// An acceptance: the kitchen's promise.
#[derive(Debug, Deserialize, ToSchema)]
struct Accept {
    /// When the ticket will be ready; must be in the future.
    ready_by: DateTime<Utc>,
}

#[utoipa::path(post, path = "/api/v1/tickets/{ticket_id}/accept", tag = "tickets", params(TicketPath, IfMatch), request_body = Accept, security(("bearer" = ["kitchen:operate"])), responses(
    (status = 200, description = "Accepted; TicketAccepted published (nothing if it already was)", body = TicketBody, headers(("ETag" = String))),
    (status = 401, description = "No valid staff token", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token lacks kitchen:operate", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "No such ticket", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "The ticket's status does not allow it, or If-Match names another version", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "ready_by is missing or not in the future", body = Problem, content_type = "application/problem+json"),
))]
async fn accept(
    _staff: Staff<KitchenOperate>,
    State(kitchen): State<Kitchen>,
    RequestId(request_id): RequestId,
    if_match: IfMatch,
    Path(TicketPath { ticket_id }): Path<TicketPath>,
    Json(body): Json<Accept>,
) -> Result<Reply, Error> {
    act(&kitchen, ticket_id, if_match, &request_id, Action::Accept { ready_by: body.ready_by }).await
}

/// A rejection.
#[derive(Debug, Deserialize, ToSchema)]
struct Reject {
    /// Why, 1 to 500 characters.
    #[schema(example = "out of fish")]
    reason: String,
}

#[utoipa::path(post, path = "/api/v1/tickets/{ticket_id}/reject", tag = "tickets", params(TicketPath, IfMatch), request_body = Reject, security(("bearer" = ["kitchen:operate"])), responses(
    (status = 200, description = "Rejected; TicketRejected published", body = TicketBody, headers(("ETag" = String))),
    (status = 401, description = "No valid staff token", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token lacks kitchen:operate", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "No such ticket", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "Only a ticket awaiting acceptance can be rejected, or If-Match names another version", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "The reason is missing or too long", body = Problem, content_type = "application/problem+json"),
))]
async fn reject(
    _staff: Staff<KitchenOperate>,
    State(kitchen): State<Kitchen>,
    RequestId(request_id): RequestId,
    if_match: IfMatch,
    Path(TicketPath { ticket_id }): Path<TicketPath>,
    Json(body): Json<Reject>,
) -> Result<Reply, Error> {
    let reason: RejectReason = parse("reason", body.reason)?;
    act(&kitchen, ticket_id, if_match, &request_id, Action::Reject { reason }).await
}

#[utoipa::path(post, path = "/api/v1/tickets/{ticket_id}/start", tag = "tickets", params(TicketPath, IfMatch), security(("bearer" = ["kitchen:operate"])), responses(
    (status = 200, description = "Cooking began; TicketPreparationStarted published (nothing if it had)", body = TicketBody, headers(("ETag" = String))),
    (status = 401, description = "No valid staff token", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token lacks kitchen:operate", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "No such ticket", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "The ticket's status does not allow it, or If-Match names another version", body = Problem, content_type = "application/problem+json"),
))]
async fn start(
    _staff: Staff<KitchenOperate>,
    State(kitchen): State<Kitchen>,
    RequestId(request_id): RequestId,
    if_match: IfMatch,
    Path(TicketPath { ticket_id }): Path<TicketPath>,
) -> Result<Reply, Error> {
    act(&kitchen, ticket_id, if_match, &request_id, Action::Start).await
}

#[utoipa::path(post, path = "/api/v1/tickets/{ticket_id}/ready", tag = "tickets", params(TicketPath, IfMatch), security(("bearer" = ["kitchen:operate"])), responses(
    (status = 200, description = "Cooked; TicketReady published (nothing if it was)", body = TicketBody, headers(("ETag" = String))),
    (status = 401, description = "No valid staff token", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token lacks kitchen:operate", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "No such ticket", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "The ticket's status does not allow it, or If-Match names another version", body = Problem, content_type = "application/problem+json"),
))]
async fn ready(
    _staff: Staff<KitchenOperate>,
    State(kitchen): State<Kitchen>,
    RequestId(request_id): RequestId,
    if_match: IfMatch,
    Path(TicketPath { ticket_id }): Path<TicketPath>,
) -> Result<Reply, Error> {
    act(&kitchen, ticket_id, if_match, &request_id, Action::Ready).await
}

#[utoipa::path(post, path = "/api/v1/tickets/{ticket_id}/pick-up", tag = "tickets", params(TicketPath, IfMatch), security(("bearer" = ["kitchen:operate"])), responses(
    (status = 200, description = "Gone out; TicketPickedUp published (nothing if it had)", body = TicketBody, headers(("ETag" = String))),
    (status = 401, description = "No valid staff token", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token lacks kitchen:operate", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "No such ticket", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "The ticket's status does not allow it, or If-Match names another version", body = Problem, content_type = "application/problem+json"),
))]
async fn pick_up(
    _staff: Staff<KitchenOperate>,
    State(kitchen): State<Kitchen>,
    RequestId(request_id): RequestId,
    if_match: IfMatch,
    Path(TicketPath { ticket_id }): Path<TicketPath>,
) -> Result<Reply, Error> {
    act(&kitchen, ticket_id, if_match, &request_id, Action::PickUp).await
}

#[utoipa::path(post, path = "/api/v1/tickets/{ticket_id}/lines/{line}/done", tag = "tickets", params(LinePath, IfMatch), security(("bearer" = ["kitchen:operate"])), responses(
    (status = 200, description = "The line is done; TicketLineDone published (nothing if it was)", body = TicketBody, headers(("ETag" = String))),
    (status = 401, description = "No valid staff token", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token lacks kitchen:operate", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "No such ticket or line", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "The ticket is not preparing, or If-Match names another version", body = Problem, content_type = "application/problem+json"),
))]
async fn line_done(
    _staff: Staff<KitchenOperate>,
    State(kitchen): State<Kitchen>,
    RequestId(request_id): RequestId,
    if_match: IfMatch,
    Path(path): Path<LinePath>,
) -> Result<Reply, Error> {
    mark(&kitchen, path, if_match, &request_id, true).await
}

#[utoipa::path(post, path = "/api/v1/tickets/{ticket_id}/lines/{line}/recall", tag = "tickets", params(LinePath, IfMatch), security(("bearer" = ["kitchen:operate"])), responses(
    (status = 200, description = "The line is not done after all; TicketLineRecalled published (nothing if it was not)", body = TicketBody, headers(("ETag" = String))),
    (status = 401, description = "No valid staff token", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token lacks kitchen:operate", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "No such ticket or line", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "The ticket is not preparing, or If-Match names another version", body = Problem, content_type = "application/problem+json"),
))]
async fn line_recall(
    _staff: Staff<KitchenOperate>,
    State(kitchen): State<Kitchen>,
    RequestId(request_id): RequestId,
    if_match: IfMatch,
    Path(path): Path<LinePath>,
) -> Result<Reply, Error> {
    mark(&kitchen, path, if_match, &request_id, false).await
}

fn encoding(error: serde_json::Error) -> Error {
    service_kit::write::WriteError::Store(service_kit::database::StoreError::Encode(error)).into()
}
