//! The kitchen's tables against a real PostgreSQL, each test on a schema of its own.

use anyhow::Context;
use chrono::{DateTime, TimeDelta, Utc};
use events::kitchen::CommandLine;
use events::{KitchenEvent, MenuId, MenuItemId, OrderId, TicketId};
use kitchen_service::domain::{Action, RejectReason, SeenItem, StationMap, Ticket, TicketStatus};
use kitchen_service::store;
use service_kit::extract::IfMatch;
use service_kit::values::Page;
use service_kit::write::{Insert, WriteError, change_in, now};
use sqlx::PgPool;
use std::collections::HashMap;
use testkit::TestDb;

type TestResult = anyhow::Result<()>;

async fn database() -> anyhow::Result<TestDb> {
    let db = TestDb::new().await?;
    kitchen_service::MIGRATIONS.run(&db.pool).await.context("migrating")?;
    Ok(db)
}

fn stations() -> StationMap {
    StationMap::parse("grill:mains;cold:desserts").unwrap_or_else(|e| panic!("{e}"))
}

fn line(menu_item_id: MenuItemId) -> CommandLine {
    CommandLine { menu_item_id, quantity: 1, notes: None }
}

/// A ticket made at `at` for `items`, which the kitchen has seen as `seen`.
fn ticket_at(at: DateTime<Utc>, items: &[MenuItemId], seen: &HashMap<MenuItemId, SeenItem>) -> Ticket {
    let lines = items.iter().copied().map(line).collect();
    Ticket::create(OrderId::new(), lines, &stations(), seen, at).unwrap_or_else(|e| panic!("create: {e}")).0
}

fn seen_as(items: &[(MenuItemId, &str)]) -> HashMap<MenuItemId, SeenItem> {
    items
        .iter()
        .map(|(id, category)| (*id, SeenItem { name: format!("item in {category}"), category: (*category).to_owned() }))
        .collect()
}

/// Inserts `ticket` after moving it through `actions` at `at`.
async fn stored(pool: &PgPool, mut ticket: Ticket, actions: &[Action], at: DateTime<Utc>) -> anyhow::Result<Ticket> {
    for action in actions {
        ticket.apply(action, at).with_context(|| action.name())?;
    }
    let mut tx = pool.begin().await?;
    ticket.insert(&mut tx).await?;
    tx.commit().await?;
    Ok(ticket)
}

fn accept(at: DateTime<Utc>, minutes: i64) -> Action {
    Action::Accept { ready_by: at + TimeDelta::minutes(minutes) }
}

/// Applies `command` to ticket `ticket` the way every writer does: under its
/// row lock, bumping the version when it yields an event.
async fn change(
    pool: &PgPool,
    ticket: &Ticket,
    command: impl FnOnce(&mut Ticket) -> Result<Option<KitchenEvent>, kitchen_service::domain::DomainError>,
) -> anyhow::Result<(Ticket, Option<KitchenEvent>)> {
    let mut tx = pool.begin().await?;
    let changed = change_in::<Ticket, anyhow::Error>(&mut tx, ticket.id, IfMatch { version: None }, |ticket| {
        command(ticket).map_err(anyhow::Error::from)
    })
    .await?;
    tx.commit().await?;
    Ok(changed)
}

fn ids(tickets: &[Ticket]) -> Vec<TicketId> {
    tickets.iter().map(|ticket| ticket.id).collect()
}

#[tokio::test]
async fn a_ticket_reads_back_as_inserted_and_a_locked_change_is_written_back() -> TestResult {
    let db = database().await?;
    let at = now();
    let (steak, mystery) = (MenuItemId::new(), MenuItemId::new());
    let mut lines = vec![line(steak), line(mystery)];
    lines[0].notes = Some("rare".to_owned());
    lines[1].quantity = 3;
    let (ticket, _) = Ticket::create(OrderId::new(), lines, &stations(), &seen_as(&[(steak, "Mains")]), at)?;
    let ticket = stored(&db.pool, ticket, &[], at).await?;

    assert_eq!(store::find(&db.pool, ticket.id).await?.as_ref(), Some(&ticket));
    assert_eq!(store::find_by_order(&db.pool, ticket.order_id).await?.as_ref(), Some(&ticket));
    assert_eq!(store::find_by_order(&db.pool, OrderId::new()).await?, None);
    assert_eq!(store::find(&db.pool, TicketId::new()).await?, None);

    let ready_by = now() + TimeDelta::minutes(20);
    for action in [Action::Confirm, Action::Accept { ready_by }, Action::Start] {
        let (_, event) = change(&db.pool, &ticket, |ticket| ticket.apply(&action, now())).await?;
        assert!(event.is_some(), "{} publishes", action.name());
    }
    let (changed, event) = change(&db.pool, &ticket, |ticket| ticket.mark_line(2, true)).await?;
    assert_eq!(event, Some(KitchenEvent::TicketLineDone { order_id: ticket.order_id, line: 2 }));
    let (_, nothing) = change(&db.pool, &ticket, |ticket| ticket.apply(&Action::Start, now())).await?;
    assert_eq!(nothing, None, "a repeated start changes nothing");

    let read = store::find(&db.pool, ticket.id).await?.context("the ticket is gone")?;
    assert_eq!(read, changed);
    assert_eq!((read.status, read.version, read.ready_by), (TicketStatus::Preparing, 5, Some(ready_by)));
    assert_eq!(read.lines.iter().map(|line| line.done).collect::<Vec<_>>(), [false, true]);
    assert!(read.updated_at > read.created_at);

    let mut tx = db.pool.begin().await?;
    let locked = store::lock_by_order(&mut tx, ticket.order_id).await?;
    assert_eq!(locked.as_ref(), Some(&read));
    tx.rollback().await?;
    Ok(())
}

