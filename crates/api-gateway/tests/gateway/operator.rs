//! The operator API (`/api/v1/events`, `/api/v1/streams`) against the real
//! Redis, on streams of the test's own: who may call it, the listing and its
//! filters, the live feed carrying on from a listing's position, the
//! overview of groups, and dead letters listed and re-driven.

use crate::helpers::{TestResult, problem, spawn_gateway};
use api_gateway::GatewaySettings;
use events::consumer::{Handler, HandlerError};
use events::retention::EntryId;
use events::{Consumer, ConsumerConfig, DomainEvent, EncodedEvent, MenuEvent, Metadata, OrderEvent};
use futures::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;
use testkit::Running;
use tokio_util::sync::CancellationToken;

/// A gateway whose operator API reads the streams under a prefix of its own.
async fn gateway() -> anyhow::Result<(Running, events::Streams)> {
    let prefix = testkit::unique("test-");
    let nowhere = "http://127.0.0.1:9";
    let gateway = spawn_gateway(GatewaySettings::for_upstreams(nowhere, nowhere).with_stream_prefix(&prefix)).await?;
    Ok((gateway, events::Streams::with_prefix(prefix)))
}

async fn publish<E: events::Event>(stream: &str, event: &DomainEvent<E>) -> anyhow::Result<String> {
    testkit::stream::append(stream, &EncodedEvent::encode(event)?.into_fields()).await
}

fn deactivated(correlation: &str) -> DomainEvent<MenuEvent> {
    DomainEvent::new(uuid::Uuid::now_v7(), 2, MenuEvent::MenuDeactivated {}, Metadata::new("menu-service", correlation))
}

fn types(listing: &Value) -> Vec<String> {
    listing["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| entry["type"].as_str().unwrap_or("-").to_owned())
        .collect()
}

#[tokio::test]
async fn the_operator_api_needs_platform_operate_and_is_in_the_openapi_document() -> TestResult {
    let (gateway, _) = gateway().await?;
    let anonymous = gateway.anonymous();
    let (status, body) = problem(anonymous.get("/api/v1/streams").await?).await?;
    assert_eq!(status, 401, "{body}");
    let kitchen = gateway.with_token(&testkit::auth::TestKeys::shared()?.token(&["kitchen:operate"])?)?;
    for path in ["/api/v1/streams", "/api/v1/events", "/api/v1/events/feed", "/api/v1/streams/menu-events/dead-letters"]
    {
        let (status, body) = problem(kitchen.get(path).await?).await?;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body["detail"].as_str().unwrap_or_default().contains("platform:operate"), "{body}");
    }
    let (status, _) =
        problem(kitchen.post("/api/v1/streams/menu-events/dead-letters/redrive", &json!({})).await?).await?;
    assert_eq!(status, 403);

    let document = gateway.get_json("/api-docs/openapi.json").await?;
    for path in [
        "/api/v1/events",
        "/api/v1/events/feed",
        "/api/v1/streams",
        "/api/v1/streams/{stream}/dead-letters",
        "/api/v1/streams/{stream}/dead-letters/redrive",
        "/api/v1/streams/{stream}/dead-letters/{entry_id}/redrive",
    ] {
        let operation = document["paths"][path].as_object().and_then(|item| item.values().next()).cloned();
        let operation = operation.ok_or_else(|| anyhow::anyhow!("{path} is not documented"))?;
        assert_eq!(operation["security"], json!([{"bearer": ["platform:operate"]}]), "{path}");
        assert!(operation["responses"]["403"].is_object(), "{path} documents its 403");
    }
    Ok(())
}

