//! The steps the saga drives, applied inside a transaction of the caller's
//! as the saga will (each returning the event to append), and the staff's
//! cancel and complete around them.

use crate::helpers::*;
use events::{Metadata, OrderEvent, OrderId};
use order_service::domain::OrderStatus;
use order_service::service::{self, Applied};
use serde_json::Value;

fn meta() -> Metadata {
    Metadata::new("order-service", "req-saga")
}

fn order_id(order: &Value) -> anyhow::Result<OrderId> {
    Ok(id(order).parse::<uuid::Uuid>()?.into())
}

/// Runs `step` in a transaction of its own and commits it.
async fn step<F>(app: &TestApp, step: F) -> anyhow::Result<Applied>
where
    F: AsyncFnOnce(&mut sqlx::PgConnection) -> Result<Applied, order_service::error::Error>,
{
    let mut tx = app.db.pool.begin().await?;
    let applied = step(&mut tx).await?;
    tx.commit().await?;
    Ok(applied)
}

#[tokio::test]
async fn the_saga_steps_take_an_order_to_picked_up_each_returning_its_event_then_staff_complete_it() -> TestResult {
    let app = spawn_app().await?;
    let item = app.an_item().await?;
    let order = app.place(&takeaway(&[line(item, 1)])).await?;
    let path = format!("/api/v1/orders/{}", id(&order));
    let order = order_id(&order)?;
    let (status, _, _) = app.post_as(&app.api, &format!("{path}/complete"), &Value::Null).await?;
    assert_eq!(status, 409, "not picked up yet");

    let approved = step(&app, async |tx| service::approve(tx, order, &meta()).await).await?;
    assert_eq!(approved.order.status, OrderStatus::Approved);
    let event = approved.event.as_ref().map(|event| (event.payload.clone(), event.version, event.aggregate_id));
    assert_eq!(event, Some((OrderEvent::OrderApproved {}, 2, order.into())));
    assert_eq!(approved.event.map(|event| event.metadata.correlation_id), Some("req-saga".to_owned()));
    let again = step(&app, async |tx| service::approve(tx, order, &meta()).await).await?;
    assert!(again.event.is_none(), "a duplicate reply changes nothing");
    assert_eq!(again.order.version, 2);

    let preparing = step(&app, async |tx| service::preparing(tx, order, &meta()).await).await?;
    assert_eq!(preparing.event.map(|e| e.payload), Some(OrderEvent::OrderPreparing {}));
    let ready = step(&app, async |tx| service::ready(tx, order, &meta()).await).await?;
    assert_eq!(ready.event.map(|e| e.payload), Some(OrderEvent::OrderReady {}));
    let (status, _, _) = app.post_as(&app.api, &format!("{path}/complete"), &Value::Null).await?;
    assert_eq!(status, 409, "ready is not picked up");
    let picked = step(&app, async |tx| service::picked_up(tx, order, &meta()).await).await?;
    assert_eq!((picked.order.status, picked.order.version), (OrderStatus::PickedUp, 5));

    let (status, headers, done) = app.post_as(&app.api, &format!("{path}/complete"), &Value::Null).await?;
    assert_eq!(status, 200, "{done}");
    assert_eq!((done["status"].as_str(), headers["etag"].to_str()?), (Some("completed"), "\"6\""));
    let events = app.events_of(&order.to_string(), 2).await?;
    assert_eq!((events[1].event_type.as_str(), events[1].version), ("OrderCompleted", 6));
    assert_eq!(events[1].metadata["correlation_id"], "req-test");
    Ok(())
}

#[tokio::test]
async fn a_rejection_keeps_the_reason_and_a_rejected_order_cannot_be_approved() -> TestResult {
    let app = spawn_app().await?;
    let item = app.an_item().await?;
    let order = order_id(&app.place(&takeaway(&[line(item, 1)])).await?)?;
    let reason = "\"Steak frites\": 1 wanted, 0 in stock";
    let rejected = step(&app, async |tx| service::reject(tx, order, reason, &meta()).await).await?;
    assert_eq!(rejected.event.map(|e| e.payload), Some(OrderEvent::OrderRejected { reason: reason.to_owned() }));
    let shown = app.get_json(&format!("/api/v1/orders/{order}")).await?;
    assert_eq!((shown["status"].as_str(), shown["reason"].as_str()), (Some("rejected"), Some(reason)));
    let approving = step(&app, async |tx| service::approve(tx, order, &meta()).await).await;
    assert!(approving.is_err());
    Ok(())
}

