//! `docker-compose.microservices.yml` and the `Dockerfile`, checked as far
//! as this machine allows without a Docker engine, and against the catalog
//! of services (`service_kit::catalog`): the compose file runs every service
//! of the catalog and nothing else, its references resolve, every variable it
//! sets is one the binary reads, ports agree with the catalog, the gateway
//! knows every service's URL, Redis keeps an append-only file, and every
//! image target and binary it names exists.

use clap::{Args, Command};
use serde_yaml::Value;
use service_kit::catalog;
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
    let mut expected: BTreeSet<String> = catalog::SERVICES.iter().map(|service| service.name.to_owned()).collect();
    expected.extend(["api-gateway", "postgres", "redis"].map(str::to_owned));
    assert_eq!(names, expected, "the compose file runs the catalog's services");

    let settings = |name: &'static str| service_kit::Settings::augment_args(Command::new(name));
    let mut gateway = env_names(api_gateway::GatewaySettings::augment_args(Command::new("api-gateway")));
    gateway.extend(catalog::SERVICES.iter().map(catalog::Entry::url_variable));
    let accepted = [
        ("menu-service", env_names(settings("menu-service"))),
        (
            "reservation-service",
            env_names(reservation_service::BookingSettings::augment_args(settings("reservation-service"))),
        ),
        (
            "inventory-service",
            env_names(inventory_service::InventorySettings::augment_args(settings("inventory-service"))),
        ),
        ("kitchen-service", env_names(kitchen_service::KitchenSettings::augment_args(settings("kitchen-service")))),
        ("order-service", env_names(order_service::OrderSettings::augment_args(settings("order-service")))),
        ("api-gateway", gateway),
    ];
    let covered: BTreeSet<&str> =
        accepted.iter().map(|(name, _)| *name).filter(|name| *name != "api-gateway").collect();
    assert_eq!(covered, catalog::SERVICES.iter().map(|service| service.name).collect(), "a service is not checked");
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile"))?;
    for (name, accepted) in accepted {
        let service = &compose["services"][name];
        let environment =
            service["environment"].as_mapping().ok_or_else(|| anyhow::anyhow!("{name}: no environment"))?;
        for variable in environment.keys().map(text).filter(|key| key != "<<") {
            assert!(accepted.contains(&variable), "{name} does not read {variable}");
        }
        let port = text(&service["environment"]["SERVER_PORT"]);
        let catalog_port =
            catalog::SERVICES.iter().find(|entry| entry.name == name).map_or(catalog::GATEWAY_PORT, |entry| entry.port);
        assert_eq!(port, catalog_port.to_string(), "{name} listens on its catalog port");
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
    for service in catalog::SERVICES {
        let url = format!("http://{}:{}", service.name, service.port);
        let gateway = &compose["services"]["api-gateway"];
        assert_eq!(gateway["environment"][service.url_variable().as_str()].as_str(), Some(url.as_str()));
        assert!(!gateway["depends_on"][service.name].is_null(), "the gateway does not wait for {}", service.name);
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
    for name in catalog::SERVICES.iter().map(|service| service.name).chain(["api-gateway"]) {
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
    let mut binaries: Vec<&str> = catalog::SERVICES.iter().map(|service| service.name).collect();
    binaries.extend(["api-gateway", "platform-ctl"]);
    assert_eq!(copied, binaries);
    for binary in &copied {
        assert!(root().join(format!("crates/{binary}/src/main.rs")).exists(), "no crate builds {binary}");
    }
    let stages: Vec<&str> = dockerfile.lines().filter(|line| line.starts_with("FROM ")).collect();
    assert_eq!(stages.len(), catalog::SERVICES.len() + 3, "build, runtime and one stage per service: {stages:?}");
    assert!(dockerfile.contains("cargo build --release --locked --bins"));
    Ok(())
}
