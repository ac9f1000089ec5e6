//! `platform-ctl auth init` and `platform-ctl token`, run as an operator would.

use service_kit::auth::{AuthSettings, Scope, Verifier};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

type TestResult = anyhow::Result<()>;

/// Runs `platform-ctl` with `args` and the key directory given by `env`
/// (and nothing else of the caller's environment that would pick one).
fn ctl(env: &[(&str, &Path)], args: &[&str]) -> anyhow::Result<Output> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_platform-ctl"));
    command.env_remove("PLATFORM_AUTH_DIR").env_remove("XDG_CONFIG_HOME").env_remove("RUST_BACKTRACE");
    for (name, value) in env {
        command.env(name, value);
    }
    Ok(command.args(args).output()?)
}

fn verifier_for(dir: &Path) -> anyhow::Result<Verifier> {
    let settings = AuthSettings {
        public_key_pem: None,
        public_key_file: Some(dir.join("auth_public_key.pem")),
        ..AuthSettings::for_tests()
    };
    Ok(Verifier::from_settings(&settings)?)
}

#[test]
fn auth_init_writes_a_key_pair_with_a_private_key_only_its_owner_can_read() -> TestResult {
    let home = tempfile::tempdir()?;
    let dir = home.path().join("keys");

    let output = ctl(&[("PLATFORM_AUTH_DIR", &dir)], &["auth", "init"])?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let private = std::fs::metadata(dir.join("auth_private_key.pem"))?;
    assert_eq!(private.permissions().mode() & 0o777, 0o600);
    let public = std::fs::read_to_string(dir.join("auth_public_key.pem"))?;
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"), "{public}");
    assert!(String::from_utf8(output.stdout)?.contains("AUTH_PUBLIC_KEY_FILE="));
    Ok(())
}

#[test]
fn auth_init_refuses_to_replace_a_key_pair_unless_forced() -> TestResult {
    let home = tempfile::tempdir()?;
    let env = [("PLATFORM_AUTH_DIR", home.path())];
    assert!(ctl(&env, &["auth", "init"])?.status.success());
    let first = std::fs::read(home.path().join("auth_private_key.pem"))?;

    let again = ctl(&env, &["auth", "init"])?;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("pass --force to replace it"));
    assert_eq!(std::fs::read(home.path().join("auth_private_key.pem"))?, first, "the key is untouched");

    assert!(ctl(&env, &["auth", "init", "--force"])?.status.success());
    assert_ne!(std::fs::read(home.path().join("auth_private_key.pem"))?, first, "--force made a new key");
    Ok(())
}

#[tokio::test]
async fn token_prints_a_jwt_the_services_accept_with_its_scopes_subject_and_lifetime() -> TestResult {
    let home = tempfile::tempdir()?;
    let env = [("PLATFORM_AUTH_DIR", home.path())];
    assert!(ctl(&env, &["auth", "init"])?.status.success());

    let args =
        ["token", "--scope", "menus:write", "--scope", "reservations:manage", "--ttl", "8h", "--subject", "alice"];
    let output = ctl(&env, &args)?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let token = String::from_utf8(output.stdout)?.trim().to_owned();

    let identity = verifier_for(home.path())?.verify(&token).await?;
    assert_eq!(identity.subject, "alice");
    assert_eq!(identity.scopes, [Scope::MenusWrite, Scope::ReservationsManage]);
    let lifetime = identity.expires_at.saturating_sub(testkit::auth::now());
    assert!((8 * 3600 - 60..=8 * 3600).contains(&lifetime), "valid for {lifetime} s");
    Ok(())
}

#[tokio::test]
async fn the_default_key_directory_is_under_xdg_config_home_for_both_commands() -> TestResult {
    let config = tempfile::tempdir()?;
    let env = [("XDG_CONFIG_HOME", config.path())];
    assert!(ctl(&env, &["auth", "init"])?.status.success());
    let dir = config.path().join("restaurant-platform");
    assert!(dir.join("auth_private_key.pem").exists());

    let output = ctl(&env, &["token", "--all-scopes"])?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let identity = verifier_for(&dir)?.verify(String::from_utf8(output.stdout)?.trim()).await?;
    assert_eq!(identity.scopes, Scope::ALL);
    Ok(())
}

#[test]
fn token_refuses_an_unknown_scope_and_a_missing_key_pair_saying_what_to_do() -> TestResult {
    let home = tempfile::tempdir()?;
    let env = [("PLATFORM_AUTH_DIR", home.path())];

    let no_keys = ctl(&env, &["token", "--scope", "menus:write"])?;
    assert!(!no_keys.status.success());
    assert!(String::from_utf8_lossy(&no_keys.stderr).contains("platform-ctl auth init"));

    assert!(ctl(&env, &["auth", "init"])?.status.success());
    let unknown = ctl(&env, &["token", "--scope", "menus:admin"])?;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown scope \"menus:admin\""));
    assert!(unknown.stdout.is_empty(), "no token printed");
    Ok(())
}
