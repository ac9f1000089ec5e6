//! The overdue sweep, driven by the test's own clock: `TicketOverdue` once
//! per ticket, only once `ready_by` has passed.

use crate::helpers::*;
use chrono::{DateTime, TimeDelta, Utc};
use events::{MenuItemId, OrderId};
use kitchen_service::overdue::Sweep;
use serde_json::json;

#[tokio::test]
async fn an_accepted_ticket_past_its_ready_by_is_announced_once() -> TestResult {
    let app = spawn_app().await?;
    let order = OrderId::new();
    let ticket = app.ticket(order, &[MenuItemId::new()], true).await?;
    let path = format!("/api/v1/tickets/{}", ticket["id"].as_str().unwrap_or_default());
    let ready_by = Utc::now() + TimeDelta::minutes(30);
    let (code, accepted) = app.act(&format!("{path}/accept"), &json!({"ready_by": ready_by}), "req-a").await?;
    assert_eq!(code, 200, "{accepted}");
    let ready_by: DateTime<Utc> = serde_json::from_value(accepted["ready_by"].clone())?;

    let outbox = events::Outbox::new(app.settings.streams(), events::RelayWaker::default());
    let sweep = Sweep::new(app.db.pool.clone(), outbox);
    assert_eq!(sweep.mark_overdue(ready_by - TimeDelta::seconds(1)).await?, 0, "not before ready_by");
    assert_eq!(sweep.mark_overdue(ready_by).await?, 0, "not at ready_by");
    assert_eq!(sweep.mark_overdue(ready_by + TimeDelta::seconds(1)).await?, 1);
    assert_eq!(sweep.mark_overdue(ready_by + TimeDelta::hours(1)).await?, 0, "once");

    let answers = app.answers(order, 4).await?;
    assert_eq!(answers[3].event_type, "TicketOverdue");
    assert_eq!(answers[3].metadata["source"], "kitchen-service");
    let shown = app.get_json(&path).await?;
    assert_eq!((&shown["overdue"], &shown["version"]), (&json!(true), &json!(4)));
    let events = app.events().await?;
    assert_eq!(events.iter().filter(|entry| entry.event_type == "TicketOverdue").count(), 1);
    Ok(())
}
