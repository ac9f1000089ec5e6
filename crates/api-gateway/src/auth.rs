//! The gateway's share of authentication: screening each proxied request
//! before it is forwarded.
//!
//! The gateway is the platform's edge, so nothing a client says about who it
//! is or where it came from is passed on: identity headers (`X-User-*`) and
//! forwarding headers (`X-Forwarded-*`, `Forwarded`, `X-Real-IP`) sent by the
//! client are dropped, and the proxy then writes `X-Forwarded-*` afresh, the
//! client's address alone in `X-Forwarded-For`.
//!
//! `Authorization` is forwarded untouched: every service checks it itself,
//! since services are reachable on their own ports. The gateway only turns
//! away early a bearer JWT that does not verify, with the 401 a service
//! would give (service-kit's [`Verifier`], same settings). A guest
//! capability (`rsv_…`) is not a JWT and is passed through for the service
//! that issued it to check; a request without a token passes as anonymous.
//! What the screening found ([`Caller`]) is returned so that per-client
//! policies such as rate limits can key on the token's subject.

use http::HeaderMap;
use http::header::{self, HeaderName};
use service_kit::Problem;
use service_kit::auth::{Verifier, bearer, invalid_token, is_capability};

/// Who a screened request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No bearer token (or another scheme, left to the service to refuse).
    Anonymous,
    /// A guest capability, unchecked here.
    Guest,
    /// A staff token that verified; `subject` is its `sub`.
    Staff {
        /// The token's subject.
        subject: String,
    },
}

impl Caller {
    /// The verified subject, if the request carries a valid staff token.
    pub fn subject(&self) -> Option<&str> {
        match self {
            Self::Staff { subject } => Some(subject),
            Self::Anonymous | Self::Guest => None,
        }
    }
}

/// Screens requests with one verifier (its cache shared by clones).
#[derive(Debug, Clone)]
pub struct Screen {
    verifier: Verifier,
}

/// Header name prefixes a client may not send on: identities and forwarding.
const DROPPED_PREFIXES: [&str; 2] = ["x-user-", "x-forwarded-"];
/// Whole header names a client may not send on.
static DROPPED: [HeaderName; 2] = [header::FORWARDED, HeaderName::from_static("x-real-ip")];

impl Screen {
    /// Screening with `verifier`.
    pub fn new(verifier: Verifier) -> Self {
        Self { verifier }
    }

    /// Drops the identity and forwarding headers the client sent, and
    /// verifies its bearer JWT if it sent one.
    ///
    /// # Errors
    /// The 401 problem (`WWW-Authenticate: Bearer error="invalid_token"`) for
    /// a JWT that does not verify.
    pub async fn screen(&self, headers: &mut HeaderMap) -> Result<Caller, Problem> {
        drop_client_identity(headers);
        let Some(token) = headers.get(header::AUTHORIZATION).and_then(bearer) else { return Ok(Caller::Anonymous) };
        if is_capability(token) {
            return Ok(Caller::Guest);
        }
        match self.verifier.verify(token).await {
            Ok(identity) => Ok(Caller::Staff { subject: identity.subject }),
            Err(error) => Err(invalid_token(&error)),
        }
    }
}

fn drop_client_identity(headers: &mut HeaderMap) {
    let claimed = |name: &HeaderName| {
        DROPPED.contains(name) || DROPPED_PREFIXES.iter().any(|prefix| name.as_str().starts_with(prefix))
    };
    if !headers.keys().any(claimed) {
        return;
    }
    let names: Vec<HeaderName> = headers.keys().filter(|name| claimed(name)).cloned().collect();
    for name in names {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use service_kit::auth::AuthSettings;
    use testkit::auth::TestKeys;

    fn screen() -> anyhow::Result<Screen> {
        Ok(Screen::new(Verifier::from_settings(&AuthSettings::for_tests())?))
    }

    fn bearing(token: &str) -> anyhow::Result<HeaderMap> {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::try_from(format!("Bearer {token}"))?);
        Ok(headers)
    }

    #[tokio::test]
    async fn a_valid_staff_token_yields_its_subject_and_is_forwarded() -> anyhow::Result<()> {
        let token = TestKeys::shared()?.token(&["menus:write"])?;
        let mut headers = bearing(&token)?;
        let caller = screen()?.screen(&mut headers).await.map_err(|problem| anyhow::anyhow!("{problem:?}"))?;
        assert_eq!(caller.subject(), Some("test-staff"));
        assert_eq!(headers[header::AUTHORIZATION], format!("Bearer {token}"));
        Ok(())
    }

    #[tokio::test]
    async fn a_capability_passes_unverified_and_no_token_is_anonymous() -> anyhow::Result<()> {
        let screen = screen()?;
        let mut guest = bearing("rsv_not-checked-here")?;
        assert_eq!(screen.screen(&mut guest).await.ok(), Some(Caller::Guest));
        assert_eq!(screen.screen(&mut HeaderMap::new()).await.ok(), Some(Caller::Anonymous));
        Ok(())
    }

    #[tokio::test]
    async fn a_jwt_that_does_not_verify_is_a_401_naming_why() -> anyhow::Result<()> {
        let mut headers = bearing(&TestKeys::new()?.token(&["menus:write"])?)?;
        let Err(problem) = screen()?.screen(&mut headers).await else { anyhow::bail!("a foreign key's token passed") };
        assert_eq!(problem.status, 401);
        assert_eq!(
            problem.header(&header::WWW_AUTHENTICATE).and_then(|value| value.to_str().ok()),
            Some(r#"Bearer error="invalid_token", error_description="the token's signature does not verify""#)
        );
        Ok(())
    }

    #[test]
    fn identity_and_forwarding_headers_from_the_client_are_dropped() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-user-id", "admin"),
            ("x-user-scopes", "platform:operate"),
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=203.0.113.7"),
            ("x-real-ip", "203.0.113.7"),
            ("accept", "application/json"),
        ] {
            headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        drop_client_identity(&mut headers);
        let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["accept"]);
    }
}