#[tokio::test]
async fn an_approved_order_is_cancelled_with_202_once_and_its_saga_hook_sees_it() -> TestResult {
    let app = spawn_app().await?;
    let item = app.an_item().await?;
    let placed = app.place(&takeaway(&[line(item, 1)])).await?;
    let order = order_id(&placed)?;
    let cancel = format!("/api/v1/orders/{order}/cancel");
    step(&app, async |tx| service::approve(tx, order, &meta()).await).await?;

    let (status, headers, body) = app.post_as(&app.api, &cancel, &Value::Null).await?;
    assert_eq!((status, body["status"].as_str()), (202, Some("cancel_pending")), "{body}");
    assert_eq!(headers["etag"], "\"3\"");
    let (status, _, body) = app.post_as(&app.api, &cancel, &Value::Null).await?;
    assert_eq!((status, body["version"].as_i64()), (202, Some(3)), "asking again changes nothing");
    let cancelled = step(&app, async |tx| service::cancelled(tx, order, &meta()).await).await?;
    assert_eq!(cancelled.event.map(|e| e.payload), Some(OrderEvent::OrderCancelled {}));
    let (status, _, problem) = app.post_as(&app.api, &cancel, &Value::Null).await?;
    assert_eq!(status, 409, "{problem}");
    let types: Vec<String> = app.events_of(&order.to_string(), 2).await?.into_iter().map(|e| e.event_type).collect();
    assert_eq!(types, ["OrderPlaced", "OrderCancellationRequested"]);
    Ok(())
}

#[tokio::test]
async fn a_refused_cancellation_returns_the_order_to_its_status_with_the_refusal_visible() -> TestResult {
    let app = spawn_app().await?;
    let item = app.an_item().await?;
    let guest = app.anonymous();
    let (_, _, placed) = app.post_as(&guest, "/api/v1/orders", &takeaway(&[line(item, 1)])).await?;
    let owner = app.with(placed["manage_token"].as_str().unwrap_or_default())?;
    let order = order_id(&placed)?;
    step(&app, async |tx| service::approve(tx, order, &meta()).await).await?;
    let (status, _, body) = app.post_as(&owner, &format!("/api/v1/orders/{order}/cancel"), &Value::Null).await?;
    assert_eq!(status, 202, "the guest cancels with the token: {body}");
    let refused = step(&app, async |tx| service::cancellation_refused(tx, order, "accepted", &meta()).await).await?;
    assert_eq!(
        refused.event.map(|e| e.payload),
        Some(OrderEvent::OrderCancellationRefused { status: "accepted".to_owned() })
    );
    let shown: Value = owner.get(&format!("/api/v1/orders/{order}")).await?.json().await?;
    assert_eq!(shown["status"], "approved");
    assert!(shown["refusal"].as_str().is_some_and(|r| r.contains("accepted")), "{shown}");

    owner.client.post(owner.url(&format!("/api/v1/orders/{order}/cancel"))).send().await?;
    let later = step(&app, async |tx| service::cancellation_refused(tx, order, "preparing", &meta()).await).await?;
    assert_eq!(later.order.status, OrderStatus::Preparing, "cooking moved on meanwhile");
    let (status, _, _) = app.post_as(&owner, &format!("/api/v1/orders/{order}/cancel"), &Value::Null).await?;
    assert_eq!(status, 409, "a preparing order cannot be cancelled");
    Ok(())
}

#[tokio::test]
async fn a_placing_hook_runs_in_the_transaction_and_its_failure_writes_nothing() -> TestResult {
    use order_service::domain::{Draft, DraftLine, Kind, Quantity};
    use order_service::service::{Hook, Orders, Placer};
    use service_kit::write::Request;
    use std::sync::Arc;
    let app = spawn_app().await?;
    let item = app.an_item().await?;
    let pool = app.db.pool.clone();
    let outbox = events::Outbox::new(app.settings.streams(), events::RelayWaker::default());
    let writer = service_kit::write::Writer::new(pool, outbox, "order-service");
    let orders = Orders::new(writer, Default::default());
    let draft = || {
        let line = DraftLine { menu_item_id: item, quantity: Quantity::try_from(1)?, notes: None };
        Ok::<_, anyhow::Error>(Draft::new(Kind::Takeaway, None, None, vec![line])?)
    };
    let seen: Hook = Arc::new(|unit, order, _| {
        Box::pin(async move {
            let statuses: Vec<String> = sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
                .bind(order.id)
                .fetch_all(&mut **unit)
                .await?;
            anyhow::ensure!(statuses == ["approval_pending"], "the hook sees the order: {statuses:?}");
            Ok(())
        })
    });
    let respond =
        |_: &order_service::domain::Order, _: Option<&_>| service_kit::idempotency::Reply::json(http_ok(), &());
    orders.place(draft()?, Placer::Staff, Request::new("req-hook"), &seen, respond).await?;
    let failing: Hook = Arc::new(|_, _, _| Box::pin(async { anyhow::bail!("the saga table is gone") }));
    let failed = orders.place(draft()?, Placer::Staff, Request::new("req-hook"), &failing, respond).await;
    assert!(matches!(failed, Err(order_service::error::Error::Hook(_))));
    let placed: i64 = sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(&app.db.pool).await?;
    assert_eq!(placed, 1, "the failed hook's order rolled back");
    Ok(())
}

fn http_ok() -> axum::http::StatusCode {
    axum::http::StatusCode::OK
}
