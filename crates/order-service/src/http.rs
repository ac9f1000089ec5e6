//! The order API: JSON in and out, problem+json errors, `ETag`/`If-Match`.
//!
//! Who may do what: staff with `orders:manage` may do everything; anonymous
//! guests may place takeaway orders and get, once, the order's manage token
//! ([`crate::manage_token`]), with which they read and cancel that one
//! order. A manage token of another order is answered 404, as an unknown id
//! is. A dine-in order without a staff token is a 401.

use crate::domain::{Action, Draft, DraftLine, Kind, Line, Order, OrderStatus};
use crate::error::Error;
use crate::manage_token::ManageToken;
use crate::service::{Orders, Placer};
use crate::store;
use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use events::{MenuItemId, OrderId, ReservationId};
use serde::{Deserialize, Serialize};
use service_kit::Problem;
use service_kit::auth::{Credential, Scope, Staff, scopes::OrdersManage};
use service_kit::extract::{IfMatch, Path, Query, RequestId, whole_number};
use service_kit::idempotency::{IdempotentJson, Reply};
use service_kit::values::{FieldError, Page, one_of, parse, parse_optional};
use service_kit::write::Request;
use utoipa::{IntoParams, OpenApi, ToSchema};

/// The order API's OpenAPI document (service-kit adds what all services share).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "order-service",
        description = "Orders placed against the menus as menu-events describe them; every change is published \
                       on order-events."
    ),
    paths(create, list, show, cancel, complete),
    components(schemas(Problem))
)]
pub struct ApiDoc;

/// The order routes.
pub fn router(orders: Orders) -> Router {
    Router::new()
        .route("/api/v1/orders", post(create).get(list))
        .route("/api/v1/orders/{order_id}", get(show))
        .route("/api/v1/orders/{order_id}/cancel", post(cancel))
        .route("/api/v1/orders/{order_id}/complete", post(complete))
        .with_state(orders)
}

/// `/api/v1/orders/{order_id}…`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct OrderPath {
    /// The order.
    #[param(value_type = uuid::Uuid)]
    order_id: OrderId,
}

/// One line of an order, priced at placing.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = OrderLine)]
struct LineBody {
    #[schema(value_type = uuid::Uuid)]
    menu_item_id: MenuItemId,
    /// The item's name when the order was placed.
    name: String,
    /// Its price when the order was placed, in minor units.
    unit_price_cents: i64,
    quantity: u32,
    notes: Option<String>,
}

impl From<&Line> for LineBody {
    fn from(line: &Line) -> Self {
        Self {
            menu_item_id: line.menu_item_id,
            name: line.name.clone(),
            unit_price_cents: line.unit_price_cents,
            quantity: line.quantity.get(),
            notes: line.notes.as_ref().map(|notes| notes.as_str().to_owned()),
        }
    }
}

/// An order as clients see it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Order)]
struct OrderBody {
    #[schema(value_type = uuid::Uuid)]
    id: OrderId,
    kind: Kind,
    #[schema(value_type = Option<uuid::Uuid>)]
    reservation_id: Option<ReservationId>,
    table: Option<String>,
    lines: Vec<LineBody>,
    /// ISO 4217 code of every price.
    currency: String,
    /// The sum of the lines, in minor units.
    total_cents: i64,
    status: OrderStatus,
    /// Why it was rejected, naming the items.
    reason: Option<String>,
    /// The kitchen's refusal of the last cancellation, if it refused.
    refusal: Option<String>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// The guest's capability to read and cancel this order (as
    /// `Authorization: Bearer ord_…`). Only in a guest's 202: it is stored
    /// hashed and never shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "ord_3q2-7wX0…", nullable = false)]
    manage_token: Option<String>,
    /// The order's sagas (placing it, cancelling it), newest last, each with
    /// every command sent and reply received; only in `GET /api/v1/orders/{id}`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    sagas: Vec<saga::SagaView>,
}

impl From<&Order> for OrderBody {
    fn from(order: &Order) -> Self {
        Self {
            id: order.id,
            kind: order.kind,
            reservation_id: order.reservation_id,
            table: order.table.as_ref().map(|table| table.as_str().to_owned()),
            lines: order.lines.iter().map(LineBody::from).collect(),
            currency: order.currency.clone(),
            total_cents: order.total_cents,
            status: order.status,
            reason: order.reason.clone(),
            refusal: order.refusal.clone(),
            version: order.version,
            created_at: order.created_at,
            updated_at: order.updated_at,
            manage_token: None,
            sagas: Vec::new(),
        }
    }
}

