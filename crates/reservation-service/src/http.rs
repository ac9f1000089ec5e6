//! The reservation API: JSON in and out, problem+json errors, `ETag`/`If-Match`
//! optimistic concurrency on every status change.
//!
//! Who may do what: anyone may read the restaurant's hours and the day's
//! free slots, and book, getting the booking's manage token once
//! ([`crate::manage_token`]); reading one booking and cancelling it take
//! either that token or a staff token with `reservations:manage`; listing
//! (guest PII), confirming, seating, completing, no-shows and changing the
//! restaurant's rules are staff only. A manage token of another booking is
//! answered 404, as an unknown id is.

mod availability;
mod restaurant;

use crate::domain::{
    Booking, CancelReason, DomainError, Duration, Email, Guest, GuestName, Notes, PartySize, Phone, PreOrderLine,
    Reservation, ReservationStatus, Rules, StatusChange,
};
use crate::error::Error;
use crate::manage_token::ManageToken;
use crate::service::Reservations;
use crate::store::{self, Filter};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use chrono::{DateTime, SubsecRound, Utc};
use events::{MenuItemId, ReservationEvent, ReservationId};
use serde::{Deserialize, Serialize};
use service_kit::Problem;
use service_kit::auth::{Credential, Scope, Staff, scopes::ReservationsManage};
use service_kit::database::StoreError;
use service_kit::extract::{IfMatch, Json, Path, Query, RequestId, optional_whole_number, whole_number};
use service_kit::idempotency::{IdempotentJson, Reply};
use service_kit::openapi::{optional_multiline_text, single_line_text};
use service_kit::values::{FieldError, Page, parse, parse_optional};
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};
use utoipa::{IntoParams, OpenApi, ToSchema};

/// The reservation API's OpenAPI document (service-kit adds what all services share).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "reservation-service",
        description = "Table reservations that never overbook the restaurant; every change is published on \
                       reservation-events, and pre-orders are checked against what menu-events said."
    ),
    paths(
        create,
        list,
        show,
        confirm,
        cancel,
        seat,
        complete,
        no_show,
        availability::availability,
        restaurant::show,
        restaurant::replace
    ),
    components(schemas(Problem))
)]
pub struct ApiDoc;

/// The reservation routes.
pub fn router(reservations: Reservations) -> Router {
    Router::new()
        .route("/api/v1/reservations", post(create).get(list))
        .route("/api/v1/reservations/{reservation_id}", get(show))
        .route("/api/v1/reservations/{reservation_id}/confirm", patch(confirm))
        .route("/api/v1/reservations/{reservation_id}/cancel", patch(cancel))
        .route("/api/v1/reservations/{reservation_id}/seat", patch(seat))
        .route("/api/v1/reservations/{reservation_id}/complete", patch(complete))
        .route("/api/v1/reservations/{reservation_id}/no-show", patch(no_show))
        .route("/api/v1/availability", get(availability::availability))
        .route("/api/v1/restaurant", get(restaurant::show).put(restaurant::replace))
        .with_state(reservations)
}

/// `/api/v1/reservations/{reservation_id}…`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct ReservationPath {
    /// The reservation.
    #[param(value_type = uuid::Uuid)]
    reservation_id: ReservationId,
}

/// A reservation as clients see it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Reservation)]
struct ReservationBody {
    #[schema(value_type = uuid::Uuid)]
    id: ReservationId,
    guest_name: String,
    guest_email: Option<String>,
    guest_phone: Option<String>,
    party_size: u16,
    starts_at: DateTime<Utc>,
    duration_minutes: u32,
    /// When the seats are free again: `starts_at` plus the duration.
    ends_at: DateTime<Utc>,
    notes: Option<String>,
    pre_order: Vec<PreOrderBody>,
    status: ReservationStatus,
    /// Why it was cancelled; `null` unless it was.
    cancel_reason: Option<String>,
    version: i64,
    /// Pre-ordered items that can no longer be served, found when the menus changed.
    problems: Vec<ProblemBody>,
    /// While pending: when its seats go unless the restaurant confirms it.
    expires_at: Option<DateTime<Utc>>,
    /// Every status it went through, oldest first.
    history: Vec<StatusChangeBody>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// The guest's capability to read and cancel this booking (as
    /// `Authorization: Bearer rsv_…`). Only in the booking's 201: it is
    /// stored hashed and never shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "rsv_3q2-7wX0…", nullable = false)]
    manage_token: Option<String>,
}

