//! The engine against a real PostgreSQL: replies are applied by calling
//! `on_reply` in a transaction as a service's inbox handler would, and
//! deadlines pass by sweeping with a chosen `now`. No Redis, no sleeps: what
//! the engine sends is read back from the outbox.

use anyhow::Context;
use chrono::{DateTime, Utc};
use events::inventory::{OrderLine, Shortage};
use events::{
    DomainEvent, Event, InventoryCommand, InventoryEvent, KitchenCommand, KitchenEvent, MenuItemId, Metadata, OrderId,
    Outbox, RelayWaker, Streams,
};
use saga::{
    Action, Command, Definition, Definitions, Effect, Ignored, Outcome, Reply, SagaId, SagaView, Status, Step, Sweeper,
    Verdict,
};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use testkit::TestDb;
use uuid::Uuid;

/// The saga's data: an order to place.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    order_id: OrderId,
    lines: Vec<OrderLine>,
}

const STEP_DEADLINE: Duration = Duration::from_secs(10);

/// Reserve stock (undo: release it), then create a ticket (undo: cancel it).
/// Steps are re-sent twice, compensations once.
fn place_order() -> Definition<Order> {
    let reserve = Action::new(
        |order: &Order| {
            Command::new(InventoryCommand::ReserveStock { order_id: order.order_id, lines: order.lines.clone() })
        },
        |reply, _| match reply.payload::<InventoryEvent>() {
            Some(InventoryEvent::StockReserved { .. }) => Verdict::Completed,
            Some(InventoryEvent::StockReservationRejected { shortages, .. }) => Verdict::Failed(format!(
                "out of stock: {}",
                shortages
                    .iter()
                    .map(|s| format!("{} ({} of {})", s.menu_item_id, s.available, s.requested))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ => Verdict::Ignore,
        },
    )
    .deadline(STEP_DEADLINE)
    .retries(2);
    let release = Action::new(
        |order: &Order| Command::new(InventoryCommand::ReleaseStock { order_id: order.order_id }),
        |reply, _| match reply.event_type.as_str() {
            "StockReleased" => Verdict::Completed,
            _ => Verdict::Ignore,
        },
    )
    .deadline(STEP_DEADLINE)
    .retries(1);
    let create_ticket = Action::new(
        |order: &Order| {
            Command::new(KitchenCommand::CreateTicket {
                order_id: order.order_id,
                lines: order
                    .lines
                    .iter()
                    .map(|line| events::kitchen::CommandLine {
                        menu_item_id: line.menu_item_id,
                        quantity: u32::try_from(line.quantity).unwrap_or(1),
                        notes: None,
                    })
                    .collect(),
            })
        },
        |reply, _| match reply.payload::<KitchenEvent>() {
            Some(KitchenEvent::TicketCreated { .. }) => Verdict::Completed,
            Some(KitchenEvent::TicketRejected { reason, .. }) => Verdict::Failed(format!("kitchen rejected: {reason}")),
            _ => Verdict::Ignore,
        },
    )
    .deadline(STEP_DEADLINE)
    .retries(2);
    let cancel_ticket = Action::new(
        |order: &Order| Command::new(KitchenCommand::CancelTicket { order_id: order.order_id }),
        |reply, _| match reply.payload::<KitchenEvent>() {
            Some(KitchenEvent::TicketCancelled { .. }) => Verdict::Completed,
            Some(KitchenEvent::TicketCancellationRefused { status, .. }) => {
                Verdict::Failed(format!("the kitchen refused to cancel a {status} ticket"))
            }
            _ => Verdict::Ignore,
        },
    )
    .deadline(STEP_DEADLINE)
    .retries(1);
    Definition::new("PlaceOrder")
        .step(Step::new("reserve_stock", reserve).compensate_with(release))
        .step(Step::new("create_ticket", create_ticket).compensate_with(cancel_ticket))
}

/// A test's schema, outbox and saga types.
struct Harness {
    db: TestDb,
    outbox: Outbox,
    prefix: String,
    definition: Definition<Order>,
    definitions: Definitions,
}

/// A command as it landed in the outbox.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Sent {
    event_id: Uuid,
    stream: String,
    event_type: String,
    aggregate_id: Uuid,
    metadata: serde_json::Value,
}

impl Sent {
    fn causation(&self) -> Option<&str> {
        self.metadata.get("causation_id").and_then(serde_json::Value::as_str)
    }
}

impl Harness {
    async fn new() -> anyhow::Result<Self> {
        let db = TestDb::new().await?;
        events::schema::migrate(&db.pool).await?;
        saga::migrator().run(&db.pool).await?;
        let prefix = testkit::unique("test-");
        let outbox = Outbox::new(Streams::with_prefix(prefix.clone()), RelayWaker::default());
        let definition = place_order();
        let definitions = Definitions::new().with(definition.clone());
        Ok(Self { db, outbox, prefix, definition, definitions })
    }

    fn order() -> Order {
        Order { order_id: OrderId::new(), lines: vec![OrderLine { menu_item_id: MenuItemId::new(), quantity: 2 }] }
    }

    async fn start(&self, order: &Order) -> anyhow::Result<SagaId> {
        let mut work = self.outbox.begin(&self.db.pool).await?;
        let metadata = Metadata::new("order-service", "req-1");
        let id = saga::start(&mut work, &self.definition, order.order_id, order, &metadata).await?;
        work.commit().await?;
        Ok(id)
    }

    /// Everything in the outbox, in order.
    async fn sent(&self) -> anyhow::Result<Vec<Sent>> {
        Ok(sqlx::query_as(
            "SELECT event_id, stream, event_type, aggregate_id, metadata::jsonb AS metadata FROM outbox ORDER BY seq",
        )
        .fetch_all(&self.db.pool)
        .await?)
    }

    async fn last_sent(&self) -> anyhow::Result<Sent> {
        self.sent().await?.pop().context("the outbox is empty")
    }

    /// A participant's answer to `command` (or to nothing, if `None`).
    fn answer<E: Event>(order: &Order, payload: E, command: Option<&Sent>) -> DomainEvent<E> {
        let metadata = Metadata {
            correlation_id: "req-1".to_owned(),
            causation_id: command.map(|command| command.event_id.to_string()),
            source: "participant".to_owned(),
        };
        DomainEvent::new(order.order_id, 1, payload, metadata)
    }

    /// Applies `event` as the service's inbox handler would.
    async fn deliver<E: Event>(&self, event: &DomainEvent<E>) -> anyhow::Result<Vec<Outcome>> {
        let reply = Reply::about_order(event)?.context("the reply names no order")?;
        let mut work = self.outbox.begin(&self.db.pool).await?;
        let outcomes = saga::on_reply(&mut work, &self.definitions, &reply).await?;
        work.commit().await?;
        Ok(outcomes)
    }

    /// Delivers `event` and returns the one effect it had.
    async fn effect<E: Event>(&self, event: &DomainEvent<E>) -> anyhow::Result<Effect> {
        let mut outcomes = self.deliver(event).await?;
        anyhow::ensure!(outcomes.len() == 1, "expected one saga to be found, got {outcomes:?}");
        outcomes.pop().map(|outcome| outcome.effect).context("no outcome")
    }

    fn sweeper(&self) -> Sweeper {
        Sweeper::new(self.db.pool.clone(), self.outbox.clone(), self.definitions.clone())
    }

    async fn view(&self, id: SagaId) -> anyhow::Result<SagaView> {
        saga::find(&self.db.pool, id).await?.context("the saga is gone")
    }

    fn stream(&self, family: &str) -> String {
        format!("{}{family}", self.prefix)
    }
}

fn kinds(view: &SagaView) -> Vec<&str> {
    view.history.iter().map(|entry| entry.kind.as_str()).collect()
}

fn types(sent: &[Sent]) -> Vec<&str> {
    sent.iter().map(|command| command.event_type.as_str()).collect()
}

fn reserved(order: &Order) -> InventoryEvent {
    InventoryEvent::StockReserved { order_id: order.order_id, lines: order.lines.clone(), expires_at: Utc::now() }
}

fn ticket_created(order: &Order) -> KitchenEvent {
    KitchenEvent::TicketCreated { order_id: order.order_id, lines: Vec::new() }
}

fn after(start: DateTime<Utc>, deadlines: u32) -> DateTime<Utc> {
    start + chrono::Duration::from_std(STEP_DEADLINE * deadlines).unwrap_or_default() + chrono::Duration::seconds(1)
}

#[tokio::test]
async fn a_two_step_saga_sends_its_commands_in_order_and_completes() -> anyhow::Result<()> {
    let h = Harness::new().await?;
    let order = Harness::order();
    let id = h.start(&order).await?;

    let reserve = h.last_sent().await?;
    assert_eq!(reserve.event_type, "ReserveStock");
    assert_eq!(reserve.stream, h.stream("inventory-commands"));
    assert_eq!(reserve.aggregate_id, order.order_id.as_uuid());
    assert_eq!(reserve.causation(), Some("req-1"));
    assert_eq!(reserve.metadata["correlation_id"], "req-1");
    assert_eq!(reserve.metadata["source"], "order-service");

    let stock = Harness::answer(&order, reserved(&order), Some(&reserve));
    let outcomes = h.deliver(&stock).await?;
    assert_eq!(
        outcomes,
        vec![Outcome {
            saga_id: id,
            saga_type: "PlaceOrder".to_owned(),
            subject: order.order_id.as_uuid(),
            effect: Effect::Advanced { step: 1 }
        }]
    );
    let ticket = h.last_sent().await?;
    assert_eq!(ticket.event_type, "CreateTicket");
    assert_eq!(ticket.stream, h.stream("kitchen-commands"));
    assert_eq!(ticket.causation(), Some(stock.id.to_string().as_str()));
    assert_eq!(ticket.metadata["correlation_id"], "req-1");

    let created = Harness::answer(&order, ticket_created(&order), Some(&ticket));
    assert_eq!(h.effect(&created).await?, Effect::Completed);

    assert_eq!(types(&h.sent().await?), ["ReserveStock", "CreateTicket"]);
    let view = h.view(id).await?;
    assert_eq!(view.saga.status, Status::Completed);
    assert_eq!(view.saga.step_deadline, None);
    assert_eq!(view.saga.reason, None);
    assert_eq!(
        kinds(&view),
        ["started", "command_sent", "reply_received", "command_sent", "reply_received", "completed"]
    );
    assert_eq!(view.history[1].event_id, Some(reserve.event_id));
    assert_eq!(view.history[2].event_id, Some(stock.id.as_uuid()));
    // A reply for a finished saga finds nothing to change.
    assert!(h.deliver(&Harness::answer(&order, ticket_created(&order), None)).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_failure_at_the_second_step_compensates_the_first_and_fails_with_the_reason() -> anyhow::Result<()> {
    let h = Harness::new().await?;
    let order = Harness::order();
    let id = h.start(&order).await?;
    h.effect(&Harness::answer(&order, reserved(&order), Some(&h.last_sent().await?))).await?;

    let ticket = h.last_sent().await?;
    let rejected = Harness::answer(
        &order,
        KitchenEvent::TicketRejected { order_id: order.order_id, reason: "kitchen closed".to_owned() },
        Some(&ticket),
    );
    let reason = "create_ticket: kitchen rejected: kitchen closed".to_owned();
    assert_eq!(h.effect(&rejected).await?, Effect::Compensating { step: 0, reason: reason.clone() });
    let release = h.last_sent().await?;
    assert_eq!(release.event_type, "ReleaseStock");
    assert_eq!(release.stream, h.stream("inventory-commands"));
    assert_eq!(release.causation(), Some(rejected.id.to_string().as_str()));
    // The ticket was never created, so it is not cancelled.
    assert_eq!(types(&h.sent().await?), ["ReserveStock", "CreateTicket", "ReleaseStock"]);
    assert_eq!(h.view(id).await?.saga.status, Status::Compensating);

    let released = Harness::answer(&order, InventoryEvent::StockReleased { order_id: order.order_id }, Some(&release));
    assert_eq!(h.effect(&released).await?, Effect::Failed { reason: reason.clone() });
    let view = h.view(id).await?;
    assert_eq!(view.saga.status, Status::Failed);
    assert_eq!(view.saga.reason, Some(reason));
    assert_eq!(view.saga.step_deadline, None);
    assert_eq!(
        kinds(&view),
        [
            "started",
            "command_sent",
            "reply_received",
            "command_sent",
            "reply_received",
            "compensating",
            "compensation_sent",
            "reply_received",
            "failed"
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_rejection_at_the_first_step_fails_at_once_naming_the_shortage() -> anyhow::Result<()> {
    let h = Harness::new().await?;
    let order = Harness::order();
    let id = h.start(&order).await?;
    let item = order.lines[0].menu_item_id;
    let rejected = Harness::answer(
        &order,
        InventoryEvent::StockReservationRejected {
            order_id: order.order_id,
            shortages: vec![Shortage { menu_item_id: item, requested: 2, available: 1 }],
        },
        Some(&h.last_sent().await?),
    );
    let reason = format!("reserve_stock: out of stock: {item} (1 of 2)");
    assert_eq!(h.effect(&rejected).await?, Effect::Failed { reason: reason.clone() });
    assert_eq!(types(&h.sent().await?), ["ReserveStock"]);
    assert_eq!(h.view(id).await?.saga.reason, Some(reason));
    Ok(())
}

#[tokio::test]
async fn a_duplicate_reply_changes_nothing() -> anyhow::Result<()> {
    let h = Harness::new().await?;
    let order = Harness::order();
    let id = h.start(&order).await?;
    let reserve = h.last_sent().await?;
    let stock = Harness::answer(&order, reserved(&order), Some(&reserve));
    assert_eq!(h.effect(&stock).await?, Effect::Advanced { step: 1 });
    let before = h.view(id).await?;

    // The same event again (past the inbox, say after its records were pruned).
    assert_eq!(h.effect(&stock).await?, Effect::Ignored(Ignored::Duplicate));
    // The participant answering the same command twice, with a new event.
    let again = Harness::answer(&order, reserved(&order), Some(&reserve));
    assert_eq!(h.effect(&again).await?, Effect::Ignored(Ignored::Late));

    assert_eq!(types(&h.sent().await?), ["ReserveStock", "CreateTicket"]);
    let after = h.view(id).await?;
    assert_eq!(after.saga.version, before.saga.version);
    assert_eq!(after.saga.current_step, 1);
    assert_eq!(after.saga.attempts, 1);
    assert_eq!(after.history.len(), before.history.len() + 1, "only the second answer is recorded");
    assert_eq!(after.history.last().map(|entry| entry.kind.as_str()), Some("reply_ignored"));
    Ok(())
}

#[tokio::test]
async fn a_late_reply_after_a_resend_is_accepted_once() -> anyhow::Result<()> {
    let h = Harness::new().await?;
    let order = Harness::order();
    let started = Utc::now();
    let id = h.start(&order).await?;
    let first = h.last_sent().await?;

    assert_eq!(h.sweeper().sweep_deadlines(after(started, 1)).await?, 1);
    let second = h.last_sent().await?;
    assert_eq!(types(&h.sent().await?), ["ReserveStock", "ReserveStock"]);
    assert_ne!(second.event_id, first.event_id);
    assert_eq!(second.causation(), Some(first.event_id.to_string().as_str()));
    assert_eq!(h.view(id).await?.saga.attempts, 2);

    // The first command's answer comes after all: the step completes.
    let late = Harness::answer(&order, reserved(&order), Some(&first));
    assert_eq!(h.effect(&late).await?, Effect::Advanced { step: 1 });
    // The re-sent command's answer changes nothing.
    let echo = Harness::answer(&order, reserved(&order), Some(&second));
    assert_eq!(h.effect(&echo).await?, Effect::Ignored(Ignored::Late));

    assert_eq!(types(&h.sent().await?), ["ReserveStock", "ReserveStock", "CreateTicket"]);
    let view = h.view(id).await?;
    assert_eq!(view.saga.current_step, 1);
    assert_eq!(view.saga.attempts, 1);
    assert_eq!(view.history.iter().filter(|entry| entry.kind == "reply_received").count(), 1);
    Ok(())
}

#[tokio::test]
async fn a_reply_for_a_saga_already_compensating_is_ignored_and_recorded() -> anyhow::Result<()> {
    let h = Harness::new().await?;
    let order = Harness::order();
    let id = h.start(&order).await?;
    h.effect(&Harness::answer(&order, reserved(&order), Some(&h.last_sent().await?))).await?;
    let ticket = h.last_sent().await?;
    let rejected = Harness::answer(
        &order,
        KitchenEvent::TicketRejected { order_id: order.order_id, reason: "no cook".to_owned() },
        Some(&ticket),
    );
    assert!(matches!(h.effect(&rejected).await?, Effect::Compensating { step: 0, .. }));
    let before = h.view(id).await?;

    // A forward answer to the step that failed, naming its command…
    let created = Harness::answer(&order, ticket_created(&order), Some(&ticket));
    assert_eq!(h.effect(&created).await?, Effect::Ignored(Ignored::Late));
    // …and one naming no command, which the compensation does not expect.
    let stray = Harness::answer(&order, ticket_created(&order), None);
    assert_eq!(h.effect(&stray).await?, Effect::Ignored(Ignored::Unexpected));

    let after = h.view(id).await?;
    assert_eq!(after.saga.status, Status::Compensating);
    assert_eq!(after.saga.version, before.saga.version);
    assert_eq!(types(&h.sent().await?), ["ReserveStock", "CreateTicket", "ReleaseStock"]);
    let ignored: Vec<_> = after.history.iter().filter(|entry| entry.kind == "reply_ignored").collect();
    assert_eq!(ignored.len(), 2);
    assert_eq!(ignored[0].event_id, Some(created.id.as_uuid()));
    assert_eq!(ignored[0].detail["why"], "late");
    assert_eq!(ignored[1].detail["why"], "unexpected");
    assert_eq!(ignored[1].event_type.as_deref(), Some("TicketCreated"));
    Ok(())
}

#[tokio::test]
async fn a_step_without_reply_is_resent_up_to_its_limit_then_compensated() -> anyhow::Result<()> {
    let h = Harness::new().await?;
    let order = Harness::order();
    let started = Utc::now();
    let id = h.start(&order).await?;
    let sweeper = h.sweeper();

    // Before the deadline nothing is due.
    assert_eq!(sweeper.sweep_deadlines(started).await?, 0);
    assert_eq!(sweeper.sweep_deadlines(after(started, 1)).await?, 1);
    assert_eq!(sweeper.sweep_deadlines(after(started, 2)).await?, 1);
    assert_eq!(types(&h.sent().await?), ["ReserveStock"; 3]);
    assert_eq!(h.view(id).await?.saga.attempts, 3);

    // Two re-sends allowed: the third deadline compensates, the unanswered step included.
    assert_eq!(sweeper.sweep_deadlines(after(started, 3)).await?, 1);
    let view = h.view(id).await?;
    assert_eq!(view.saga.status, Status::Compensating);
    let reason = "reserve_stock: no reply within 10s after 3 attempts".to_owned();
    assert_eq!(view.saga.reason.as_deref(), Some(reason.as_str()));
    let release = h.last_sent().await?;
    assert_eq!(release.event_type, "ReleaseStock");
    assert_eq!(view.history.iter().filter(|entry| entry.kind == "timed_out").count(), 3);

    let released = Harness::answer(&order, InventoryEvent::StockReleased { order_id: order.order_id }, Some(&release));
    assert_eq!(h.effect(&released).await?, Effect::Failed { reason });
    assert_eq!(h.view(id).await?.saga.status, Status::Failed);
    assert_eq!(sweeper.sweep_deadlines(after(started, 10)).await?, 0);
    Ok(())
}

#[tokio::test]
async fn a_saga_whose_data_no_longer_decodes_is_left_stuck_by_the_sweep_with_its_history_in_order() -> anyhow::Result<()>
{
    let h = Harness::new().await?;
    let order = Harness::order();
    let started = Utc::now();
    let id = h.start(&order).await?;
    sqlx::query("UPDATE sagas SET data = '{\"not\": \"an order\"}' WHERE id = $1").bind(id).execute(&h.db.pool).await?;

    // Its deadline passes: the re-send cannot be built, so the sweep stops it
    // rather than fail on it every time.
    assert_eq!(h.sweeper().sweep_deadlines(after(started, 1)).await?, 1);
    let view = h.view(id).await?;
    assert_eq!(view.saga.status, Status::Stuck);
    let stuck_reason = view.saga.stuck_reason.as_deref().unwrap_or_default();
    assert!(stuck_reason.contains("its data does not decode"), "{stuck_reason}");
    assert_eq!(kinds(&view), ["started", "command_sent", "timed_out", "stuck"]);
    let seqs: Vec<i32> = view.history.iter().map(|entry| entry.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert_eq!(types(&h.sent().await?), ["ReserveStock"], "nothing more was sent");
    assert_eq!(h.sweeper().sweep_deadlines(after(started, 10)).await?, 0);
    Ok(())
}

/// Runs `order`'s saga into `stuck`: no reply to anything.
async fn stuck(h: &Harness, started: DateTime<Utc>) -> anyhow::Result<()> {
    let sweeper = h.sweeper();
    for deadline in 1..=5 {
        assert_eq!(sweeper.sweep_deadlines(after(started, deadline)).await?, 1, "deadline {deadline}");
    }
    Ok(())
}

#[tokio::test]
async fn a_compensation_that_keeps_timing_out_leaves_the_saga_stuck() -> anyhow::Result<()> {
    let h = Harness::new().await?;
    let order = Harness::order();
    let started = Utc::now();
    let id = h.start(&order).await?;
    stuck(&h, started).await?;

    assert_eq!(
        types(&h.sent().await?),
        ["ReserveStock", "ReserveStock", "ReserveStock", "ReleaseStock", "ReleaseStock"]
    );
    let view = h.view(id).await?;
    assert_eq!(view.saga.status, Status::Stuck);
    assert_eq!(view.saga.step_deadline, None);
    assert_eq!(
        view.saga.stuck_reason.as_deref(),
        Some("compensation of step reserve_stock: no reply to the compensation after 2 attempts")
    );
    assert_eq!(view.saga.reason.as_deref(), Some("reserve_stock: no reply within 10s after 3 attempts"));
    assert_eq!(kinds(&view).last(), Some(&"stuck"));
    // Nobody sweeps a stuck saga; operators see it.
    assert_eq!(h.sweeper().sweep_deadlines(after(started, 100)).await?, 0);
    let page = saga::list(&h.db.pool, Some(Status::Stuck), 20, 0).await?;
    assert_eq!(page.total, 1);
    assert_eq!(page.items[0].id, id);
    assert_eq!(saga::list(&h.db.pool, Some(Status::Running), 20, 0).await?.total, 0);
    assert_eq!(saga::list(&h.db.pool, None, 20, 0).await?.total, 1);
    Ok(())
}

#[tokio::test]
async fn retrying_a_stuck_saga_finishes_it_when_the_reply_comes() -> anyhow::Result<()> {
    let h = Harness::new().await?;
    let order = Harness::order();
    let started = Utc::now();
    let id = h.start(&order).await?;
    stuck(&h, started).await?;

    let mut work = h.outbox.begin(&h.db.pool).await?;
    let outcome = saga::retry(&mut work, &h.definitions, id).await?;
    work.commit().await?;
    assert_eq!(outcome.effect, Effect::Resent { attempt: 1 });
    let view = h.view(id).await?;
    assert_eq!(view.saga.status, Status::Compensating);
    assert_eq!(view.saga.attempts, 1);
    assert_eq!(view.saga.stuck_reason, None);
    assert!(view.saga.step_deadline.is_some());
    let release = h.last_sent().await?;
    assert_eq!(release.event_type, "ReleaseStock");
    assert_eq!(h.sent().await?.len(), 6);

    let released = Harness::answer(&order, InventoryEvent::StockReleased { order_id: order.order_id }, Some(&release));
    assert!(matches!(h.effect(&released).await?, Effect::Failed { .. }));
    let view = h.view(id).await?;
    assert_eq!(view.saga.status, Status::Failed);
    assert!(kinds(&view).contains(&"retried"));

    // A finished saga cannot be retried.
    let mut work = h.outbox.begin(&h.db.pool).await?;
    let refused = saga::retry(&mut work, &h.definitions, id).await;
    assert!(matches!(refused, Err(saga::Error::InvalidState { status: Status::Failed, .. })), "{refused:?}");
    Ok(())
}

#[tokio::test]
async fn a_refused_compensation_is_stuck_and_the_participant_coming_round_unsticks_it() -> anyhow::Result<()> {
    let h = Harness::new().await?;
    let order = Harness::order();
    let id = h.start(&order).await?;
    h.effect(&Harness::answer(&order, reserved(&order), Some(&h.last_sent().await?))).await?;
    let mut work = h.outbox.begin(&h.db.pool).await?;
    saga::abort(&mut work, &h.definitions, id, "guest left").await?;
    work.commit().await?;
    let cancel = h.last_sent().await?;
    let refused = Harness::answer(
        &order,
        KitchenEvent::TicketCancellationRefused { order_id: order.order_id, status: "preparing".to_owned() },
        Some(&cancel),
    );
    let reason = "compensation of step create_ticket: the kitchen refused to cancel a preparing ticket".to_owned();
    assert_eq!(h.effect(&refused).await?, Effect::Stuck { reason: reason.clone() });
    assert_eq!(h.view(id).await?.saga.stuck_reason, Some(reason));

    let mut work = h.outbox.begin(&h.db.pool).await?;
    saga::retry(&mut work, &h.definitions, id).await?;
    work.commit().await?;
    let again = h.last_sent().await?;
    assert_eq!(again.event_type, "CancelTicket");
    let cancelled = Harness::answer(&order, KitchenEvent::TicketCancelled { order_id: order.order_id }, Some(&again));
    assert!(matches!(h.effect(&cancelled).await?, Effect::Compensating { step: 0, .. }));
    Ok(())
}

#[tokio::test]
async fn aborting_a_running_saga_compensates_everything_it_may_have_done() -> anyhow::Result<()> {
    let h = Harness::new().await?;
    let order = Harness::order();
    let id = h.start(&order).await?;
    h.effect(&Harness::answer(&order, reserved(&order), Some(&h.last_sent().await?))).await?;

    let mut work = h.outbox.begin(&h.db.pool).await?;
    let outcome = saga::abort(&mut work, &h.definitions, id, "operator says so").await?;
    work.commit().await?;
    let reason = "aborted: operator says so".to_owned();
    // The ticket may exist (its step awaits a reply), so it is cancelled first.
    assert_eq!(outcome.effect, Effect::Compensating { step: 1, reason: reason.clone() });
    let cancel = h.last_sent().await?;
    assert_eq!(cancel.event_type, "CancelTicket");
    assert_eq!(cancel.stream, h.stream("kitchen-commands"));

    let cancelled = Harness::answer(&order, KitchenEvent::TicketCancelled { order_id: order.order_id }, Some(&cancel));
    assert_eq!(h.effect(&cancelled).await?, Effect::Compensating { step: 0, reason: reason.clone() });
    let release = h.last_sent().await?;
    assert_eq!(release.event_type, "ReleaseStock");
    let released = Harness::answer(&order, InventoryEvent::StockReleased { order_id: order.order_id }, Some(&release));
    assert_eq!(h.effect(&released).await?, Effect::Failed { reason: reason.clone() });

    assert_eq!(types(&h.sent().await?), ["ReserveStock", "CreateTicket", "CancelTicket", "ReleaseStock"]);
    let view = h.view(id).await?;
    assert_eq!(view.saga.status, Status::Failed);
    assert!(kinds(&view).contains(&"aborted"));

    // Only a running saga can be aborted.
    let mut work = h.outbox.begin(&h.db.pool).await?;
    let refused = saga::abort(&mut work, &h.definitions, id, "again").await;
    assert!(matches!(refused, Err(saga::Error::InvalidState { status: Status::Failed, .. })), "{refused:?}");
    let unknown = saga::abort(&mut work, &h.definitions, SagaId::new(), "who").await;
    assert!(matches!(unknown, Err(saga::Error::NotFound(_))), "{unknown:?}");
    Ok(())
}

#[tokio::test]
async fn two_concurrent_sweeps_never_resend_one_saga_twice_for_one_deadline() -> anyhow::Result<()> {
    let h = Harness::new().await?;
    let mut ids = Vec::new();
    for _ in 0..150 {
        ids.push(h.start(&Harness::order()).await?);
    }
    // Past the last one's deadline: starting 150 can take longer than the
    // second `after` adds on a busy machine.
    let now = after(Utc::now(), 1);
    let (one, two) = (h.sweeper(), h.sweeper());
    let (a, b) = tokio::join!(one.sweep_deadlines(now), two.sweep_deadlines(now));
    assert_eq!(a? + b?, ids.len(), "every deadline is handled once");
    // Sweeping again at the same instant finds nothing: the deadlines moved on.
    assert_eq!(h.sweeper().sweep_deadlines(now).await?, 0);

    let sent = h.sent().await?;
    assert_eq!(sent.len(), ids.len() * 2);
    let counts: Vec<i64> =
        sqlx::query_scalar("SELECT count(*) FILTER (WHERE kind = 'command_sent') FROM saga_history GROUP BY saga_id")
            .fetch_all(&h.db.pool)
            .await?;
    assert_eq!(counts.len(), ids.len());
    assert!(counts.iter().all(|&count| count == 2), "{counts:?}");
    let attempts: Vec<i32> = sqlx::query_scalar("SELECT attempts FROM sagas").fetch_all(&h.db.pool).await?;
    assert!(attempts.iter().all(|&attempt| attempt == 2), "{attempts:?}");
    Ok(())
}

#[tokio::test]
async fn the_sagas_of_a_subject_are_shown_with_their_history() -> anyhow::Result<()> {
    let h = Harness::new().await?;
    let order = Harness::order();
    let id = h.start(&order).await?;
    let views = saga::for_subject(&h.db.pool, order.order_id.as_uuid()).await?;
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].saga.id, id);
    assert_eq!(views[0].history[1].event_type.as_deref(), Some("ReserveStock"));
    assert_eq!(views[0].history[1].detail["step_name"], "reserve_stock");
    let json = serde_json::to_value(&views[0])?;
    assert_eq!(json["status"], "running");
    assert_eq!(json["history"][0]["kind"], "started");
    Ok(())
}

#[tokio::test]
async fn a_stuck_saga_takes_the_late_answer_to_its_compensation() -> anyhow::Result<()> {
    let h = Harness::new().await?;
    let order = Harness::order();
    let started = Utc::now();
    let id = h.start(&order).await?;
    stuck(&h, started).await?;
    let release = h.last_sent().await?;
    assert_eq!(release.event_type, "ReleaseStock");

    // The inventory service comes back and answers the last ReleaseStock: no operator needed.
    let released = Harness::answer(&order, InventoryEvent::StockReleased { order_id: order.order_id }, Some(&release));
    assert!(matches!(h.effect(&released).await?, Effect::Failed { .. }));
    let view = h.view(id).await?;
    assert_eq!(view.saga.status, Status::Failed);
    assert_eq!(view.saga.stuck_reason, None);
    assert_eq!(h.sent().await?.len(), 5, "nothing more is sent");
    Ok(())
}
