//! The extractors a handler states its caller with: [`Staff<S>`] for
//! staff-only operations, [`Credential`] where a guest's capability is
//! accepted as well. They run before the body is read, so a caller without
//! the right to an operation learns nothing about what it would have said
//! to the body.
//!
//! Rejections follow RFC 6750: 401 with `WWW-Authenticate: Bearer` when no
//! token was sent, `Bearer error="invalid_token", error_description="…"`
//! when it does not verify, and 403 with `Bearer error="insufficient_scope",
//! scope="…"` when it lacks the scope; all problem+json.

use super::{Identity, Scope, TokenError, Verifier, bearer, is_capability};
use crate::problem::Problem;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use std::marker::PhantomData;

/// Who sent a request that must carry a bearer token: staff (a verified
/// JWT) or a guest (a capability, for the service to check against what
/// it stored). No token, or one that does not verify, is a 401.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A verified staff token.
    Staff(Identity),
    /// A guest capability (`rsv_…`), not checked yet: only the service
    /// that issued it knows what it grants.
    Guest(String),
}

impl Credential {
    /// The staff identity, if it carries `scope`.
    ///
    /// # Errors
    /// [`MissingScope`] (a 403) for a staff token without the scope, or a guest capability.
    pub fn require(&self, scope: Scope) -> Result<&Identity, MissingScope> {
        match self {
            Self::Staff(identity) if identity.has(scope) => Ok(identity),
            _ => Err(MissingScope(scope)),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Credential {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else { return Err(missing_token()) };
        let Some(token) = bearer(value) else {
            return Err(invalid_token_because("the Authorization header must be `Bearer <token>`"));
        };
        if is_capability(token) {
            return Ok(Self::Guest(token.to_owned()));
        }
        let Some(verifier) = parts.extensions.get::<Verifier>() else {
            tracing::error!("no token verifier on the request: the router was not finished with service_kit::http");
            return Err(Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "authentication is not set up"));
        };
        let identity = verifier.verify(token).await.map_err(|error| invalid_token(&error))?;
        // Idempotency keys of a staff caller are theirs alone.
        parts.extensions.insert(crate::idempotency::Caller(identity.subject.clone()));
        Ok(Self::Staff(identity))
    }
}

/// The caller's token lacks the scope an operation needs. HTTP 403 with
/// `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this operation needs a staff token with scope {0}")]
pub struct MissingScope(pub Scope);

impl From<MissingScope> for Problem {
    fn from(missing: MissingScope) -> Self {
        insufficient_scope(missing.0)
    }
}

impl axum::response::IntoResponse for MissingScope {
    fn into_response(self) -> axum::response::Response {
        Problem::from(self).into_response()
    }
}

/// A scope an operation needs, as a type: `Staff<scopes::MenusWrite>`.
pub trait RequiredScope: Send + Sync + 'static {
    /// The scope.
    const SCOPE: Scope;
}

/// The scopes as types, for [`Staff`].
pub mod scopes {
    use super::{RequiredScope, Scope};

    macro_rules! scope_types {
        ($($name:ident),* $(,)?) => {$(
            #[doc = concat!("The scope [`Scope::", stringify!($name), "`].")]
            #[derive(Debug, Clone, Copy)]
            pub struct $name;
            impl RequiredScope for $name {
                const SCOPE: Scope = Scope::$name;
            }
        )*};
    }

    scope_types!(MenusWrite, ReservationsManage, InventoryManage, KitchenOperate, OrdersManage, PlatformOperate);
}

/// A staff caller whose token carries scope `S`; anyone else is refused
/// (401 without a valid token, 403 without the scope).
#[derive(Debug, Clone)]
pub struct Staff<S> {
    /// Who it is.
    pub identity: Identity,
    scope: PhantomData<S>,
}

impl<S: RequiredScope, St: Send + Sync> FromRequestParts<St> for Staff<S> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        let credential = Credential::from_request_parts(parts, state).await?;
        let identity = credential.require(S::SCOPE).map_err(Problem::from)?.clone();
        Ok(Self { identity, scope: PhantomData })
    }
}

/// 401 for a request without a token: `WWW-Authenticate: Bearer`.
pub fn missing_token() -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "this operation needs a bearer token in the Authorization header")
        .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
}

/// 401 for a token that does not verify, saying why.
pub fn invalid_token(error: &TokenError) -> Problem {
    invalid_token_because(&error.to_string())
}

fn invalid_token_because(description: &str) -> Problem {
    let challenge = format!("Bearer error=\"invalid_token\", error_description=\"{description}\"");
    let problem = Problem::new(StatusCode::UNAUTHORIZED, description);
    match HeaderValue::try_from(challenge) {
        Ok(value) => problem.with_header(header::WWW_AUTHENTICATE, value),
        Err(_) => {
            problem.with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""))
        }
    }
}

/// 403 for a token without `scope`.
pub fn insufficient_scope(scope: Scope) -> Problem {
    let challenge = format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\"");
    let problem = Problem::new(StatusCode::FORBIDDEN, MissingScope(scope).to_string());
    match HeaderValue::try_from(challenge) {
        Ok(value) => problem.with_header(header::WWW_AUTHENTICATE, value),
        Err(_) => problem,
    }
}