/// A pre-ordered item.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PreOrderLine)]
struct PreOrderBody {
    #[schema(value_type = uuid::Uuid)]
    menu_item_id: MenuItemId,
    quantity: u32,
}

/// A status a reservation went through.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = StatusChange)]
struct StatusChangeBody {
    status: ReservationStatus,
    /// Who: a staff token's subject, `guest` (the booking's manage token) or `reservation-service` (expiry).
    actor: String,
    at: DateTime<Utc>,
}

impl From<&StatusChange> for StatusChangeBody {
    fn from(change: &StatusChange) -> Self {
        Self { status: change.status, actor: change.actor.clone(), at: change.at }
    }
}

/// A pre-ordered item that can no longer be served.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ReservationProblem)]
struct ProblemBody {
    #[schema(value_type = uuid::Uuid)]
    menu_item_id: MenuItemId,
    /// Why, for a person.
    reason: String,
    detected_at: DateTime<Utc>,
}

impl From<&Reservation> for ReservationBody {
    fn from(reservation: &Reservation) -> Self {
        Self {
            id: reservation.id,
            guest_name: reservation.guest.name.as_str().to_owned(),
            guest_email: reservation.guest.email.as_ref().map(|email| email.as_str().to_owned()),
            guest_phone: reservation.guest.phone.as_ref().map(|phone| phone.as_str().to_owned()),
            party_size: reservation.party_size.get(),
            starts_at: reservation.starts_at,
            duration_minutes: reservation.duration.minutes(),
            ends_at: reservation.ends_at(),
            notes: reservation.notes.as_ref().map(|notes| notes.as_str().to_owned()),
            pre_order: reservation
                .pre_order
                .iter()
                .map(|line| PreOrderBody { menu_item_id: line.menu_item_id, quantity: line.quantity.get() })
                .collect(),
            status: reservation.status,
            cancel_reason: reservation.cancel_reason.as_ref().map(|reason| reason.as_str().to_owned()),
            version: reservation.version,
            problems: reservation
                .problems
                .iter()
                .map(|problem| ProblemBody {
                    menu_item_id: problem.menu_item_id,
                    reason: problem.reason.clone(),
                    detected_at: problem.detected_at,
                })
                .collect(),
            expires_at: (reservation.status == ReservationStatus::Pending).then_some(reservation.expires_at),
            history: reservation.history.iter().map(StatusChangeBody::from).collect(),
            created_at: reservation.created_at,
            updated_at: reservation.updated_at,
            manage_token: None,
        }
    }
}

/// The reservation, 200 with its version as `ETag`.
fn reservation_reply(reservation: &Reservation) -> Result<Reply, serde_json::Error> {
    Ok(Reply::json(StatusCode::OK, &ReservationBody::from(reservation))?.with_etag(reservation.version))
}

/// The actor the history records for the booking's own manage token.
const GUEST: &str = "guest";

/// Lets `credential` at reservation `id`: a staff token with
/// `reservations:manage`, or that booking's own manage token. Who it is, for
/// the history.
///
/// # Errors
/// 403 for a staff token without the scope; 404 for a manage token that is
/// not this booking's (as for an unknown id); or the database failed.
async fn authorize(reservations: &Reservations, credential: &Credential, id: ReservationId) -> Result<String, Error> {
    match credential {
        Credential::Staff(_) => Ok(credential.require(Scope::ReservationsManage)?.subject.clone()),
        Credential::Guest(token) => match store::manage_token_hash(reservations.pool(), id).await? {
            Some(Some(stored)) if crate::manage_token::matches(token, &stored) => Ok(GUEST.to_owned()),
            _ => Err(Error::not_found(id)),
        },
    }
}

fn guest_name_schema() -> Object {
    single_line_text(GuestName::MAX_CHARS, "Ada Lovelace")
}

fn notes_schema() -> Object {
    optional_multiline_text(Notes::MAX_CHARS)
}

fn email_schema() -> Object {
    ObjectBuilder::new()
        .schema_type([Type::String, Type::Null].into_iter().collect::<SchemaType>())
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Email)))
        .max_length(Some(Email::MAX_CHARS))
        .examples(["ada@example.com"])
        .build()
}

