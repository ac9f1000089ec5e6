//! `/api/v1/restaurant`: the restaurant's booking rules — time zone, hours,
//! slots, seats and the limits of a booking's life. Anyone may read them;
//! staff with `reservations:manage` replace them.

use crate::domain::RulesDocument;
use crate::error::Error;
use crate::service::Reservations;
use axum::extract::State;
use axum::http::StatusCode;
use events::ReservationId;
use serde::Serialize;
use service_kit::auth::{Staff, scopes::ReservationsManage};
use service_kit::database::StoreError;
use service_kit::extract::{IfMatch, Json};
use service_kit::idempotency::Reply;
use utoipa::ToSchema;

#[utoipa::path(get, path = "/api/v1/restaurant", tag = "restaurant", responses(
    (status = 200, description = "The rules bookings are checked against", body = RulesDocument, headers(("ETag" = String, description = "The rules' version"))),
))]
pub(super) async fn show(State(reservations): State<Reservations>) -> Result<Reply, Error> {
    let current = reservations.refresh_rules().await?;
    Ok(Reply::json(StatusCode::OK, &current.rules.document()).map_err(StoreError::Encode)?.with_etag(current.version))
}

/// The rules after a change.
#[derive(Debug, Serialize, ToSchema)]
struct RulesChanged {
    rules: RulesDocument,
    /// Their version, also the `ETag`.
    version: i64,
    /// Upcoming bookings the new hours would not take. They are kept: call the guests, then cancel or move them.
    #[schema(value_type = Vec<uuid::Uuid>)]
    bookings_outside_hours: Vec<ReservationId>,
}

#[utoipa::path(put, path = "/api/v1/restaurant", tag = "restaurant", params(IfMatch), request_body = RulesDocument, security(("bearer" = ["reservations:manage"])), responses(
    (status = 200, description = "Replaced; bookings decide by them from now on. Lists the upcoming bookings outside the new hours", body = RulesChanged, headers(("ETag" = String, description = "The rules' version"))),
    (status = 409, description = "Fewer seats than some upcoming time already has booked (`detail` names it), or If-Match names another version", body = service_kit::Problem, content_type = "application/problem+json"),
    (status = 422, description = "A rule is invalid; `field` names it", body = service_kit::Problem, content_type = "application/problem+json"),
))]
pub(super) async fn replace(
    _staff: Staff<ReservationsManage>,
    State(reservations): State<Reservations>,
    if_match: IfMatch,
    Json(document): Json<RulesDocument>,
) -> Result<Reply, Error> {
    let rules = document.parse()?;
    let (current, outside) = reservations.change_rules(rules, if_match).await?;
    let body =
        RulesChanged { rules: current.rules.document(), version: current.version, bookings_outside_hours: outside };
    Ok(Reply::json(StatusCode::OK, &body).map_err(StoreError::Encode)?.with_etag(current.version))
}
