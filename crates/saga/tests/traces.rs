//! The saga's spans, recorded in memory, against a real PostgreSQL: a saga
//! started in a request and replied to in a delivery is part of their
//! traces, and a step re-sent by the deadline sweep, which runs in no span,
//! stays in the trace of the step it re-sends. Time passes by sweeping with
//! a chosen `now`.

use anyhow::Context;
use chrono::Utc;
use events::inventory::OrderLine;
use events::trace::TraceContext;
use events::{
    DomainEvent, InventoryCommand, InventoryEvent, MenuItemId, Metadata, OrderId, Outbox, RelayWaker, Streams,
};
use opentelemetry::trace::{SpanKind, TraceContextExt, TraceId, TracerProvider as _};
use saga::{Action, Command, Definition, Definitions, Effect, Reply, Step, Sweeper, Verdict};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use testkit::TestDb;
use testkit::traces::{Recorder, Trace, attribute};
use tracing::Instrument;
use tracing::level_filters::LevelFilter;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const DEADLINE: Duration = Duration::from_secs(10);
const PATIENCE: Duration = Duration::from_secs(10);

fn recorder() -> &'static Recorder {
    Recorder::global(|provider| events::trace::layer(provider.tracer("saga-test"), LevelFilter::INFO))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    order_id: OrderId,
    lines: Vec<OrderLine>,
}

/// One step: reserve the stock, re-sent once past its deadline.
fn reserve_only() -> Definition<Order> {
    let reserve = Action::new(
        |order: &Order| {
            Command::new(InventoryCommand::ReserveStock { order_id: order.order_id, lines: order.lines.clone() })
        },
        |reply, _| match reply.payload::<InventoryEvent>() {
            Some(InventoryEvent::StockReserved { .. }) => Verdict::Completed,
            _ => Verdict::Ignore,
        },
    )
    .deadline(DEADLINE)
    .retries(1);
    Definition::new("ReserveOnly").step(Step::new("reserve_stock", reserve))
}

/// The outbox's commands and the creation context each was stored with.
async fn sent(db: &TestDb) -> anyhow::Result<Vec<(String, Option<String>)>> {
    Ok(sqlx::query_as("SELECT event_type, traceparent FROM outbox ORDER BY seq").fetch_all(&db.pool).await?)
}

fn trace_id_of(traceparent: Option<&str>) -> Option<TraceId> {
    TraceContext::from_parts(traceparent, None).map(|context| context.span_context().trace_id())
}