fn phone_schema() -> Object {
    ObjectBuilder::new()
        .schema_type([Type::String, Type::Null].into_iter().collect::<SchemaType>())
        .description(Some("6 to 15 digits, optionally with a leading + and spaces, dashes, dots or parentheses"))
        .pattern(Some(r"^\s*\+?[0-9 ().-]{6,30}\s*$"))
        .examples(["+44 20 7946 0958"])
        .build()
}

/// A booking. Give `guest_email`, `guest_phone` or both.
#[derive(Debug, Deserialize, ToSchema)]
struct CreateReservation {
    #[schema(schema_with = guest_name_schema)]
    guest_name: String,
    #[schema(schema_with = email_schema)]
    guest_email: Option<String>,
    #[schema(schema_with = phone_schema)]
    guest_phone: Option<String>,
    /// Guests, 1 to the restaurant's `max_party_size`.
    #[serde(deserialize_with = "whole_number")]
    #[schema(minimum = 1, example = 4)]
    party_size: i64,
    /// When the party arrives (RFC 3339, any offset; stored in UTC): a slot of an open sitting (see
    /// `/api/v1/availability`), at least the lead time ahead and within the horizon.
    starts_at: DateTime<Utc>,
    /// Minutes the table is held, 15 to 480, ending by closing; the restaurant's default (90) if left out.
    #[serde(default, deserialize_with = "optional_whole_number")]
    #[schema(value_type = i64, required = false, minimum = 15, maximum = 480, example = 90)]
    duration_minutes: Option<i64>,
    #[schema(schema_with = notes_schema)]
    notes: Option<String>,
    /// Items ordered ahead, each at most once; each must be available on an active menu.
    #[serde(default)]
    #[schema(max_items = 50)]
    pre_order: Vec<PreOrderRequest>,
}

/// An item to order ahead.
#[derive(Debug, Deserialize, ToSchema)]
struct PreOrderRequest {
    #[schema(value_type = uuid::Uuid)]
    menu_item_id: MenuItemId,
    /// 1 to 100.
    #[serde(deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 100, example = 2)]
    quantity: i64,
}

impl CreateReservation {
    fn parse(self) -> Result<Booking, Error> {
        let name: GuestName = parse("guest_name", self.guest_name)?;
        let email: Option<Email> = parse_optional("guest_email", self.guest_email)?;
        let phone: Option<Phone> = parse_optional("guest_phone", self.guest_phone)?;
        let party_size = PartySize::new(self.party_size, u16::MAX)
            .map_err(|source| FieldError { field: "party_size".to_owned(), source })?;
        let pre_order = self
            .pre_order
            .into_iter()
            .enumerate()
            .map(|(index, line)| {
                Ok(PreOrderLine {
                    menu_item_id: line.menu_item_id,
                    quantity: parse(format!("pre_order[{index}].quantity"), line.quantity)?,
                })
            })
            .collect::<Result<_, FieldError>>()?;
        Ok(Booking {
            guest: Guest::new(name, email, phone)?,
            party_size,
            starts_at: self.starts_at.trunc_subsecs(6),
            duration: parse_optional::<Duration, _>("duration_minutes", self.duration_minutes)?,
            notes: parse_optional("notes", self.notes)?,
            pre_order,
        })
    }
}

#[utoipa::path(post, path = "/api/v1/reservations", tag = "reservations", request_body = CreateReservation, responses(
    (status = 201, description = "Booked as pending; ReservationCreated published. The body carries, this once, the `manage_token` with which the guest reads and cancels it", body = ReservationBody, headers(("Location" = String), ("ETag" = String))),
    (status = 409, description = "Not enough seats are free for the whole stay, or the guest holds too many upcoming bookings", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "A field breaks a rule (closed, off the slot grid, past closing, too soon, party too large, …), or a pre-ordered item cannot be served; `field` names it and `detail` the rule", body = Problem, content_type = "application/problem+json"),
))]
async fn create(
    State(reservations): State<Reservations>,
    RequestId(request_id): RequestId,
    IdempotentJson { key, body }: IdempotentJson<CreateReservation>,
) -> Result<Reply, Error> {
    let booking = body.parse()?;
    let respond = |reservation: &Reservation, manage_token: &ManageToken| {
        let location = format!("/api/v1/reservations/{}", reservation.id);
        let body = ReservationBody { manage_token: Some(manage_token.as_str().to_owned()), ..reservation.into() };
        Reply::created(&location, reservation.version, &body)
    };
    reservations.book(booking, GUEST, &request_id, key.as_ref(), respond).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only reservations in this status.
    status: Option<ReservationStatus>,
    /// Only reservations starting at or after this time (RFC 3339).
    from: Option<DateTime<Utc>>,
    /// Only reservations starting before this time (RFC 3339).
    to: Option<DateTime<Utc>>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u16>,
    /// Reservations to skip (default 0).
    #[param(minimum = 0, maximum = 1_000_000)]
    offset: Option<u32>,
}

