use super::*;
use axum::routing::get;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use testkit::auth::{TestKeys, hmac_signed, now, unsigned};

fn trusting(keys: &TestKeys) -> AuthSettings {
    AuthSettings { public_key_pem: None, public_key_file: Some(keys.public_key_file()), ..AuthSettings::for_tests() }
}

fn verifier(keys: &TestKeys) -> anyhow::Result<Verifier> {
    Ok(Verifier::from_settings(&trusting(keys))?)
}

fn claims_with(change: impl FnOnce(&mut serde_json::Value)) -> serde_json::Value {
    let mut claims = TestKeys::claims(&["menus:write"]);
    change(&mut claims);
    claims
}

#[tokio::test]
async fn a_token_of_the_configured_ed25519_key_names_its_subject_and_scopes() -> anyhow::Result<()> {
    let keys = TestKeys::new()?;
    let token = keys.token(&["menus:write", "reservations:manage", "not:ours"])?;

    let identity = verifier(&keys)?.verify(&token).await?;

    assert_eq!(identity.subject, "test-staff");
    assert_eq!(identity.scopes, [Scope::MenusWrite, Scope::ReservationsManage]);
    Ok(())
}

#[tokio::test]
async fn a_token_of_a_configured_p256_key_verifies_as_es256() -> anyhow::Result<()> {
    let keys = TestKeys::es256()?;
    let identity = verifier(&keys)?.verify(&keys.token(&["platform:operate"])?).await?;
    assert_eq!(identity.scopes, [Scope::PlatformOperate]);
    Ok(())
}

#[tokio::test]
async fn the_shared_test_key_is_the_one_ephemeral_settings_trust() -> anyhow::Result<()> {
    let verifier = Verifier::from_settings(&crate::Settings::ephemeral("db", "schema", "").auth)?;
    let identity = verifier.verify(&testkit::auth::staff_token()?).await?;
    assert_eq!(identity.scopes, Scope::ALL);
    Ok(())
}

#[tokio::test]
async fn bad_tokens_are_refused_with_the_reason() -> anyhow::Result<()> {
    let keys = TestKeys::new()?;
    let verifier = verifier(&keys)?;
    let other_key = TestKeys::new()?;
    let es256_key = TestKeys::es256()?;
    let valid = keys.token(&["menus:write"])?;
    let public_key_bytes = keys.public_key_pem().as_bytes().to_vec();
    let mut crit = jsonwebtoken::Header::new(Algorithm::EdDSA);
    crit.crit = Some(vec!["b64".to_owned()]);
    crit.extras.insert("b64", true);
    let cases = [
        ("expired", keys.sign(&claims_with(|c| c["exp"] = json!(now() - 120)))?, TokenError::Expired),
        ("not yet valid", keys.sign(&claims_with(|c| c["nbf"] = json!(now() + 600)))?, TokenError::NotYetValid),
        ("wrong audience", keys.sign(&claims_with(|c| c["aud"] = json!("elsewhere")))?, TokenError::WrongAudience),
        ("wrong issuer", keys.sign(&claims_with(|c| c["iss"] = json!("someone-else")))?, TokenError::WrongIssuer),
        ("no subject", keys.sign(&claims_with(|c| c["sub"] = json!(null)))?, TokenError::MissingClaim),
        ("wrong key", other_key.token(&["menus:write"])?, TokenError::BadSignature),
        ("another algorithm", es256_key.token(&["menus:write"])?, TokenError::WrongAlgorithm),
        (
            "alg none",
            unsigned(&json!({"alg": "none", "typ": "JWT"}), &TestKeys::claims(&["menus:write"]), b""),
            TokenError::Malformed,
        ),
        (
            "HS256 keyed with the public key",
            hmac_signed(&TestKeys::claims(&["menus:write"]), &public_key_bytes)?,
            TokenError::WrongAlgorithm,
        ),
        ("critical header", keys.sign_with(&crit, &TestKeys::claims(&["menus:write"]))?, TokenError::CriticalHeader),
        ("truncated", valid[..valid.len() - 10].to_owned(), TokenError::BadSignature),
        ("garbage", "not-a-token".to_owned(), TokenError::Malformed),
    ];
    for (case, token, expected) in cases {
        assert_eq!(verifier.verify(&token).await, Err(expected), "{case}");
    }
    Ok(())
}

#[tokio::test]
async fn a_token_expired_within_the_leeway_is_still_accepted() -> anyhow::Result<()> {
    let keys = TestKeys::new()?;
    let token = keys.sign(&claims_with(|c| c["exp"] = json!(now() - 5)))?;
    assert!(verifier(&keys)?.verify(&token).await.is_ok());

    let strict = Verifier::from_settings(&AuthSettings { leeway_seconds: 0, ..trusting(&keys) })?;
    assert_eq!(strict.verify(&token).await, Err(TokenError::Expired));
    Ok(())
}

#[tokio::test]
async fn a_verified_token_is_remembered_until_it_expires() -> anyhow::Result<()> {
    let keys = TestKeys::new()?;
    let verifier = verifier(&keys)?;
    let token = keys.token(&["menus:write"])?;
    verifier.verify(&token).await?;
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();

    assert!(verifier.cached(&digest, now()).is_some(), "served from the cache while valid");
    assert!(verifier.cached(&digest, now() + 3601).is_none(), "not served once past its exp");
    Ok(())
}