#[tokio::test]
async fn the_listing_filters_by_stream_type_aggregate_and_correlation_and_refuses_what_it_cannot_read() -> TestResult {
    let (gateway, streams) = gateway().await?;
    let (menus, orders) = (streams.of::<MenuEvent>(), streams.of::<OrderEvent>());
    let first = deactivated("req-a");
    publish(&menus, &first).await?;
    let last = publish(&menus, &deactivated("req-b")).await?;
    // Entries of one millisecond on two streams have no order between them: a millisecond later.
    let millis: u64 = last.split('-').next().unwrap_or_default().parse()?;
    testkit::stream::append_as(&orders, &format!("{}-0", millis + 1), &[("type", "Garbage")]).await?;

    let all = gateway.get_json("/api/v1/events").await?;
    assert_eq!(types(&all), ["-", "MenuDeactivated", "MenuDeactivated"], "newest first, across streams: {all}");
    assert_eq!(all["entries"][0]["stream"], "order-events", "named without the prefix");
    assert!(all["entries"][0]["error"].as_str().unwrap_or_default().contains("no `id` field"), "{all}");
    assert_eq!(all["entries"][0]["fields"]["type"], "Garbage");
    assert_eq!(all["truncated"], false);
    let position = all["stream_position"].as_str().unwrap_or_default();
    assert!(position.starts_with("menu-events=") && position.contains(",order-events="), "{position}");

    let req_a = gateway.get_json("/api/v1/events?correlation_id=req-a").await?;
    assert_eq!(req_a["entries"].as_array().map(Vec::len), Some(1), "{req_a}");
    let entry = &req_a["entries"][0];
    assert_eq!(entry["id"], first.id.to_string());
    assert_eq!(entry["aggregate_id"], first.aggregate_id.to_string());
    assert_eq!((entry["version"].as_i64(), entry["correlation_id"].as_str()), (Some(2), Some("req-a")));
    assert_eq!(entry["metadata"]["source"], "menu-service");
    assert_eq!(entry["data"], json!({}));
    let by_aggregate = gateway.get_json(&format!("/api/v1/events?aggregate_id={}", first.aggregate_id)).await?;
    assert_eq!(types(&by_aggregate), ["MenuDeactivated"]);
    let by_type = gateway.get_json("/api/v1/events?type=MenuDeactivated&stream=menu-events&limit=1").await?;
    assert_eq!(types(&by_type), ["MenuDeactivated"], "the limit holds");
    assert_eq!(types(&gateway.get_json("/api/v1/events?stream=order-events&type=MenuDeactivated").await?), [""; 0]);

    let (status, body) = problem(gateway.get("/api/v1/events?stream=menu-events.dlq").await?).await?;
    assert_eq!((status, body["detail"].as_str()), (404, Some("there is no stream \"menu-events.dlq\"")));
    let (status, body) = problem(gateway.get("/api/v1/events?limit=501").await?).await?;
    assert_eq!((status, body["field"].as_str()), (422, Some("limit")));
    let (status, _) = problem(gateway.get("/api/v1/events?aggregate_id=not-a-uuid").await?).await?;
    assert_eq!(status, 400);
    let (status, body) = problem(gateway.get("/api/v1/events/feed?after=menu-events=yesterday").await?).await?;
    assert_eq!((status, body["field"].as_str()), (422, Some("after")));
    Ok(())
}