/// One page of reservations, earliest start first.
#[derive(Debug, Serialize, ToSchema)]
struct ReservationPage {
    reservations: Vec<ReservationBody>,
    limit: i64,
    offset: i64,
}

#[utoipa::path(get, path = "/api/v1/reservations", tag = "reservations", params(ListQuery), security(("bearer" = ["reservations:manage"])), responses(
    (status = 200, description = "A page of reservations, earliest start first", body = ReservationPage),
    (status = 422, description = "limit or offset out of range, or `from` after `to`", body = Problem, content_type = "application/problem+json"),
))]
async fn list(
    _staff: Staff<ReservationsManage>,
    State(reservations): State<Reservations>,
    Query(query): Query<ListQuery>,
) -> Result<Response, Error> {
    let page = Page::new(query.limit, query.offset)?;
    if let (Some(from), Some(to)) = (query.from, query.to)
        && from > to
    {
        return Err(FieldError::new("from", "`from` must not be after `to`").into());
    }
    let filter = Filter { status: query.status, from: query.from, to: query.to };
    let found = store::list(reservations.pool(), filter, page).await?;
    let reservations = found.iter().map(ReservationBody::from).collect();
    Ok(Json(ReservationPage { reservations, limit: page.limit, offset: page.offset }).into_response())
}

#[utoipa::path(get, path = "/api/v1/reservations/{reservation_id}", tag = "reservations", params(ReservationPath), security(("bearer" = ["reservations:manage"]), ("guest" = [])), responses(
    (status = 200, description = "The reservation, with any problems found in its pre-order", body = ReservationBody, headers(("ETag" = String, description = "The reservation's version"))),
))]
async fn show(
    credential: Credential,
    State(reservations): State<Reservations>,
    Path(ReservationPath { reservation_id }): Path<ReservationPath>,
) -> Result<Reply, Error> {
    authorize(&reservations, &credential, reservation_id).await?;
    let reservation =
        store::find(reservations.pool(), reservation_id).await?.ok_or_else(|| Error::not_found(reservation_id))?;
    Ok(reservation_reply(&reservation).map_err(StoreError::Encode)?)
}

#[utoipa::path(patch, path = "/api/v1/reservations/{reservation_id}/confirm", tag = "reservations", params(ReservationPath, IfMatch), security(("bearer" = ["reservations:manage"])), responses(
    (status = 200, description = "Confirmed; ReservationConfirmed published unless it already was", body = ReservationBody, headers(("ETag" = String, description = "The reservation's version"))),
    (status = 409, description = "It is completed or cancelled, or If-Match names another version", body = Problem, content_type = "application/problem+json"),
))]
async fn confirm(
    staff: Staff<ReservationsManage>,
    State(reservations): State<Reservations>,
    RequestId(request_id): RequestId,
    if_match: IfMatch,
    Path(ReservationPath { reservation_id }): Path<ReservationPath>,
) -> Result<Reply, Error> {
    let command = |reservation: &mut Reservation, _: &_, _| reservation.confirm();
    staff_change(&staff, &reservations, &request_id, if_match, reservation_id, command).await
}

/// Applies a staff member's status change to reservation `reservation_id`
/// and answers with the reservation: the one body of the staff-only
/// transitions.
async fn staff_change(
    staff: &Staff<ReservationsManage>,
    reservations: &Reservations,
    request_id: &str,
    if_match: IfMatch,
    reservation_id: ReservationId,
    command: impl FnOnce(&mut Reservation, &Rules, DateTime<Utc>) -> Result<Option<ReservationEvent>, DomainError>,
) -> Result<Reply, Error> {
    let actor = &staff.identity.subject;
    reservations.change(reservation_id, if_match, actor, request_id, command, reservation_reply).await
}

/// Why the reservation is called off.
#[derive(Debug, Deserialize, ToSchema)]
struct Cancellation {
    #[schema(schema_with = reason_schema)]
    reason: String,
}

