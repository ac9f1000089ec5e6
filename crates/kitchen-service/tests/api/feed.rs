//! The live feed: server-sent `ticket` events carrying the ticket as it is
//! now, each with its stream entry's id; resumed with `Last-Event-ID`.

use crate::helpers::*;
use events::{MenuItemId, OrderId};
use futures::StreamExt;
use serde_json::Value;
use std::time::Duration;

/// One server-sent event: its id, its name and its data.
#[derive(Debug)]
struct Frame {
    id: String,
    event: String,
    data: Value,
}

/// Reads `response`'s body until `count` events arrive, within five seconds.
async fn frames(response: reqwest::Response, count: usize) -> anyhow::Result<Vec<Frame>> {
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let mut found = Vec::new();
    let read = async {
        while found.len() < count {
            let Some(chunk) = body.next().await else { anyhow::bail!("the feed ended after {found:?}") };
            text.push_str(std::str::from_utf8(&chunk?)?);
            while let Some(end) = text.find("\n\n") {
                let block: String = text.drain(..end + 2).collect();
                let field = |name: &str| {
                    block.lines().find_map(|line| line.strip_prefix(name)).map(|value| value.trim().to_owned())
                };
                if let (Some(id), Some(event), Some(data)) = (field("id:"), field("event:"), field("data:")) {
                    found.push(Frame { id, event, data: serde_json::from_str(&data)? });
                }
            }
        }
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(5), read).await??;
    Ok(found)
}

async fn open(app: &TestApp, last_event_id: Option<&str>) -> anyhow::Result<reqwest::Response> {
    let mut request = app.client.get(app.url("/api/v1/tickets/feed"));
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = request.send().await?;
    anyhow::ensure!(response.status() == 200, "the feed answered {}", response.status());
    anyhow::ensure!(response.headers()["content-type"] == "text/event-stream", "not an event stream");
    Ok(response)
}

#[tokio::test]
async fn the_feed_sends_each_change_with_the_ticket_as_it_is_now_and_resumes_after_the_last_event() -> TestResult {
    let app = spawn_app().await?;
    let earlier = OrderId::new();
    app.ticket(earlier, &[MenuItemId::new()], false).await?;
    let feed = open(&app, None).await?;
    let order = OrderId::new();
    app.command(&create(order, &[MenuItemId::new()])).await?;
    let [created] = &frames(feed, 1).await?[..] else { anyhow::bail!("one frame") };
    assert_eq!(created.event, "ticket");
    assert_eq!(created.data["order_id"], order.to_string(), "only what came after the feed opened");
    assert_eq!(created.data["status"], "pending");
    assert_eq!(created.data["lines"][0]["line"], 1);
    let entries = app.events().await?;
    assert_eq!(Some(&created.id), entries.last().map(|entry| &entry.entry_id));

    app.command(&command(order, events::KitchenCommand::ConfirmTicket { order_id: order })).await?;
    app.answers(order, 2).await?;
    let resumed = open(&app, Some(&created.id)).await?;
    let [confirmed] = &frames(resumed, 1).await?[..] else { anyhow::bail!("one frame") };
    assert_eq!(
        (&confirmed.data["order_id"], &confirmed.data["status"]),
        (&order.to_string().into(), &"awaiting_acceptance".into())
    );
    assert_ne!(confirmed.id, created.id, "only entries after Last-Event-ID");

    let from_start = app.client.get(app.url("/api/v1/tickets/feed?after=0-0")).send().await?;
    let all = frames(from_start, 3).await?;
    assert_eq!(
        all.iter().map(|frame| frame.id.as_str()).collect::<Vec<_>>(),
        entries.iter().map(|e| e.entry_id.as_str()).chain([confirmed.id.as_str()]).collect::<Vec<_>>()
    );
    let bad = app.client.get(app.url("/api/v1/tickets/feed?after=nonsense")).send().await?;
    assert_eq!(bad.status(), 422);
    Ok(())
}