#[tokio::test]
async fn a_saga_started_in_a_request_stays_in_its_trace_through_a_resend_by_the_sweep_and_a_reply() -> anyhow::Result<()>
{
    recorder();
    let db = TestDb::new().await?;
    events::schema::migrate(&db.pool).await?;
    saga::migrator().run(&db.pool).await?;
    let prefix = testkit::unique("test-");
    let outbox = Outbox::new(Streams::with_prefix(prefix.clone()), RelayWaker::default());
    let definition = reserve_only();
    let definitions = Definitions::new().with(definition.clone());
    let order =
        Order { order_id: OrderId::new(), lines: vec![OrderLine { menu_item_id: MenuItemId::new(), quantity: 1 }] };

    let request = tracing::info_span!("POST /api/v1/orders", otel.kind = "server");
    let trace = request.context().span().span_context().trace_id();
    async {
        let mut work = outbox.begin(&db.pool).await?;
        saga::start(&mut work, &definition, order.order_id, &order, &Metadata::new("order-service", "req-1")).await?;
        work.commit().await?;
        anyhow::Ok(())
    }
    .instrument(request.clone())
    .await?;
    drop(request);

    // The deadline passes; the sweep runs in no span of its own.
    let later = Utc::now() + chrono::Duration::from_std(DEADLINE)? + chrono::Duration::seconds(1);
    let swept = Sweeper::new(db.pool.clone(), outbox.clone(), definitions.clone()).sweep_deadlines(later).await?;
    assert_eq!(swept, 1);

    let commands = sent(&db).await?;
    assert_eq!(commands.iter().map(|(kind, _)| kind.as_str()).collect::<Vec<_>>(), ["ReserveStock", "ReserveStock"]);
    for (_, traceparent) in &commands {
        assert_eq!(trace_id_of(traceparent.as_deref()), Some(trace), "each command is in the request's trace");
    }

    // The participant's answer, delivered in a consumer's span of the same trace.
    let delivery = tracing::info_span!("process inventory-events", otel.kind = "consumer");
    if let Some(last) =
        TraceContext::from_parts(commands.last().and_then(|(_, traceparent)| traceparent.as_deref()), None)
    {
        last.adopt(&delivery);
    }
    let answer = DomainEvent::new(
        order.order_id,
        1,
        InventoryEvent::StockReserved { order_id: order.order_id, lines: order.lines.clone(), expires_at: Utc::now() },
        Metadata::new("inventory-service", "req-1"),
    );
    let outcomes = async {
        let reply = Reply::about_order(&answer)?.context("the answer names its order")?;
        let mut work = outbox.begin(&db.pool).await?;
        let outcomes = saga::on_reply(&mut work, &definitions, &reply).await?;
        work.commit().await?;
        anyhow::Ok(outcomes)
    }
    .instrument(delivery.clone())
    .await?;
    drop(delivery);
    assert_eq!(outcomes.iter().map(|outcome| &outcome.effect).collect::<Vec<_>>(), [&Effect::Completed]);

    let commands = format!("create {prefix}inventory-commands");
    let complete =
        |trace: &Trace| trace.named(&commands).len() == 2 && !trace.named("saga reply ReserveOnly").is_empty();
    let recorded = recorder().trace(trace, PATIENCE, complete).await?;
    let tree = recorded.render();
    let request = recorded.one("POST /api/v1/orders")?;
    let start = recorded.one("saga start ReserveOnly")?;
    let steps = recorded.named("saga step ReserveOnly/reserve_stock");
    let timeout = recorded.one("saga timeout ReserveOnly")?;
    let reply = recorded.one("saga reply ReserveOnly")?;
    let [first, resend] = steps.as_slice() else { anyhow::bail!("two sends expected:\n{tree}") };
    let (first, resend) = if recorded.descends_from(first, timeout) { (resend, first) } else { (first, resend) };

    assert_eq!(start.parent_span_id, request.span_context.span_id(), "{tree}");
    assert_eq!(first.parent_span_id, start.span_context.span_id(), "{tree}");
    assert_eq!(attribute(first, "saga.attempt").map(ToString::to_string).as_deref(), Some("1"));
    assert_eq!(
        timeout.parent_span_id,
        first.span_context.span_id(),
        "the sweep continues the step it re-sends:\n{tree}"
    );
    assert!(timeout.links.iter().any(|link| link.span_context.span_id() == first.span_context.span_id()), "{tree}");
    assert_eq!(resend.parent_span_id, timeout.span_context.span_id(), "{tree}");
    assert_eq!(attribute(resend, "saga.attempt").map(ToString::to_string).as_deref(), Some("2"));
    for step in [first, resend] {
        let created: Vec<_> = recorded.children_of(step).into_iter().filter(|child| child.name == commands).collect();
        let [created] = created.as_slice() else { anyhow::bail!("one command per send:\n{tree}") };
        assert_eq!(created.span_kind, SpanKind::Producer);
    }
    assert!(recorded.descends_from(reply, resend), "the reply is handled below the command it answers:\n{tree}");
    assert_eq!(attribute(reply, "saga.effect").map(ToString::to_string).as_deref(), Some("completed"));
    assert_eq!(attribute(start, "saga.subject").map(ToString::to_string), Some(order.order_id.to_string()), "{tree}");
    Ok(())
}