fn reason_schema() -> Object {
    single_line_text(CancelReason::MAX_CHARS, "The guest is ill")
}

#[utoipa::path(patch, path = "/api/v1/reservations/{reservation_id}/cancel", tag = "reservations", params(ReservationPath, IfMatch), request_body = Cancellation, security(("bearer" = ["reservations:manage"]), ("guest" = [])), responses(
    (status = 200, description = "Cancelled, its seats free; ReservationCancelled published unless it already was", body = ReservationBody, headers(("ETag" = String, description = "The reservation's version"))),
    (status = 409, description = "It is completed, or If-Match names another version", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "The reason is empty or too long", body = Problem, content_type = "application/problem+json"),
))]
async fn cancel(
    credential: Credential,
    State(reservations): State<Reservations>,
    RequestId(request_id): RequestId,
    if_match: IfMatch,
    Path(ReservationPath { reservation_id }): Path<ReservationPath>,
    Json(body): Json<Cancellation>,
) -> Result<Reply, Error> {
    let actor = authorize(&reservations, &credential, reservation_id).await?;
    let reason: CancelReason = parse("reason", body.reason)?;
    let command = |reservation: &mut Reservation, _: &_, _| reservation.cancel(reason);
    reservations.change(reservation_id, if_match, &actor, &request_id, command, reservation_reply).await
}

#[utoipa::path(patch, path = "/api/v1/reservations/{reservation_id}/seat", tag = "reservations", params(ReservationPath, IfMatch), security(("bearer" = ["reservations:manage"])), responses(
    (status = 200, description = "Seated; ReservationSeated published with the pre-order (the order service opens the party's dine-in order from it) unless it already was", body = ReservationBody, headers(("ETag" = String, description = "The reservation's version"))),
    (status = 409, description = "It is not confirmed, seating has not opened yet (`seating_opens_minutes` before the start), the stay is over, or If-Match names another version", body = Problem, content_type = "application/problem+json"),
))]
async fn seat(
    staff: Staff<ReservationsManage>,
    State(reservations): State<Reservations>,
    RequestId(request_id): RequestId,
    if_match: IfMatch,
    Path(ReservationPath { reservation_id }): Path<ReservationPath>,
) -> Result<Reply, Error> {
    staff_change(&staff, &reservations, &request_id, if_match, reservation_id, Reservation::seat).await
}

#[utoipa::path(patch, path = "/api/v1/reservations/{reservation_id}/complete", tag = "reservations", params(ReservationPath, IfMatch), security(("bearer" = ["reservations:manage"])), responses(
    (status = 200, description = "Completed, its seats free; ReservationCompleted published unless it already was", body = ReservationBody, headers(("ETag" = String, description = "The reservation's version"))),
    (status = 409, description = "The party is not seated, or If-Match names another version", body = Problem, content_type = "application/problem+json"),
))]
async fn complete(
    staff: Staff<ReservationsManage>,
    State(reservations): State<Reservations>,
    RequestId(request_id): RequestId,
    if_match: IfMatch,
    Path(ReservationPath { reservation_id }): Path<ReservationPath>,
) -> Result<Reply, Error> {
    let command = |reservation: &mut Reservation, _: &_, _| reservation.complete();
    staff_change(&staff, &reservations, &request_id, if_match, reservation_id, command).await
}

#[utoipa::path(patch, path = "/api/v1/reservations/{reservation_id}/no-show", tag = "reservations", params(ReservationPath, IfMatch), security(("bearer" = ["reservations:manage"])), responses(
    (status = 200, description = "Marked a no-show, its seats free; ReservationNoShow published unless it already was", body = ReservationBody, headers(("ETag" = String, description = "The reservation's version"))),
    (status = 409, description = "It is not confirmed, the grace period after the start (`no_show_grace_minutes`) is not over, or If-Match names another version", body = Problem, content_type = "application/problem+json"),
))]
async fn no_show(
    staff: Staff<ReservationsManage>,
    State(reservations): State<Reservations>,
    RequestId(request_id): RequestId,
    if_match: IfMatch,
    Path(ReservationPath { reservation_id }): Path<ReservationPath>,
) -> Result<Reply, Error> {
    staff_change(&staff, &reservations, &request_id, if_match, reservation_id, Reservation::no_show).await
}
