//! The operators' view of the sagas: list them by status, read one with its
//! history, retry a stuck one from where it stands, abort a running one (it
//! compensates now). Every route needs `platform:operate`.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use events::Outbox;
use saga::{Definitions, SagaId, Status};
use serde::Deserialize;
use service_kit::Problem;
use service_kit::auth::{Staff, scopes::PlatformOperate};
use service_kit::extract::{Path, Query};
use service_kit::values::Page;
use sqlx::PgPool;
use std::sync::Arc;
use utoipa::{IntoParams, OpenApi};

/// The saga routes' OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(list, show, retry, abort), components(schemas(Problem)))]
pub struct ApiDoc;

/// What the routes need: the saga tables, the outbox, the saga types.
#[derive(Debug, Clone)]
pub struct Sagas {
    pool: PgPool,
    outbox: Outbox,
    definitions: Arc<Definitions>,
}

impl Sagas {
    /// The sagas in `pool`, acted on through `outbox`.
    pub fn new(pool: PgPool, outbox: Outbox, definitions: Definitions) -> Self {
        Self { pool, outbox, definitions: Arc::new(definitions) }
    }
}

/// The saga routes.
pub fn router(sagas: Sagas) -> Router {
    Router::new()
        .route("/api/v1/sagas", get(list))
        .route("/api/v1/sagas/{saga_id}", get(show))
        .route("/api/v1/sagas/{saga_id}/retry", post(retry))
        .route("/api/v1/sagas/{saga_id}/abort", post(abort))
        .with_state(sagas)
}

/// Why a saga request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A query parameter breaks a rule. HTTP 422.
    #[error(transparent)]
    Invalid(#[from] service_kit::values::FieldError),
    /// The engine refused or failed: 404 for no such saga, 409 for an action
    /// its status does not allow, else 503/500.
    #[error(transparent)]
    Saga(#[from] saga::Error),
    /// The database failed.
    #[error("the order database: {0}")]
    Database(#[from] sqlx::Error),
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let problem = match &self {
            Self::Invalid(error) => error.clone().into(),
            Self::Saga(saga::Error::NotFound(_)) => Problem::not_found(self.to_string()),
            Self::Saga(saga::Error::InvalidState { .. }) => Problem::conflict(self.to_string()),
            Self::Saga(_) | Self::Database(_) if events::fault::is_transient(&self) => {
                Problem::unavailable("the order database", &self)
            }
            Self::Saga(_) | Self::Database(_) => Problem::internal(&self),
        };
        problem.into_response()
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only sagas in this status: running, compensating, completed, failed, stuck.
    #[param(value_type = Option<String>)]
    status: Option<Status>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u16>,
    /// Sagas to skip (default 0).
    #[param(minimum = 0, maximum = 1_000_000)]
    offset: Option<u32>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct SagaPath {
    /// The saga.
    #[param(value_type = uuid::Uuid)]
    saga_id: SagaId,
}

#[utoipa::path(get, path = "/api/v1/sagas", tag = "sagas", params(ListQuery), security(("bearer" = ["platform:operate"])), responses(
    (status = 200, description = "A page of sagas, newest first: `{sagas, total, limit, offset}`", body = Object),
    (status = 422, description = "A parameter out of range", body = Problem, content_type = "application/problem+json"),
))]
async fn list(
    _staff: Staff<PlatformOperate>,
    State(sagas): State<Sagas>,
    Query(query): Query<ListQuery>,
) -> Result<Response, Error> {
    let page = Page::new(query.limit, query.offset)?;
    let found = saga::list(&sagas.pool, query.status, page.limit, page.offset).await?;
    let body =
        serde_json::json!({"sagas": found.items, "total": found.total, "limit": page.limit, "offset": page.offset});
    Ok(axum::Json(body).into_response())
}

#[utoipa::path(get, path = "/api/v1/sagas/{saga_id}", tag = "sagas", params(SagaPath), security(("bearer" = ["platform:operate"])), responses(
    (status = 200, description = "The saga with every command sent and reply received", body = Object),
    (status = 404, description = "No such saga", body = Problem, content_type = "application/problem+json"),
))]
async fn show(
    _staff: Staff<PlatformOperate>,
    State(sagas): State<Sagas>,
    Path(SagaPath { saga_id }): Path<SagaPath>,
) -> Result<Response, Error> {
    let view = saga::find(&sagas.pool, saga_id).await?.ok_or(saga::Error::NotFound(saga_id))?;
    Ok(axum::Json(view).into_response())
}

#[utoipa::path(post, path = "/api/v1/sagas/{saga_id}/retry", tag = "sagas", params(SagaPath), security(("bearer" = ["platform:operate"])), responses(
    (status = 200, description = "The current step or compensation was sent again; the saga as it is now", body = Object),
    (status = 404, description = "No such saga", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "It is finished", body = Problem, content_type = "application/problem+json"),
))]
async fn retry(
    _staff: Staff<PlatformOperate>,
    State(sagas): State<Sagas>,
    Path(SagaPath { saga_id }): Path<SagaPath>,
) -> Result<Response, Error> {
    let mut work = sagas.outbox.begin(&sagas.pool).await?;
    saga::retry(&mut work, &sagas.definitions, saga_id).await?;
    work.commit().await?;
    show_now(&sagas, saga_id).await
}

#[utoipa::path(post, path = "/api/v1/sagas/{saga_id}/abort", tag = "sagas", params(SagaPath), security(("bearer" = ["platform:operate"])), responses(
    (status = 200, description = "It compensates now; the saga as it is now", body = Object),
    (status = 404, description = "No such saga", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "It is not running", body = Problem, content_type = "application/problem+json"),
))]
async fn abort(
    staff: Staff<PlatformOperate>,
    State(sagas): State<Sagas>,
    Path(SagaPath { saga_id }): Path<SagaPath>,
) -> Result<Response, Error> {
    let mut work = sagas.outbox.begin(&sagas.pool).await?;
    let why = format!("aborted by {}", staff.identity.subject);
    saga::abort(&mut work, &sagas.definitions, saga_id, &why).await?;
    work.commit().await?;
    show_now(&sagas, saga_id).await
}

async fn show_now(sagas: &Sagas, id: SagaId) -> Result<Response, Error> {
    let view = saga::find(&sagas.pool, id).await?.ok_or(saga::Error::NotFound(id))?;
    Ok(axum::Json(view).into_response())
}
