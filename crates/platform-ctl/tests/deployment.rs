//! `docker-compose.microservices.yml` and the `Dockerfile`, checked as far
//! as this machine allows without a Docker engine: the compose file parses,
//! its references resolve, every variable it sets is one the binary reads,
//! ports agree, Redis keeps an append-only file, and every image target and
//! binary it names exists.

use clap::{Args, Command};
use serde_yaml::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

type TestResult = anyhow::Result<()>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn compose() -> anyhow::Result<Value> {
    Ok(serde_yaml::from_str(&std::fs::read_to_string(root().join("docker-compose.microservices.yml"))?)?)
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        other => format!("{other:?}"),
    }
}

/// The environment variables a binary with these settings reads.
fn env_names(command: Command) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = command
        .get_arguments()
        .filter_map(|argument| argument.get_env())
        .map(|name| name.to_string_lossy().into_owned())
        .collect();
    names.extend(["RUST_LOG".to_owned(), "LOG_FORMAT".to_owned()]);
    names
}

#[test]
fn the_compose_file_wires_every_service_with_settings_it_reads() -> TestResult {
    let compose = compose()?;
    let services = compose["services"].as_mapping().ok_or_else(|| anyhow::anyhow!("no services"))?;
    let names: BTreeSet<String> = services.keys().map(text).collect();
    let expected = ["api-gateway", "menu-service", "postgres", "redis", "reservation-service"];
    assert_eq!(names, expected.iter().map(|name| (*name).to_owned()).collect());

    let accepted = [
        ("menu-service", env_names(service_kit::Settings::augment_args(Command::new("menu-service")))),
        (
            "reservation-service",
            env_names(reservation_service::BookingSettings::augment_args(service_kit::Settings::augment_args(
                Command::new("reservation-service"),
            ))),
        ),
        ("api-gateway", env_names(api_gateway::GatewaySettings::augment_args(Command::new("api-gateway")))),
    ];
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile"))?;
    for (name, accepted) in accepted {
        let service = &compose["services"][name];
        let environment =
            service["environment"].as_mapping().ok_or_else(|| anyhow::anyhow!("{name}: no environment"))?;
        for variable in environment.keys().map(text).filter(|key| key != "<<") {
            assert!(accepted.contains(&variable), "{name} does not read {variable}");
        }
        let port = text(&service["environment"]["SERVER_PORT"]);
        if name == "api-gateway" {
            assert_eq!(
                service["ports"][0].as_str(),
                Some(format!("{port}:{port}").as_str()),
                "{name} publishes its port"
            );
        } else {
            assert!(service["ports"].is_null(), "{name} is reached through the gateway only");
        }
        let health = service["healthcheck"]["test"].as_sequence().map(|test| test.iter().map(text).collect::<Vec<_>>());
        assert!(
            health.is_some_and(|test| test.iter().any(|part| part == &format!("http://127.0.0.1:{port}/ready"))),
            "{name} is checked on its /ready"
        );
        assert_eq!(text(&service["build"]["target"]), name);
        assert!(dockerfile.contains(&format!("FROM runtime AS {name}\n")), "the Dockerfile has no target {name}");
        assert!(dockerfile.contains(&format!("CMD [\"{name}\"]")), "target {name} does not run {name}");
        assert!(root().join(format!("crates/{name}/src/main.rs")).exists(), "no binary {name}");
    }

    for (name, service) in services {
        for dependency in service["depends_on"].as_mapping().into_iter().flat_map(|deps| deps.keys()) {
            let dependency = text(dependency);
            assert!(names.contains(&dependency), "{} depends on unknown {dependency}", text(name));
            assert!(
                !compose["services"][dependency.as_str()]["healthcheck"].is_null(),
                "{dependency} has no healthcheck"
            );
        }
    }
    for (variable, url) in [
        ("MENU_SERVICE_URL", "http://menu-service:8081"),
        ("RESERVATION_SERVICE_URL", "http://reservation-service:8082"),
    ] {
        assert_eq!(compose["services"]["api-gateway"]["environment"][variable].as_str(), Some(url));
    }
    let redis: Vec<String> =
        compose["services"]["redis"]["command"].as_sequence().into_iter().flatten().map(text).collect();
    assert!(redis.windows(2).any(|pair| pair == ["--appendonly", "yes"]), "Redis without AOF: {redis:?}");
    assert!(compose["services"]["redis"]["volumes"][0].as_str().is_some_and(|volume| volume.ends_with(":/data")));
    assert!(
        redis.windows(2).any(|pair| pair[0] == "--requirepass" && pair[1].starts_with("${REDIS_PASSWORD:?")),
        "Redis without a password from .env: {redis:?}"
    );
    for store in ["postgres", "redis"] {
        assert!(compose["services"][store]["ports"].is_null(), "{store} is published");
    }
    assert_eq!(
        text(&compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]),
        "${POSTGRES_PASSWORD:?set it in .env}"
    );
    for name in ["menu-service", "reservation-service", "api-gateway"] {
        let password = text(&compose["services"][name]["environment"]["REDIS_PASSWORD"]);
        let password =
            if password == "Null" { text(&compose["x-service-environment"]["REDIS_PASSWORD"]) } else { password };
        assert_eq!(password, "${REDIS_PASSWORD:?set it in .env}", "{name} gets the Redis password");
    }
    let example = std::fs::read_to_string(root().join(".env.example"))?;
    assert!(example.contains("POSTGRES_PASSWORD=") && example.contains("REDIS_PASSWORD="));
    assert!(std::fs::read_to_string(root().join(".gitignore"))?.lines().any(|line| line == "/.env"));
    Ok(())
}

#[test]
fn the_dockerfile_builds_every_binary_it_copies() -> TestResult {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile"))?;
    let copied: Vec<&str> =
        dockerfile.split_whitespace().filter_map(|word| word.strip_prefix("target/release/")).collect();
    assert_eq!(copied, ["menu-service", "reservation-service", "api-gateway", "platform-ctl"]);
    for binary in &copied {
        assert!(root().join(format!("crates/{binary}/src/main.rs")).exists(), "no crate builds {binary}");
    }
    let stages: Vec<&str> = dockerfile.lines().filter(|line| line.starts_with("FROM ")).collect();
    assert_eq!(stages.len(), 5, "build, runtime and one stage per service: {stages:?}");
    assert!(dockerfile.contains("cargo build --release --locked --bins"));
    Ok(())
}