/// The order, with `status` and its version as `ETag`.
fn order_reply(status: StatusCode, order: &Order, token: Option<&ManageToken>) -> Result<Reply, serde_json::Error> {
    let body = OrderBody { manage_token: token.map(|token| token.as_str().to_owned()), ..order.into() };
    Ok(Reply::json(status, &body)?.with_etag(order.version))
}

/// Lets `credential` at order `id`: a staff token with `orders:manage`, or
/// that order's own manage token.
///
/// # Errors
/// 403 for a staff token without the scope; 404 for a manage token that is
/// not this order's (as for an unknown id); or the database failed.
async fn authorize(orders: &Orders, credential: &Credential, id: OrderId) -> Result<(), Error> {
    match credential {
        Credential::Staff(_) => credential.require(Scope::OrdersManage).map(|_| ()).map_err(Error::from),
        Credential::Guest(token) => match store::manage_token_hash(orders.pool(), id).await? {
            Some(Some(stored)) if crate::manage_token::matches(token, &stored) => Ok(()),
            _ => Err(Error::not_found(id)),
        },
    }
}

/// The caller of a create: anonymous (no `Authorization`), or a credential.
#[derive(Debug)]
struct MaybeCredential(Option<Credential>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeCredential {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.headers.get(header::AUTHORIZATION).is_none() {
            return Ok(Self(None));
        }
        Credential::from_request_parts(parts, state).await.map(|credential| Self(Some(credential)))
    }
}

/// An order to place.
#[derive(Debug, Deserialize, ToSchema)]
struct CreateOrder {
    /// `dine_in` (staff only, with a `reservation_id` or a `table`) or `takeaway`.
    kind: Kind,
    /// The reservation of a dine-in order.
    #[schema(value_type = Option<uuid::Uuid>)]
    reservation_id: Option<ReservationId>,
    /// The table of a dine-in order, 1 to 20 characters.
    #[schema(example = "12")]
    table: Option<String>,
    /// 1 to 50 lines, each item once.
    #[schema(min_items = 1, max_items = 50)]
    lines: Vec<CreateLine>,
}

/// A line to order.
#[derive(Debug, Deserialize, ToSchema)]
struct CreateLine {
    /// An item available on an active menu.
    #[schema(value_type = uuid::Uuid)]
    menu_item_id: MenuItemId,
    /// 1 to 100.
    #[serde(deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 100, example = 2)]
    quantity: i64,
    /// What the guest asks for, up to 200 characters.
    #[schema(example = "no onions")]
    notes: Option<String>,
}

impl CreateOrder {
    fn parse(self) -> Result<Draft, Error> {
        let lines = self
            .lines
            .into_iter()
            .enumerate()
            .map(|(index, line)| {
                Ok(DraftLine {
                    menu_item_id: line.menu_item_id,
                    quantity: parse(format!("lines[{index}].quantity"), line.quantity)?,
                    notes: parse_optional(&format!("lines[{index}].notes"), line.notes)?,
                })
            })
            .collect::<Result<_, FieldError>>()?;
        Ok(Draft::new(self.kind, self.reservation_id, parse_optional("table", self.table)?, lines)?)
    }
}

#[utoipa::path(post, path = "/api/v1/orders", tag = "orders", request_body = CreateOrder, security((), ("bearer" = ["orders:manage"])), responses(
    (status = 202, description = "Placed, awaiting approval; OrderPlaced published. A guest's body carries, this once, the `manage_token` with which they read and cancel it", body = OrderBody, headers(("Location" = String), ("ETag" = String))),
    (status = 400, description = "Malformed JSON or Idempotency-Key", body = Problem, content_type = "application/problem+json"),
    (status = 401, description = "A dine-in order without a staff token, or a token that does not verify", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "The staff token lacks orders:manage", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "A request with this Idempotency-Key is still being handled", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "A field breaks a rule, a line's item cannot be ordered, or the lines mix currencies; `field` names it", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
))]
async fn create(
    MaybeCredential(credential): MaybeCredential,
    State(orders): State<Orders>,
    RequestId(request_id): RequestId,
    IdempotentJson { key, body }: IdempotentJson<CreateOrder>,
) -> Result<Reply, Error> {
    let placer = match &credential {
        Some(credential @ Credential::Staff(_)) => {
            credential.require(Scope::OrdersManage)?;
            Placer::Staff
        }
        Some(Credential::Guest(_)) | None => Placer::Guest,
    };
    let draft = body.parse()?;
    if placer == Placer::Guest && draft.kind == Kind::DineIn {
        return Err(Error::StaffOnly);
    }
    let respond = |order: &Order, token: Option<&ManageToken>| {
        let reply = order_reply(StatusCode::ACCEPTED, order, token)?;
        Ok(match HeaderValue::from_str(&format!("/api/v1/orders/{}", order.id)) {
            Ok(location) => reply.with_header(header::LOCATION, location),
            Err(_) => reply,
        })
    };
    let request = Request::new(&request_id).keyed(key.as_ref());
    orders.place(draft, placer, request, &orders.hooks().placed, respond).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only orders in this status.
    status: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u16>,
    /// Orders to skip (default 0).
    #[param(minimum = 0, maximum = 1_000_000)]
    offset: Option<u32>,
}

