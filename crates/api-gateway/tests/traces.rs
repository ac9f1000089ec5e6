//! Traces across the platform, recorded in memory with the layer every
//! service installs: requests through the gateway to the real services on
//! their own schemas and one stream prefix, and everything that follows on
//! the streams, in the trace the caller's `traceparent` names.

use anyhow::Context;
use api_gateway::{Application, GatewaySettings};
use opentelemetry::trace::{SpanKind, TraceId};
use opentelemetry_sdk::trace::SpanData;
use serde_json::{Value, json};
use service_kit::Settings;
use service_kit::catalog::{INVENTORY, KITCHEN, ORDER, RESERVATION};
use std::time::Duration;
use testkit::traces::{Recorder, Trace, attribute};
use testkit::{Running, TestDb};
use tracing::level_filters::LevelFilter;

type TestResult = anyhow::Result<()>;

const PATIENCE: Duration = Duration::from_secs(20);

fn recorder() -> &'static Recorder {
    Recorder::global(|provider| service_kit::telemetry::traces_layer(provider, LevelFilter::INFO))
}

/// A caller's trace: its `traceparent`, naming a span of the caller's that the recorder never sees.
struct Caller {
    trace_id: TraceId,
    span_id: String,
}

impl Caller {
    fn new() -> anyhow::Result<Self> {
        let trace_id = TraceId::from_hex(&uuid::Uuid::new_v4().simple().to_string())?;
        Ok(Self { trace_id, span_id: uuid::Uuid::new_v4().simple().to_string()[..16].to_owned() })
    }

    fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, self.span_id)
    }
}

/// Services on fresh schemas and one stream prefix, and the gateway in front of them.
struct Platform {
    gateway: Running,
    prefix: String,
    _services: Vec<(Running, TestDb)>,
}