#[tokio::test]
async fn a_rejection_stores_its_reason_and_a_second_ticket_for_an_order_is_refused() -> TestResult {
    let db = database().await?;
    let at = now();
    let reason = RejectReason::try_from("the fryer is broken".to_owned())?;
    let ticket = ticket_at(at, &[MenuItemId::new()], &HashMap::new());
    let rejected = stored(&db.pool, ticket.clone(), &[Action::Confirm, Action::Reject { reason }], at).await?;
    let read = store::find(&db.pool, rejected.id).await?;
    assert_eq!(
        read.as_ref().and_then(|t| t.reject_reason.as_ref()).map(RejectReason::as_str),
        Some("the fryer is broken")
    );
    assert_eq!(read.map(|t| t.status), Some(TicketStatus::Rejected));

    let twin = Ticket { id: TicketId::new(), ..ticket };
    let mut tx = db.pool.begin().await?;
    let error = twin.insert(&mut tx).await.err().context("a second ticket for the order was stored")?;
    let code = match &error {
        service_kit::database::StoreError::Database(cause) => cause.as_database_error().and_then(|e| e.code()),
        _ => None,
    };
    assert_eq!(code.as_deref(), Some("23505"), "{error}");
    Ok(())
}

#[tokio::test]
async fn the_queue_lists_active_tickets_oldest_first_by_status_and_by_station() -> TestResult {
    let db = database().await?;
    let start = now() - TimeDelta::hours(1);
    let at = |minutes| start + TimeDelta::minutes(minutes);
    let (steak, cake, mystery) = (MenuItemId::new(), MenuItemId::new(), MenuItemId::new());
    let seen = seen_as(&[(steak, "mains"), (cake, "desserts")]);
    // Stored newest first, so that the order of the list is not the order of insertion.
    let picked_up = stored(
        &db.pool,
        ticket_at(at(6), &[steak], &seen),
        &[Action::Confirm, accept(now(), 30), Action::Start, Action::Ready, Action::PickUp],
        now(),
    )
    .await?;
    let cancelled = stored(&db.pool, ticket_at(at(5), &[cake], &seen), &[Action::Cancel], now()).await?;
    let cooking = stored(
        &db.pool,
        ticket_at(at(4), &[cake, mystery], &seen),
        &[Action::Confirm, accept(now(), 30), Action::Start],
        now(),
    )
    .await?;
    let accepted =
        stored(&db.pool, ticket_at(at(3), &[steak, cake], &seen), &[Action::Confirm, accept(now(), 30)], now()).await?;
    let awaiting = stored(&db.pool, ticket_at(at(2), &[steak], &seen), &[Action::Confirm], now()).await?;
    let pending = stored(&db.pool, ticket_at(at(1), &[mystery], &seen), &[], now()).await?;

    let page = Page::new(None, None)?;
    let list = |status, station| store::list(&db.pool, status, station, page);
    let active = list(None, None).await?;
    assert_eq!(ids(&active), [pending.id, awaiting.id, accepted.id, cooking.id]);
    assert_eq!(active[3], cooking, "listed tickets are whole");

    assert_eq!(ids(&list(Some(TicketStatus::PickedUp), None).await?), [picked_up.id]);
    assert_eq!(ids(&list(Some(TicketStatus::Cancelled), None).await?), [cancelled.id]);
    assert_eq!(ids(&list(Some(TicketStatus::Rejected), None).await?), Vec::<TicketId>::new());

    let grill = list(None, Some("grill")).await?;
    assert_eq!(ids(&grill), [awaiting.id, accepted.id]);
    assert_eq!(grill[1].lines.len(), 2, "a station's ticket shows its other lines too");
    assert_eq!(ids(&list(None, Some("cold")).await?), [accepted.id, cooking.id]);
    assert_eq!(ids(&list(None, Some("pass")).await?), [pending.id, cooking.id]);
    assert_eq!(ids(&list(Some(TicketStatus::Cancelled), Some("cold")).await?), [cancelled.id]);
    assert_eq!(ids(&list(None, Some("wok")).await?), Vec::<TicketId>::new());

    let second_page = store::list(&db.pool, None, None, Page::new(Some(2), Some(1))?).await?;
    assert_eq!(ids(&second_page), [awaiting.id, accepted.id]);
    Ok(())
}