/// The next `data:` of an SSE body, with the `id:` before it.
async fn next_event(
    body: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buffer: &mut String,
) -> anyhow::Result<(String, Value)> {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let field = |name: &str| frame.lines().find_map(|line| line.strip_prefix(name)).map(str::to_owned);
            if let Some(data) = field("data: ") {
                return Ok((field("id: ").unwrap_or_default(), serde_json::from_str(&data)?));
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the feed ended"))??;
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn the_feed_carries_on_from_a_listing_and_resumes_after_the_last_event_it_sent() -> TestResult {
    let (gateway, streams) = gateway().await?;
    let (menus, orders) = (streams.of::<MenuEvent>(), streams.of::<OrderEvent>());
    publish(&menus, &deactivated("before")).await?;
    let listing = gateway.get_json("/api/v1/events").await?;
    let position = listing["stream_position"].as_str().unwrap_or_default().to_owned();

    // Appended between the listing and the feed: it must not be missed.
    publish(&menus, &deactivated("between")).await?;
    let feed = gateway.get(&format!("/api/v1/events/feed?after={position}&correlation_id=between")).await?;
    assert_eq!(feed.status(), 200);
    assert_eq!(feed.headers()["content-type"], "text/event-stream");
    let mut body = feed.bytes_stream();
    let mut buffer = String::new();
    let (resume_at, between) = next_event(&mut body, &mut buffer).await?;
    assert_eq!(
        (between["correlation_id"].as_str(), between["stream"].as_str()),
        (Some("between"), Some("menu-events"))
    );
    assert!(resume_at.contains(&format!("menu-events={}", between["entry_id"].as_str().unwrap_or("?"))), "{resume_at}");

    // Live, from every stream, and resumed with Last-Event-ID after a drop.
    let unfiltered = gateway.get(&format!("/api/v1/events/feed?after={position}")).await?;
    let mut body = unfiltered.bytes_stream();
    let mut buffer = String::new();
    let (after_between, _) = next_event(&mut body, &mut buffer).await?;
    drop(body);
    testkit::stream::append(&orders, &[("type", "Garbage")]).await?;
    publish(&menus, &deactivated("later")).await?;
    let resumed =
        gateway.client.get(gateway.url("/api/v1/events/feed")).header("last-event-id", &after_between).send().await?;
    let mut body = resumed.bytes_stream();
    let mut buffer = String::new();
    // Across streams in time order; entries of different streams may share
    // an id (one millisecond), and then either may come first.
    let mut resumed_with = Vec::new();
    let mut entry_ids = Vec::new();
    for _ in 0..2 {
        let (_, event) = next_event(&mut body, &mut buffer).await?;
        entry_ids.push(event["entry_id"].as_str().unwrap_or_default().parse::<EntryId>()?);
        resumed_with
            .push((event["stream"].as_str().map(str::to_owned), event["correlation_id"].as_str().map(str::to_owned)));
    }
    assert!(entry_ids[0] <= entry_ids[1], "sent out of time order: {entry_ids:?}");
    resumed_with.sort();
    assert_eq!(
        resumed_with,
        [(Some("menu-events".to_owned()), Some("later".to_owned())), (Some("order-events".to_owned()), None)]
    );
    Ok(())
}

/// Refuses every event, so that each is dead-lettered.
struct Refuse;

impl Handler<MenuEvent> for Refuse {
    async fn handle(&self, _event: &DomainEvent<MenuEvent>) -> Result<(), HandlerError> {
        Err(HandlerError::rejected(anyhow::anyhow!("the menu view is broken")))
    }
}

#[tokio::test]
async fn the_overview_shows_groups_and_dead_letters_which_are_redriven_one_or_all() -> TestResult {
    let (gateway, streams) = gateway().await?;
    let menus = streams.of::<MenuEvent>();
    for correlation in ["one", "two", "three"] {
        publish(&menus, &deactivated(correlation)).await?;
    }
    let config = ConsumerConfig {
        max_deliveries: 1,
        block: Duration::from_millis(100),
        ..ConsumerConfig::new(&menus, "order-service", "instance-1")
    };
    let cancel = CancellationToken::new();
    let consumer = tokio::spawn(Consumer::new(testkit::redis_client()?, config, Refuse).run(cancel.clone()));
    testkit::eventually(Duration::from_secs(10), "all three dead-lettered", || async {
        let overview = gateway.get_json("/api/v1/streams").await?;
        Ok(overview["streams"][0]["dead_letters"] == 3)
    })
    .await?;
    cancel.cancel();
    consumer.await?;

    let overview = gateway.get_json("/api/v1/streams").await?;
    assert_eq!(overview["min_age_seconds"], 86_400);
    let names: Vec<&str> =
        overview["streams"].as_array().into_iter().flatten().filter_map(|s| s["stream"].as_str()).collect();
    assert_eq!(names.len(), 7, "every stream: {names:?}");
    let menu = &overview["streams"][0];
    assert_eq!((menu["stream"].as_str(), menu["length"].as_u64()), (Some("menu-events"), Some(3)));
    let group = &menu["groups"][0];
    assert_eq!(
        (group["name"].as_str(), group["pending"].as_u64(), group["lag"].as_u64()),
        (Some("order-service"), Some(0), Some(0))
    );
    assert_eq!(group["instances"][0]["name"], "instance-1");
    assert_eq!(menu["furthest_behind"]["group"], "order-service");
    assert_eq!(menu["trim"]["held_back_by"], "min_age", "a day of history is kept: {menu}");

    let letters = gateway.get_json("/api/v1/streams/menu-events/dead-letters?limit=2").await?;
    assert_eq!((letters["total"].as_u64(), letters["dead_letters"].as_array().map(Vec::len)), (Some(3), Some(2)));
    let letter = &letters["dead_letters"][0];
    assert_eq!((letter["group"].as_str(), letter["type"].as_str()), (Some("order-service"), Some("MenuDeactivated")));
    assert_eq!(letter["correlation_id"], "one");
    assert!(letter["error"].as_str().unwrap_or_default().contains("the menu view is broken"), "{letter}");

    let one = letter["entry_id"].as_str().unwrap_or_default().to_owned();
    let path = format!("/api/v1/streams/menu-events/dead-letters/{one}/redrive");
    let redriven: Value = gateway.post(&path, &json!({})).await?.json().await?;
    assert_eq!(redriven, json!({"stream": "menu-events", "redriven": 1}));
    let (status, body) = problem(gateway.post(&path, &json!({})).await?).await?;
    assert_eq!(
        (status, body["detail"].as_str()),
        (404, Some(format!("menu-events has no dead letter {one}").as_str()))
    );
    let (status, body) =
        problem(gateway.post("/api/v1/streams/menu-events/dead-letters/latest/redrive", &json!({})).await?).await?;
    assert_eq!((status, body["field"].as_str()), (422, Some("entry_id")));
    let (status, _) = problem(gateway.post("/api/v1/streams/nowhere/dead-letters/redrive", &json!({})).await?).await?;
    assert_eq!(status, 404);
    let (status, body) =
        problem(gateway.post("/api/v1/streams/menu-events/dead-letters/redrive", &json!({"count": 0})).await?).await?;
    assert_eq!((status, body["field"].as_str()), (422, Some("count")));

    let other: Value = gateway
        .post("/api/v1/streams/menu-events/dead-letters/redrive", &json!({"group": "someone-else"}))
        .await?
        .json()
        .await?;
    assert_eq!(other["redriven"], 0, "only the group's letters");
    let rest: Value =
        gateway.post("/api/v1/streams/menu-events/dead-letters/redrive", &json!({})).await?.json().await?;
    assert_eq!(rest["redriven"], 2);
    let back = gateway.get_json("/api/v1/events?stream=menu-events").await?;
    let redriven_for: Vec<&str> =
        back["entries"].as_array().into_iter().flatten().filter_map(|e| e["redriven_for"].as_str()).collect();
    assert_eq!(redriven_for, ["order-service"; 3], "back on the stream, each for the group that gave up on it");
    Ok(())
}