impl Platform {
    /// The services `start` starts, by name, each given its settings.
    async fn start<F, Fut>(names: &[&'static str], start: F) -> anyhow::Result<Self>
    where
        F: Fn(&'static str, Settings) -> Fut,
        Fut: Future<Output = anyhow::Result<Running>>,
    {
        recorder();
        let prefix = testkit::unique("test-");
        let mut services = Vec::new();
        let mut settings = GatewaySettings::for_upstreams("http://127.0.0.1:1", "http://127.0.0.1:1");
        for &name in names {
            let db = TestDb::new().await?;
            let service = start(name, Settings::ephemeral("platform_test", &db.schema, &prefix)).await?;
            settings = settings.with_upstream(name, &service.base);
            services.push((service, db));
        }
        let gateway = Application::build(&settings).await?;
        let gateway = Running::spawn(gateway.port()?, |cancel| gateway.run_until_stopped(cancel)).as_staff()?;
        Ok(Self { gateway, prefix, _services: services })
    }

    fn stream(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// `method path` through the gateway with `body`, in `caller`'s trace if given.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
        caller: Option<&Caller>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut request = self.gateway.client.request(method, self.gateway.url(path)).json(body);
        if let Some(caller) = caller {
            request = request.header("traceparent", caller.traceparent());
        }
        Ok(request.send().await?)
    }

    async fn created(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let response = self.call(reqwest::Method::POST, path, body, None).await?;
        anyhow::ensure!(response.status().is_success(), "POST {path} answered {}", response.status());
        Ok(response.json().await?)
    }
}

async fn start_service(name: &'static str, settings: Settings) -> anyhow::Result<Running> {
    let application = match name {
        "menu-service" => menu_service::build(&settings).await?,
        "reservation-service" => {
            reservation_service::build(&settings, &reservation_service::BookingSettings::default()).await?
        }
        "inventory-service" => {
            inventory_service::build(&settings, &inventory_service::InventorySettings::default()).await?
        }
        "kitchen-service" => kitchen_service::build(&settings, &kitchen_service::KitchenSettings::default()).await?,
        "order-service" => order_service::build(&settings, &order_service::OrderSettings::default()).await?,
        other => anyhow::bail!("no service {other}"),
    };
    Ok(Running::spawn(application.port()?, |cancel| application.run_until_stopped(cancel)))
}

fn text(span: &SpanData, key: &str) -> Option<String> {
    attribute(span, key).map(ToString::to_string)
}

/// The one span of `trace` that is a consumer's `process` span of `stream` in `group`.
fn processed<'a>(trace: &'a Trace, stream: &str, group: &str) -> anyhow::Result<&'a SpanData> {
    let name = format!("process {stream}");
    let spans: Vec<&SpanData> = trace
        .named(&name)
        .into_iter()
        .filter(|span| text(span, "messaging.consumer.group.name").as_deref() == Some(group))
        .collect();
    match spans.as_slice() {
        [span] => Ok(span),
        _ => anyhow::bail!("{} {name} spans of {group} in:\n{}", spans.len(), trace.render()),
    }
}

#[tokio::test]
async fn the_upstream_gets_the_gateways_traceparent_in_the_callers_trace_and_the_callers_tracestate() -> TestResult {
    recorder();
    let (seen, mut headers) = tokio::sync::mpsc::unbounded_channel();
    let echo = axum::Router::new().fallback(move |request: axum::extract::Request| async move {
        let _ = seen.send(request.headers().clone());
        "ok"
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(axum::serve(listener, echo).into_future());
    let gateway = Application::build(&GatewaySettings::for_upstreams(&url, &url)).await?;
    let gateway = Running::spawn(gateway.port()?, |cancel| gateway.run_until_stopped(cancel)).as_staff()?;

    let caller = Caller::new()?;
    let answered = gateway
        .client
        .get(gateway.url("/api/v1/menus"))
        .header("traceparent", caller.traceparent())
        .header("tracestate", "vendor=1")
        .send()
        .await?;
    assert_eq!(answered.status(), 200);
    let headers = headers.recv().await.context("the upstream got the request")?;
    let trace = recorder().trace(caller.trace_id, PATIENCE, |trace| trace.spans.len() == 2).await?;
    let call = trace.one("GET")?;
    let forwarded = headers.get("traceparent").and_then(|value| value.to_str().ok());
    assert_eq!(forwarded, Some(format!("00-{}-{}-01", caller.trace_id, call.span_context.span_id())).as_deref());
    assert_eq!(headers.get("tracestate").and_then(|value| value.to_str().ok()), Some("vendor=1"));
    Ok(())
}

fn menu(items: &[&str]) -> Value {
    let items: Vec<Value> = items
        .iter()
        .map(|name| json!({"name": name, "category": "main", "price_cents": 1450, "currency": "EUR"}))
        .collect();
    json!({"name": "Dinner", "items": items})
}

#[tokio::test]
async fn a_menu_activated_through_the_gateway_is_one_trace_from_the_callers_span_to_the_reservation_services_handler()
-> TestResult {
    let platform = Platform::start(&["menu-service", RESERVATION.name], start_service).await?;
    let menu_id = platform.created("/api/v1/menus", &menu(&["Soup"])).await?["id"].as_str().unwrap_or("").to_owned();

    let caller = Caller::new()?;
    let activate = format!("/api/v1/menus/{menu_id}/activate");
    let activated = platform.call(reqwest::Method::POST, &activate, &json!({}), Some(&caller)).await?;
    assert_eq!(activated.status(), 200);

    let menu_events = platform.stream("menu-events");
    let trace = recorder()
        .trace(caller.trace_id, PATIENCE, |trace| {
            !trace.named(&format!("process {menu_events}")).is_empty() && trace.spans.len() >= 5
        })
        .await?;
    let tree = trace.render();
    let gateway = trace.one("POST /api/v1/menus")?;
    assert_eq!(gateway.span_kind, SpanKind::Server, "{tree}");
    assert_eq!(gateway.parent_span_id.to_string(), caller.span_id, "the gateway continues the caller's trace:\n{tree}");
    let [upstream] = trace.children_of(gateway).as_slice()[..] else { anyhow::bail!("one call upstream:\n{tree}") };
    assert_eq!((upstream.name.as_ref(), upstream.span_kind.clone()), ("POST", SpanKind::Client), "{tree}");
    assert_eq!(text(upstream, "server.address").as_deref(), Some("menu-service"));
    let service = trace.one("POST /api/v1/menus/{menu_id}/activate")?;
    assert_eq!(service.span_kind, SpanKind::Server);
    assert_eq!(
        service.parent_span_id,
        upstream.span_context.span_id(),
        "the gateway forwards its traceparent:\n{tree}"
    );
    assert_eq!(text(service, "http.response.status_code").as_deref(), Some("200"));
    let created = trace.one(&format!("create {menu_events}"))?;
    assert_eq!(created.span_kind, SpanKind::Producer);
    assert!(trace.descends_from(created, service), "the event is created in the request:\n{tree}");
    let handled = processed(&trace, &menu_events, RESERVATION.name)?;
    assert_eq!(handled.span_kind, SpanKind::Consumer);
    assert_eq!(handled.parent_span_id, created.span_context.span_id(), "{tree}");

    let entries = testkit::stream::entries(&menu_events, 2, PATIENCE).await?;
    let activation = entries.iter().find(|entry| entry.event_type == "MenuActivated").context("no MenuActivated")?;
    let fields: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(&menu_events)
        .arg(&activation.entry_id)
        .arg(&activation.entry_id)
        .query_async(&mut testkit::redis_client()?.get_multiplexed_async_connection().await?)
        .await?;
    let traceparent = fields.ids.first().and_then(|entry| entry.get::<String>("traceparent"));
    assert_eq!(
        traceparent,
        Some(format!("00-{}-{}-01", caller.trace_id, created.span_context.span_id())),
        "the entry carries its creation context"
    );
    Ok(())
}

#[tokio::test]
async fn an_order_placed_through_the_gateway_is_one_trace_through_every_saga_step_command_and_reply() -> TestResult {
    let platform = Platform::start(&["menu-service", INVENTORY.name, KITCHEN.name, ORDER.name], start_service).await?;
    let menu = platform.created("/api/v1/menus", &menu(&["Risotto"])).await?;
    let menu_id = menu["id"].as_str().unwrap_or_default();
    let item = menu["items"][0]["id"].as_str().unwrap_or_default().to_owned();
    platform.created(&format!("/api/v1/menus/{menu_id}/activate"), &json!({})).await?;
    let rice = platform.created("/api/v1/ingredients", &json!({"name": "Rice", "unit": "g"})).await?;
    let rice = rice["id"].as_str().unwrap_or_default();
    let recipe = json!({"lines": [{"ingredient_id": rice, "quantity": 100}]});
    // The inventory learns the menu's items from menu-events.
    testkit::eventually(PATIENCE, "the inventory knows the risotto", || async {
        let set = platform.call(reqwest::Method::PUT, &format!("/api/v1/recipes/{item}"), &recipe, None).await?;
        Ok(set.status() == 200)
    })
    .await?;
    platform.created(&format!("/api/v1/ingredients/{rice}/receipts"), &json!({"quantity": 300})).await?;

    // The order service learns the menu from menu-events too: until then placing is refused.
    let takeaway = json!({"kind": "takeaway", "lines": [{"menu_item_id": item, "quantity": 1}]});
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let (caller, order) = loop {
        let caller = Caller::new()?;
        let response = platform.call(reqwest::Method::POST, "/api/v1/orders", &takeaway, Some(&caller)).await?;
        if response.status() == 202 {
            let order: Value = response.json().await?;
            break (caller, order["id"].as_str().unwrap_or_default().to_owned());
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "placing still answers {}", response.status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    testkit::eventually(PATIENCE, "the order is approved", || async {
        let order = platform.gateway.get_json(&format!("/api/v1/orders/{order}")).await?;
        Ok(order["status"] == "approved")
    })
    .await?;

    let saga_reply = "saga reply CreateOrder";
    let menu_saw_stock = format!("process {}", platform.stream("inventory-events"));
    // Complete once every reply's delivery has ended (with what it appended)
    // and so has the menu service's handling of the stock event.
    let complete = |trace: &Trace| {
        let replies = trace.named(saga_reply);
        replies.len() == 3
            && replies.iter().all(|reply| trace.parent_of(reply).is_some())
            && trace
                .named(&menu_saw_stock)
                .iter()
                .any(|span| text(span, "messaging.consumer.group.name").as_deref() == Some("menu-service"))
    };
    let trace = recorder().trace(caller.trace_id, PATIENCE, complete).await?;
    let tree = trace.render();
    // The gateway's span and the order service's have the same name: the
    // gateway's is the one the caller's span is the parent of.
    let [gateway] = trace.roots()[..] else { anyhow::bail!("one root expected:\n{tree}") };
    assert_eq!(gateway.name, "POST /api/v1/orders");
    assert_eq!(gateway.parent_span_id.to_string(), caller.span_id, "{tree}");
    let start = trace.one("saga start CreateOrder")?;
    let placing = trace.parent_of(start).context("the start has a parent")?;
    assert_eq!((placing.name.as_ref(), placing.span_kind.clone()), ("POST /api/v1/orders", SpanKind::Server));
    assert!(trace.descends_from(placing, gateway), "{tree}");

    // Each step is sent, handled by its participant, answered, and the answer
    // handled by the order service, which sends the next step: one chain.
    let mut before = start;
    for (step, commands, participant, replies) in [
        ("reserve_stock", "inventory-commands", INVENTORY.name, "inventory-events"),
        ("create_ticket", "kitchen-commands", KITCHEN.name, "kitchen-events"),
        ("confirm_ticket", "kitchen-commands", KITCHEN.name, "kitchen-events"),
    ] {
        let sent = trace
            .named(&format!("saga step CreateOrder/{step}"))
            .into_iter()
            .find(|span| trace.descends_from(span, before))
            .with_context(|| format!("no {step} step after {}:\n{tree}", before.name))?;
        let command = trace
            .children_of(sent)
            .into_iter()
            .find(|span| span.name == format!("create {}", platform.stream(commands)))
            .with_context(|| format!("{step} sent no command:\n{tree}"))?;
        let handled = trace
            .children_of(command)
            .into_iter()
            .find(|span| text(span, "messaging.consumer.group.name").as_deref() == Some(participant))
            .with_context(|| format!("{participant} did not handle {step}:\n{tree}"))?;
        let answered = trace
            .spans
            .iter()
            .filter(|span| span.name == format!("create {}", platform.stream(replies)))
            .find(|span| trace.descends_from(span, handled))
            .with_context(|| format!("{participant} did not answer {step}:\n{tree}"))?;
        let reply = trace
            .named(saga_reply)
            .into_iter()
            .find(|span| trace.descends_from(span, answered))
            .with_context(|| format!("the answer to {step} did not reach the saga:\n{tree}"))?;
        let delivery = trace.parent_of(reply).context("the reply has a parent")?;
        assert_eq!(text(delivery, "messaging.consumer.group.name").as_deref(), Some(ORDER.name), "{tree}");
        before = reply;
    }
    assert_eq!(text(before, "saga.effect").as_deref(), Some("completed"), "{tree}");
    // The order service approves the order in the delivery of the last reply.
    let last_delivery = trace.parent_of(before).context("the last reply has a parent")?;
    let approved = trace
        .children_of(last_delivery)
        .into_iter()
        .any(|span| span.name == format!("create {}", platform.stream("order-events")));
    assert!(approved, "OrderApproved is created with the last reply:\n{tree}");
    let stock_seen_by_menus = processed(&trace, &platform.stream("inventory-events"), "menu-service")?;
    assert!(trace.descends_from(stock_seen_by_menus, gateway), "every consumer of an event is in the trace:\n{tree}");
    Ok(())
}