#[tokio::test]
async fn the_overdue_sweep_locks_promised_tickets_past_their_time_not_yet_announced() -> TestResult {
    let db = database().await?;
    let at = now() - TimeDelta::hours(2);
    let item = [MenuItemId::new()];
    let new = || ticket_at(at, &item, &HashMap::new());
    let late_cooking = stored(&db.pool, new(), &[Action::Confirm, accept(at, 30), Action::Start], at).await?;
    let later_accepted = stored(&db.pool, new(), &[Action::Confirm, accept(at, 60)], at).await?;
    let on_time = stored(&db.pool, new(), &[Action::Confirm, accept(at, 180)], at).await?;
    let _ready = stored(&db.pool, new(), &[Action::Confirm, accept(at, 10), Action::Start, Action::Ready], at).await?;
    let _cancelled = stored(&db.pool, new(), &[Action::Confirm, accept(at, 10), Action::Cancel], at).await?;
    let mut announced = new();
    for action in [Action::Confirm, accept(at, 20)] {
        announced.apply(&action, at)?;
    }
    assert!(announced.overdue(now()).is_some());
    let _announced = stored(&db.pool, announced, &[], at).await?;

    let mut sweep = db.pool.begin().await?;
    let due = store::lock_overdue(&mut sweep, now(), 10).await?;
    assert_eq!(ids(&due), [late_cooking.id, later_accepted.id], "longest overdue first");

    let mut other = db.pool.begin().await?;
    assert_eq!(
        ids(&store::lock_overdue(&mut other, now(), 10).await?),
        Vec::<TicketId>::new(),
        "a second sweeper skips locked ones"
    );
    other.rollback().await?;

    let mut first = due.into_iter().next().context("nothing due")?;
    let event = first.overdue(now());
    assert_eq!(
        event,
        late_cooking.ready_by.map(|ready_by| KitchenEvent::TicketOverdue { order_id: first.order_id, ready_by })
    );
    store::update(&mut sweep, &first).await?;
    sweep.commit().await?;

    let mut next = db.pool.begin().await?;
    assert_eq!(ids(&store::lock_overdue(&mut next, now(), 10).await?), [later_accepted.id], "announced once");
    assert_eq!(ids(&store::lock_overdue(&mut next, now() + TimeDelta::hours(2), 1).await?), [later_accepted.id]);
    next.rollback().await?;
    assert!(store::find(&db.pool, on_time.id).await?.is_some_and(|ticket| !ticket.overdue_notified));
    Ok(())
}

#[tokio::test]
async fn the_newest_menu_event_decides_an_items_name_and_category() -> TestResult {
    let db = database().await?;
    let (menu, item, other, never) = (MenuId::new(), MenuItemId::new(), MenuItemId::new(), MenuItemId::new());
    let mut tx = db.pool.begin().await?;
    assert!(store::record_item_seen(&mut tx, item, menu, "Soup", "starters", 2).await?);
    assert!(!store::record_item_seen(&mut tx, item, menu, "Old soup", "mains", 1).await?, "an older event loses");
    assert!(!store::record_item_seen(&mut tx, item, menu, "Soup again", "mains", 2).await?, "so does a duplicate");
    assert!(store::record_item_seen(&mut tx, other, menu, "Cake", "desserts", 1).await?);
    tx.commit().await?;

    let seen = |name: &str, category: &str| SeenItem { name: name.to_owned(), category: category.to_owned() };
    let found = store::items_seen(&db.pool, &[item, other, never]).await?;
    assert_eq!(found, HashMap::from([(item, seen("Soup", "starters")), (other, seen("Cake", "desserts"))]));

    let mut tx = db.pool.begin().await?;
    assert!(store::record_item_seen(&mut tx, item, menu, "Tomato soup", "Soups", 3).await?, "a newer event wins");
    let found = store::items_seen(&mut *tx, &[item]).await?;
    assert_eq!(found.get(&item), Some(&seen("Tomato soup", "Soups")));
    tx.commit().await?;
    assert_eq!(store::items_seen(&db.pool, &[]).await?, HashMap::new());
    Ok(())
}

#[tokio::test]
async fn a_missing_ticket_is_not_found_by_the_write_path() -> TestResult {
    let db = database().await?;
    let mut tx = db.pool.begin().await?;
    let missing = change_in::<Ticket, WriteError>(&mut tx, TicketId::new(), IfMatch { version: None }, |_| Ok(None))
        .await
        .err()
        .context("a missing ticket was changed")?;
    assert!(missing.to_string().starts_with("there is no ticket "), "{missing}");
    Ok(())
}
