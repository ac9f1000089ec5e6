//! Each stream's consumer groups and dead letters: `GET /api/v1/streams`
//! for every stream's length, groups (lag, pending, consumers) and what holds
//! trimming back; a stream's dead letters, and re-driving them, one or many,
//! each back onto its stream for the group that gave up on it.

use super::{Error, Operator};
use ::events::dead_letter::{self, DeadLetter};
use ::events::encoding::dead_letter_stream;
use ::events::inspect::{self, StreamOverview};
use ::events::retention::{self, EntryId, HeldBack};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use service_kit::Problem;
use service_kit::auth::{Staff, scopes::PlatformOperate};
use service_kit::extract::{Json, Path, Query};
use service_kit::values::FieldError;
use utoipa::{IntoParams, ToSchema};

/// Every stream with its groups, consumers, dead letters and trim point.
#[utoipa::path(get, path = "/api/v1/streams", tag = "platform", security(("bearer" = ["platform:operate"])), responses(
    (status = 200, description = "`{streams, min_age_seconds}`: per stream its `length`, `first_entry_id`, `last_entry_id`, `dead_letters`, `groups` (each with `consumers`, `pending`, `lag`, `oldest_pending`, `last_delivered`, `needs_from` and its `instances`), `furthest_behind` (the group whose entries retention keeps longest) and `trim` (where retention would trim now, and what holds it back: a group or the minimum age)", body = Object),
    (status = 503, description = "Redis is unavailable", body = Problem, content_type = "application/problem+json"),
))]
pub async fn overview(_staff: Staff<PlatformOperate>, State(operator): State<Operator>) -> Result<Response, Error> {
    let keys: Vec<String> = operator.streams().iter().map(|known| known.key.clone()).collect();
    let min_age = operator.min_age;
    let overviews = operator
        .redis(|mut connection| async move {
            let mut overviews = Vec::with_capacity(keys.len());
            for key in &keys {
                overviews.push(inspect::overview(&mut connection, key, min_age).await?);
            }
            Ok(overviews)
        })
        .await?;
    let streams: Vec<Value> =
        operator.streams().iter().zip(&overviews).map(|(known, overview)| stream_json(&known.name, overview)).collect();
    Ok(axum::Json(json!({ "streams": streams, "min_age_seconds": min_age.as_secs() })).into_response())
}

fn id_json(id: Option<EntryId>) -> Value {
    id.map_or(Value::Null, |id| json!(id.to_string()))
}

fn stream_json(name: &str, overview: &StreamOverview) -> Value {
    let groups: Vec<Value> = overview
        .trim
        .groups
        .iter()
        .map(|group| {
            let instances: Vec<Value> = overview
                .consumers
                .iter()
                .filter(|consumer| consumer.group == group.name)
                .map(|consumer| {
                    json!({
                        "name": consumer.name,
                        "pending": consumer.pending,
                        "idle_ms": u64::try_from(consumer.idle.as_millis()).unwrap_or(u64::MAX),
                    })
                })
                .collect();
            json!({
                "name": group.name,
                "consumers": group.consumers,
                "pending": group.pending,
                "lag": group.lag,
                "oldest_pending": id_json(group.oldest_pending),
                "last_delivered": group.last_delivered.to_string(),
                "needs_from": group.needs_from().to_string(),
                "instances": instances,
            })
        })
        .collect();
    let furthest_behind = retention::holding_back(&overview.trim.groups).map(
        |group| json!({ "group": group.name, "needs_from": group.needs_from().to_string(), "pending": group.pending }),
    );
    let trim = match &overview.trim.held_back {
        HeldBack::Group { name, at, pending } => {
            json!({ "below": at.to_string(), "held_back_by": "group", "group": name, "pending": pending })
        }
        HeldBack::MinAge { at } => json!({ "below": at.to_string(), "held_back_by": "min_age" }),
    };
    json!({
        "stream": name,
        "length": overview.length,
        "first_entry_id": id_json(overview.first),
        "last_entry_id": id_json(overview.last),
        "dead_letters": overview.dead_letters,
        "groups": groups,
        "furthest_behind": furthest_behind,
        "trim": trim,
    })
}

/// The stream a path names.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct StreamPath {
    /// The stream, without the deployment's prefix (`menu-events`).
    stream: String,
}

/// One dead letter of a stream.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct LetterPath {
    /// The stream, without the deployment's prefix (`menu-events`).
    stream: String,
    /// The letter's entry id on the stream's dead-letter stream.
    #[param(example = "1764626400000-0")]
    entry_id: String,
}

/// How many dead letters to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LettersQuery {
    /// At most this many, oldest first, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u16>,
}