#[test]
fn without_a_key_or_jwks_url_verification_refuses_to_start() {
    let settings = AuthSettings { public_key_pem: None, ..AuthSettings::for_tests() };
    assert!(matches!(Verifier::from_settings(&settings), Err(AuthError::NotConfigured)));
    let both = AuthSettings { jwks_url: Some("http://127.0.0.1:1/jwks".to_owned()), ..AuthSettings::for_tests() };
    assert!(matches!(Verifier::from_settings(&both), Err(AuthError::BothConfigured)));
}

/// A JWKS server whose answer can change, counting its fetches.
struct JwksServer {
    url: String,
    fetches: Arc<AtomicUsize>,
    answer: Arc<Mutex<Option<serde_json::Value>>>,
    _cancel: tokio_util::sync::DropGuard,
}

async fn jwks_server(set: serde_json::Value) -> anyhow::Result<JwksServer> {
    let fetches = Arc::new(AtomicUsize::new(0));
    let answer = Arc::new(Mutex::new(Some(set)));
    let (counter, current) = (fetches.clone(), answer.clone());
    let router = axum::Router::new().route(
        "/jwks",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = current.lock().ok().and_then(|answer| answer.clone());
            async move {
                match body {
                    Some(body) => Ok(axum::Json(body)),
                    None => Err(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/jwks", listener.local_addr()?);
    let cancel = tokio_util::sync::CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move { axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned()).await });
    Ok(JwksServer { url, fetches, answer, _cancel: cancel.drop_guard() })
}

fn with_kid(keys: &TestKeys, kid: &str) -> anyhow::Result<String> {
    let mut header = jsonwebtoken::Header::new(keys.algorithm());
    header.kid = Some(kid.to_owned());
    keys.sign_with(&header, &TestKeys::claims(&["menus:write"]))
}

fn jwks_settings(server: &JwksServer, cooldown: u64) -> AuthSettings {
    AuthSettings {
        public_key_pem: None,
        jwks_url: Some(server.url.clone()),
        jwks_cooldown_seconds: cooldown,
        ..AuthSettings::for_tests()
    }
}

#[tokio::test]
async fn jwks_keys_are_found_by_kid_and_an_unknown_kid_refetches_once_per_cooldown() -> anyhow::Result<()> {
    let (ed, ec, unlisted) = (TestKeys::new()?, TestKeys::es256()?, TestKeys::new()?);
    let server = jwks_server(json!({"keys": [ed.jwk("ed-1")?, ec.jwk("ec-1")?]})).await?;
    let verifier = Verifier::from_settings(&jwks_settings(&server, 3600))?;

    assert_eq!(verifier.verify(&with_kid(&ed, "ed-1")?).await?.subject, "test-staff");
    assert_eq!(verifier.verify(&with_kid(&ec, "ec-1")?).await?.subject, "test-staff");
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1, "both keys came with the first fetch");

    for _ in 0..3 {
        assert_eq!(verifier.verify(&with_kid(&unlisted, "made-up")?).await, Err(TokenError::UnknownKey));
    }
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1, "no refetch within the cooldown");
    Ok(())
}

#[tokio::test]
async fn a_failed_jwks_refetch_keeps_the_keys_already_known() -> anyhow::Result<()> {
    let (ed, rotated) = (TestKeys::new()?, TestKeys::new()?);
    let server = jwks_server(json!({"keys": [ed.jwk("ed-1")?]})).await?;
    let verifier = Verifier::from_settings(&jwks_settings(&server, 0))?;
    verifier.verify(&with_kid(&ed, "ed-1")?).await?;

    if let Ok(mut answer) = server.answer.lock() {
        *answer = None;
    }
    assert_eq!(verifier.verify(&with_kid(&rotated, "ed-2")?).await, Err(TokenError::UnknownKey));
    assert_eq!(server.fetches.load(Ordering::SeqCst), 2, "the unknown kid refetched");
    assert!(verifier.verify(&with_kid(&ed, "ed-1")?).await.is_ok(), "the known key survived the failed fetch");

    if let Ok(mut answer) = server.answer.lock() {
        *answer = Some(json!({"keys": [ed.jwk("ed-1")?, rotated.jwk("ed-2")?]}));
    }
    assert!(verifier.verify(&with_kid(&rotated, "ed-2")?).await.is_ok(), "a rotated-in key is picked up");
    Ok(())
}

#[tokio::test]
async fn an_unreachable_jwks_leaves_tokens_refused_as_keys_unavailable() -> anyhow::Result<()> {
    let settings = AuthSettings {
        public_key_pem: None,
        jwks_url: Some("https://127.0.0.1:1/.well-known/jwks.json".to_owned()),
        ..AuthSettings::for_tests()
    };
    let verifier = Verifier::from_settings(&settings)?;
    let token = with_kid(&TestKeys::new()?, "any")?;
    assert_eq!(verifier.verify(&token).await, Err(TokenError::KeysUnavailable));
    Ok(())
}