/// One page of orders, oldest first.
#[derive(Debug, Serialize, ToSchema)]
struct OrderPage {
    orders: Vec<OrderBody>,
    limit: i64,
    offset: i64,
}

#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", params(ListQuery), security(("bearer" = ["orders:manage"])), responses(
    (status = 200, description = "A page of orders, oldest first", body = OrderPage),
    (status = 401, description = "No valid staff token", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token lacks orders:manage", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "status, limit or offset out of range", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
))]
async fn list(
    _staff: Staff<OrdersManage>,
    State(orders): State<Orders>,
    Query(query): Query<ListQuery>,
) -> Result<Reply, Error> {
    let page = Page::new(query.limit, query.offset)?;
    let status =
        query.status.map(|status| one_of("status", &status, &OrderStatus::ALL, OrderStatus::as_str)).transpose()?;
    let found = store::list(orders.pool(), status, page).await?;
    let body =
        OrderPage { orders: found.iter().map(OrderBody::from).collect(), limit: page.limit, offset: page.offset };
    Reply::json(StatusCode::OK, &body).map_err(encoding)
}

#[utoipa::path(get, path = "/api/v1/orders/{order_id}", tag = "orders", params(OrderPath), security(("bearer" = ["orders:manage"]), ("guest" = [])), responses(
    (status = 200, description = "The order", body = OrderBody, headers(("ETag" = String, description = "Its version"))),
    (status = 401, description = "No token, or one that does not verify", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "The staff token lacks orders:manage", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "No such order, or the manage token is another order's", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
))]
async fn show(
    credential: Credential,
    State(orders): State<Orders>,
    Path(OrderPath { order_id }): Path<OrderPath>,
) -> Result<Reply, Error> {
    authorize(&orders, &credential, order_id).await?;
    let order = store::find(orders.pool(), order_id).await?.ok_or_else(|| Error::not_found(order_id))?;
    let sagas = saga::for_subject(orders.pool(), order_id.into()).await?;
    let body = OrderBody { sagas, ..OrderBody::from(&order) };
    Ok(Reply::json(StatusCode::OK, &body).map_err(encoding)?.with_etag(order.version))
}

#[utoipa::path(post, path = "/api/v1/orders/{order_id}/cancel", tag = "orders", params(OrderPath, IfMatch), security(("bearer" = ["orders:manage"]), ("guest" = [])), responses(
    (status = 202, description = "Cancellation under way (cancel_pending); OrderCancellationRequested published unless it already was", body = OrderBody, headers(("ETag" = String))),
    (status = 401, description = "No token, or one that does not verify", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "The staff token lacks orders:manage", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "No such order, or the manage token is another order's", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "Only an approved order can be cancelled, or If-Match names another version", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
))]
async fn cancel(
    credential: Credential,
    State(orders): State<Orders>,
    RequestId(request_id): RequestId,
    if_match: IfMatch,
    Path(OrderPath { order_id }): Path<OrderPath>,
) -> Result<Reply, Error> {
    authorize(&orders, &credential, order_id).await?;
    let respond = |order: &Order| order_reply(StatusCode::ACCEPTED, order, None);
    orders.cancel(order_id, if_match, Request::new(&request_id), &orders.hooks().cancel_requested, respond).await
}

#[utoipa::path(post, path = "/api/v1/orders/{order_id}/complete", tag = "orders", params(OrderPath, IfMatch), security(("bearer" = ["orders:manage"])), responses(
    (status = 200, description = "Completed; OrderCompleted published unless it already was", body = OrderBody, headers(("ETag" = String))),
    (status = 401, description = "No valid staff token", body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token lacks orders:manage", body = Problem, content_type = "application/problem+json"),
    (status = 404, description = "No such order", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "The order has not been picked up, or If-Match names another version", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
))]
async fn complete(
    _staff: Staff<OrdersManage>,
    State(orders): State<Orders>,
    RequestId(request_id): RequestId,
    if_match: IfMatch,
    Path(OrderPath { order_id }): Path<OrderPath>,
) -> Result<Reply, Error> {
    let respond = |order: &Order| order_reply(StatusCode::OK, order, None);
    orders.act(order_id, if_match, Request::new(&request_id), Action::Complete, respond).await
}

fn encoding(error: serde_json::Error) -> Error {
    Error::Store(service_kit::database::StoreError::Encode(error))
}