/// The oldest dead letters of a stream, with why each was given up on.
#[utoipa::path(get, path = "/api/v1/streams/{stream}/dead-letters", tag = "platform", params(StreamPath, LettersQuery), security(("bearer" = ["platform:operate"])), responses(
    (status = 200, description = "`{stream, total, dead_letters}`: each letter's `entry_id`, `source_entry_id`, `group`, `deliveries`, `error`, `failed_at`, the event's `type`, `aggregate_id`, `version`, `correlation_id`, and every original field in `fields`", body = Object),
    (status = 404, description = "No such stream", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "limit out of range", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "Redis is unavailable", body = Problem, content_type = "application/problem+json"),
))]
pub async fn dead_letters(
    _staff: Staff<PlatformOperate>,
    State(operator): State<Operator>,
    Path(StreamPath { stream }): Path<StreamPath>,
    Query(query): Query<LettersQuery>,
) -> Result<Response, Error> {
    let limit = usize::from(query.limit.unwrap_or(100));
    if !(1..=500).contains(&limit) {
        return Err(FieldError::new("limit", "must be from 1 to 500").into());
    }
    let dead_letters = dead_letter_stream(&operator.stream(&stream)?.key);
    let (total, letters) = operator
        .redis(|mut connection| async move {
            let total = dead_letter::count(&mut connection, &dead_letters).await?;
            Ok((total, dead_letter::list(&mut connection, &dead_letters, limit).await?))
        })
        .await?;
    let letters: Vec<Value> = letters.iter().map(letter_json).collect();
    Ok(axum::Json(json!({ "stream": stream, "total": total, "dead_letters": letters })).into_response())
}

fn letter_json(letter: &DeadLetter) -> Value {
    let field = |name: &str| letter.fields.iter().find(|(field, _)| field == name).map(|(_, value)| value.as_str());
    let correlation_id = field("metadata")
        .and_then(|metadata| serde_json::from_str::<Value>(metadata).ok())
        .and_then(|metadata| metadata.get("correlation_id").cloned());
    json!({
        "entry_id": letter.entry_id,
        "source_entry_id": letter.source_entry_id,
        "group": letter.group,
        "deliveries": letter.deliveries,
        "error": letter.error,
        "failed_at": letter.failed_at,
        "type": field("type"),
        "aggregate_id": field("aggregate_id"),
        "version": field("version"),
        "correlation_id": correlation_id,
        "fields": letter.fields.iter().map(|(name, value)| (name.clone(), json!(value))).collect::<serde_json::Map<_, _>>(),
    })
}

/// Which dead letters to re-drive.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RedriveBody {
    /// Only the letters of this consumer group; every group's if absent.
    group: Option<String>,
    /// At most this many, oldest first, 1 to 10,000 (default 100).
    #[schema(minimum = 1, maximum = 10_000)]
    count: Option<u32>,
}

/// Puts the oldest dead letters of a stream back onto it, each for the group
/// that gave up on it (the other groups pass over it).
#[utoipa::path(post, path = "/api/v1/streams/{stream}/dead-letters/redrive", tag = "platform", params(StreamPath), request_body = RedriveBody, security(("bearer" = ["platform:operate"])), responses(
    (status = 200, description = "`{stream, redriven}`: how many letters went back", body = Object),
    (status = 404, description = "No such stream", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "count out of range", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "Redis is unavailable", body = Problem, content_type = "application/problem+json"),
))]
pub async fn redrive(
    staff: Staff<PlatformOperate>,
    State(operator): State<Operator>,
    Path(StreamPath { stream }): Path<StreamPath>,
    Json(body): Json<RedriveBody>,
) -> Result<Response, Error> {
    let count = body.count.unwrap_or(100);
    if !(1..=10_000).contains(&count) {
        return Err(FieldError::new("count", "must be from 1 to 10000").into());
    }
    let dead_letters = dead_letter_stream(&operator.stream(&stream)?.key);
    let group = body.group.filter(|group| !group.trim().is_empty());
    let redriven = operator
        .redis(|mut connection| async move {
            dead_letter::redrive(&mut connection, &dead_letters, count as usize, group.as_deref()).await
        })
        .await?;
    tracing::info!(operator = %staff.identity.subject, %stream, redriven, "dead letters re-driven");
    Ok(axum::Json(json!({ "stream": stream, "redriven": redriven })).into_response())
}

/// Puts one dead letter back onto its stream, for the group that gave up on it.
#[utoipa::path(post, path = "/api/v1/streams/{stream}/dead-letters/{entry_id}/redrive", tag = "platform", params(LetterPath), security(("bearer" = ["platform:operate"])), responses(
    (status = 200, description = "`{stream, redriven: 1}`: the letter went back", body = Object),
    (status = 404, description = "No such stream, or it has no such dead letter", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "entry_id is not an entry id", body = Problem, content_type = "application/problem+json"),
    (status = 503, description = "Redis is unavailable", body = Problem, content_type = "application/problem+json"),
))]
pub async fn redrive_one(
    staff: Staff<PlatformOperate>,
    State(operator): State<Operator>,
    Path(LetterPath { stream, entry_id }): Path<LetterPath>,
) -> Result<Response, Error> {
    let id: EntryId = entry_id
        .parse()
        .map_err(|_| FieldError::new("entry_id", format!("{entry_id:?} is not an entry id such as 1764626400000-0")))?;
    let dead_letters = dead_letter_stream(&operator.stream(&stream)?.key);
    let moved = operator
        .redis(|mut connection| async move {
            dead_letter::redrive_entry(&mut connection, &dead_letters, &id.to_string()).await
        })
        .await?;
    if !moved {
        return Err(Error::NoSuchLetter { stream, entry_id });
    }
    tracing::info!(operator = %staff.identity.subject, %stream, %entry_id, "dead letter re-driven");
    Ok(axum::Json(json!({ "stream": stream, "redriven": 1 })).into_response())
}
