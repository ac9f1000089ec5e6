//! The store against a real PostgreSQL: holds are all or nothing and never
//! exceed what is on hand, under any concurrency; releases, commits and
//! expiries undo exactly what was held, once; the ledger adds up.

use anyhow::Context;
use chrono::{TimeDelta, Utc};
use events::inventory::Shortage;
use events::{IngredientId, InventoryEvent, MenuItemId, OrderId};
use inventory_service::MIGRATIONS;
use inventory_service::domain::{
    DomainError, HoldStatus, Ingredient, IngredientName, Note, OrderLines, Quantity, Reason, Recipe, StockLevel, Unit,
};
use inventory_service::store::{
    self, HoldChange, Inserted, MovementKind, Outgoing, RecipeOutcome, Reservation, StockChange,
};
use service_kit::values::Page;
use sqlx::PgPool;
use std::collections::HashMap;
use testkit::TestDb;

const ALL: Page = Page { limit: 1000, offset: 0 };

async fn database() -> anyhow::Result<TestDb> {
    let db = TestDb::new().await?;
    MIGRATIONS.run(&db.pool).await?;
    Ok(db)
}

/// A new ingredient with `on_hand` received.
async fn stocked(pool: &PgPool, name: &str, unit: Unit, threshold: i64, on_hand: i64) -> anyhow::Result<IngredientId> {
    let name = IngredientName::try_from(name.to_owned())?;
    let (ingredient, _) = Ingredient::create(name, unit, StockLevel::try_from(threshold)?, Utc::now());
    let mut tx = pool.begin().await?;
    anyhow::ensure!(store::insert_ingredient(&mut tx, &ingredient).await? == Inserted::Created);
    if on_hand > 0 {
        store::receive(&mut tx, ingredient.id, Quantity::try_from(on_hand)?, "test", None).await?;
    }
    tx.commit().await?;
    Ok(ingredient.id)
}

/// Sets a recipe and returns the signals that followed.
async fn set_recipe(pool: &PgPool, item: MenuItemId, lines: &[(IngredientId, i64)]) -> anyhow::Result<Vec<Outgoing>> {
    let recipe = Recipe::new(item, lines.iter().copied())?;
    let mut tx = pool.begin().await?;
    let outcome = store::set_recipe(&mut tx, &recipe).await?;
    anyhow::ensure!(matches!(outcome, RecipeOutcome::Set { .. }), "{outcome:?}");
    let signals = store::stock_signals(&mut tx, &recipe.ingredient_ids()).await?;
    tx.commit().await?;
    Ok(signals)
}

fn lines(lines: &[(MenuItemId, i64)]) -> anyhow::Result<OrderLines> {
    Ok(OrderLines::new(lines.iter().copied())?)
}

async fn reserve(pool: &PgPool, order: OrderId, order_lines: &[(MenuItemId, i64)]) -> anyhow::Result<Reservation> {
    let mut tx = pool.begin().await?;
    let expires_at = Utc::now() + TimeDelta::minutes(15);
    let (reservation, moved) =
        store::reserve(&mut tx, order, &lines(order_lines)?, expires_at, "order-service").await?;
    tx.commit().await?;
    let moved_expected = match &reservation {
        Reservation::Held(hold) => hold.ingredients.len(),
        Reservation::Rejected(_) | Reservation::AlreadyDecided(_) => 0,
    };
    assert_eq!(moved.len(), moved_expected, "a reservation returns the ingredients it moved, and only those");
    assert_current(pool, &moved).await?;
    Ok(reservation)
}

/// Asserts that `moved`, as a change of stock returned them, is what is
/// stored now, field for field.
async fn assert_current(pool: &PgPool, moved: &[Ingredient]) -> anyhow::Result<()> {
    for ingredient in moved {
        let stored = store::find_ingredient(pool, ingredient.id).await?.context("the ingredient exists")?;
        assert_eq!(&stored, ingredient, "{} as returned", ingredient.name.as_str());
    }
    Ok(())
}

async fn stock(pool: &PgPool, id: IngredientId) -> anyhow::Result<(i64, i64)> {
    let ingredient = store::find_ingredient(pool, id).await?.context("the ingredient exists")?;
    Ok((ingredient.on_hand.get(), ingredient.reserved.get()))
}

async fn portions_of(pool: &PgPool, item: MenuItemId) -> anyhow::Result<i64> {
    let items = store::portions(pool, Some(&[item]), ALL).await?;
    Ok(items.first().context("the item is tracked")?.portions_left)
}

/// Pancakes use 100 g flour and 1 egg; an omelette 3 eggs; water nothing.
struct Kitchen {
    db: TestDb,
    flour: IngredientId,
    eggs: IngredientId,
    pancakes: MenuItemId,
    omelette: MenuItemId,
    water: MenuItemId,
}

async fn kitchen(flour: i64, eggs: i64) -> anyhow::Result<Kitchen> {
    let db = database().await?;
    let flour = stocked(&db.pool, "Flour", Unit::Gram, 0, flour).await?;
    let eggs = stocked(&db.pool, "Eggs", Unit::Piece, 0, eggs).await?;
    let (pancakes, omelette, water) = (MenuItemId::new(), MenuItemId::new(), MenuItemId::new());
    set_recipe(&db.pool, pancakes, &[(flour, 100), (eggs, 1)]).await?;
    set_recipe(&db.pool, omelette, &[(eggs, 3)]).await?;
    Ok(Kitchen { db, flour, eggs, pancakes, omelette, water })
}

async fn count_rows(pool: &PgPool, sql: &'static str, order: OrderId) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(sql).bind(order).fetch_one(pool).await?)
}

#[tokio::test]
async fn a_reservation_holds_every_line_or_nothing_and_names_the_short_items() -> anyhow::Result<()> {
    let k = kitchen(1000, 5).await?;
    let pool = &k.db.pool;

    // 2 pancakes and 2 omelettes need 8 eggs; there are 5.
    let refused = OrderId::new();
    let result = reserve(pool, refused, &[(k.pancakes, 2), (k.omelette, 2), (k.water, 1)]).await?;
    assert_eq!(
        result,
        Reservation::Rejected(vec![
            Shortage { menu_item_id: k.pancakes, requested: 2, available: 5 },
            Shortage { menu_item_id: k.omelette, requested: 2, available: 1 },
        ])
    );
    assert_eq!((stock(pool, k.flour).await?, stock(pool, k.eggs).await?), ((1000, 0), (5, 0)), "nothing held");
    assert_eq!(count_rows(pool, "SELECT count(*) FROM holds WHERE order_id = $1", refused).await?, 0);
    assert_eq!(count_rows(pool, "SELECT count(*) FROM stock_movements WHERE order_id = $1", refused).await?, 0);

    // 2 pancakes and 1 omelette need 200 g flour and 5 eggs: exactly what there is.
    let order = OrderId::new();
    let Reservation::Held(hold) = reserve(pool, order, &[(k.pancakes, 2), (k.omelette, 1), (k.water, 1)]).await? else {
        anyhow::bail!("not held")
    };
    assert_eq!(hold.status, HoldStatus::Held);
    let held: HashMap<IngredientId, i64> = hold.ingredients.iter().map(|h| (h.ingredient_id, h.quantity)).collect();
    assert_eq!(held, HashMap::from([(k.flour, 200), (k.eggs, 5)]));
    assert_eq!((stock(pool, k.flour).await?, stock(pool, k.eggs).await?), ((1000, 200), (5, 5)));
    assert_eq!((portions_of(pool, k.pancakes).await?, portions_of(pool, k.omelette).await?), (0, 0));
    let stored = store::find_hold(pool, order).await?.context("the hold is stored")?;
    assert_eq!(stored, hold);
    let InventoryEvent::StockReserved { order_id, lines, .. } = hold.event() else { anyhow::bail!("not reserved") };
    assert_eq!((order_id, lines.len()), (order, 3), "the answer repeats the order's lines");

    // Once an egg is gone, even one omelette is short.
    let result = reserve(pool, OrderId::new(), &[(k.omelette, 1)]).await?;
    assert_eq!(result, Reservation::Rejected(vec![Shortage { menu_item_id: k.omelette, requested: 1, available: 0 }]));
    // An order of untracked items holds nothing and succeeds.
    let Reservation::Held(water) = reserve(pool, OrderId::new(), &[(k.water, 4)]).await? else {
        anyhow::bail!("water is not tracked")
    };
    assert!(water.ingredients.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_second_reservation_for_an_order_changes_nothing_and_repeats_the_decision() -> anyhow::Result<()> {
    let k = kitchen(1000, 12).await?;
    let pool = &k.db.pool;
    let order = OrderId::new();
    let Reservation::Held(first) = reserve(pool, order, &[(k.pancakes, 2)]).await? else { anyhow::bail!("not held") };
    let again = reserve(pool, order, &[(k.pancakes, 5)]).await?;
    assert_eq!(again, Reservation::AlreadyDecided(first.clone()));
    assert_eq!(stock(pool, k.eggs).await?, (12, 2));

    let mut tx = pool.begin().await?;
    store::release(&mut tx, order, "order-service").await?;
    tx.commit().await?;
    let Reservation::AlreadyDecided(released) = reserve(pool, order, &[(k.pancakes, 2)]).await? else {
        anyhow::bail!("a released order is decided")
    };
    assert_eq!(released.status, HoldStatus::Released);
    assert_eq!(released.event(), InventoryEvent::StockReleased { order_id: order });
    assert_eq!(stock(pool, k.eggs).await?, (12, 0));
    Ok(())
}

async fn release(pool: &PgPool, order: OrderId) -> anyhow::Result<HoldChange> {
    let mut tx = pool.begin().await?;
    let (change, moved) = store::release(&mut tx, order, "order-service").await?;
    tx.commit().await?;
    assert_moved(&change, &moved);
    assert_current(pool, &moved).await?;
    Ok(change)
}

async fn commit(pool: &PgPool, order: OrderId) -> anyhow::Result<HoldChange> {
    let mut tx = pool.begin().await?;
    let (change, moved) = store::commit(&mut tx, order, "order-service").await?;
    tx.commit().await?;
    assert_moved(&change, &moved);
    assert_current(pool, &moved).await?;
    Ok(change)
}

/// A change of a hold returns the ingredients it moved, and only those.
fn assert_moved(change: &HoldChange, moved: &[Ingredient]) {
    let expected: Vec<IngredientId> = match change {
        HoldChange::Applied(hold) => hold.ingredients.iter().map(|held| held.ingredient_id).collect(),
        HoldChange::Unchanged { .. } | HoldChange::NotFound => Vec::new(),
    };
    assert_eq!(moved.iter().map(|ingredient| ingredient.id).collect::<Vec<_>>(), expected);
}

#[tokio::test]
async fn a_release_frees_exactly_what_was_held_even_after_the_recipe_changed_and_only_once() -> anyhow::Result<()> {
    let k = kitchen(1000, 12).await?;
    let pool = &k.db.pool;
    let order = OrderId::new();
    let Reservation::Held(_) = reserve(pool, order, &[(k.pancakes, 3)]).await? else { anyhow::bail!("not held") };
    assert_eq!((stock(pool, k.flour).await?, stock(pool, k.eggs).await?), ((1000, 300), (12, 3)));
    set_recipe(pool, k.pancakes, &[(k.flour, 150), (k.eggs, 2)]).await?;

    let HoldChange::Applied(hold) = release(pool, order).await? else { anyhow::bail!("not released") };
    assert_eq!((hold.status, hold.version), (HoldStatus::Released, 2));
    assert_eq!((stock(pool, k.flour).await?, stock(pool, k.eggs).await?), ((1000, 0), (12, 0)));

    let again = release(pool, order).await?;
    assert!(matches!(&again, HoldChange::Unchanged { hold, refusal: None } if hold.version == 2), "{again:?}");
    let commit_after = commit(pool, order).await?;
    assert!(
        matches!(&commit_after, HoldChange::Unchanged { refusal: Some(DomainError::InvalidTransition { .. }), .. }),
        "{commit_after:?}"
    );
    assert_eq!(release(pool, OrderId::new()).await?, HoldChange::NotFound, "never reserved");
    assert_eq!((stock(pool, k.flour).await?, stock(pool, k.eggs).await?), ((1000, 0), (12, 0)));
    Ok(())
}

#[tokio::test]
async fn a_commit_takes_the_held_stock_off_the_shelves_once() -> anyhow::Result<()> {
    let k = kitchen(1000, 12).await?;
    let pool = &k.db.pool;
    let order = OrderId::new();
    let Reservation::Held(_) = reserve(pool, order, &[(k.pancakes, 2), (k.omelette, 1)]).await? else {
        anyhow::bail!("not held")
    };
    let HoldChange::Applied(hold) = commit(pool, order).await? else { anyhow::bail!("not committed") };
    assert_eq!(hold.event(), InventoryEvent::StockCommitted { order_id: order });
    assert_eq!((stock(pool, k.flour).await?, stock(pool, k.eggs).await?), ((800, 0), (7, 0)));

    assert!(matches!(commit(pool, order).await?, HoldChange::Unchanged { refusal: None, .. }));
    assert!(matches!(release(pool, order).await?, HoldChange::Unchanged { refusal: Some(_), .. }));
    assert_eq!((stock(pool, k.flour).await?, stock(pool, k.eggs).await?), ((800, 0), (7, 0)));
    let consumed: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT quantity, on_hand_after, reserved_after FROM stock_movements
         WHERE order_id = $1 AND kind = 'consumed' ORDER BY ingredient_id = $2",
    )
    .bind(order)
    .bind(k.flour)
    .fetch_all(pool)
    .await?;
    assert_eq!(consumed, vec![(-5, 7, 0), (-200, 800, 0)]);
    Ok(())
}

#[tokio::test]
async fn due_holds_expire_free_their_stock_and_cannot_be_committed() -> anyhow::Result<()> {
    let k = kitchen(1000, 12).await?;
    let pool = &k.db.pool;
    let (due, later) = (OrderId::new(), OrderId::new());
    let mut tx = pool.begin().await?;
    let soon = Utc::now() + TimeDelta::seconds(1);
    store::reserve(&mut tx, due, &lines(&[(k.omelette, 2)])?, soon, "order-service").await?;
    store::reserve(&mut tx, later, &lines(&[(k.omelette, 1)])?, soon + TimeDelta::hours(1), "order-service").await?;
    tx.commit().await?;
    assert_eq!(stock(pool, k.eggs).await?, (12, 9));

    let mut tx = pool.begin().await?;
    assert!(store::expire_due(&mut tx, Utc::now(), 100).await?.is_empty(), "not due yet");
    let expired = store::expire_due(&mut tx, soon + TimeDelta::minutes(1), 100).await?;
    tx.commit().await?;
    assert_eq!(expired.iter().map(|h| (h.order_id, h.status)).collect::<Vec<_>>(), vec![(due, HoldStatus::Expired)]);
    assert_eq!(expired[0].event(), InventoryEvent::StockReservationExpired { order_id: due });
    assert_eq!(stock(pool, k.eggs).await?, (12, 3));

    let mut tx = pool.begin().await?;
    assert!(store::expire_due(&mut tx, soon + TimeDelta::minutes(1), 100).await?.is_empty(), "expired once");
    tx.commit().await?;
    assert!(matches!(release(pool, due).await?, HoldChange::Unchanged { refusal: None, .. }), "already free");
    let late = commit(pool, due).await?;
    assert!(
        matches!(
            &late,
            HoldChange::Unchanged {
                refusal: Some(DomainError::InvalidTransition { from: HoldStatus::Expired, .. }),
                ..
            }
        ),
        "{late:?}"
    );
    let actor: String = sqlx::query_scalar(
        "SELECT actor || ':' || reason FROM stock_movements WHERE order_id = $1 AND kind = 'released'",
    )
    .bind(due)
    .fetch_one(pool)
    .await?;
    assert_eq!(actor, "hold-expiry:expired");
    assert_eq!(stock(pool, k.eggs).await?, (12, 3));
    Ok(())
}

#[tokio::test]
async fn counts_and_waste_below_what_orders_hold_are_refused_naming_the_orders() -> anyhow::Result<()> {
    let k = kitchen(1000, 12).await?;
    let pool = &k.db.pool;
    let mut orders = vec![OrderId::new(), OrderId::new()];
    for order in &orders {
        let Reservation::Held(_) = reserve(pool, *order, &[(k.omelette, 2)]).await? else { anyhow::bail!("not held") };
    }
    orders.sort();
    assert_eq!(stock(pool, k.eggs).await?, (12, 12));

    let mut tx = pool.begin().await?;
    let counted = store::count(&mut tx, k.eggs, StockLevel::try_from(11)?, "staff-1", None).await?;
    assert_eq!(
        counted,
        Some(StockChange::Refused(DomainError::BelowReserved {
            on_hand_after: 11,
            reserved: 12,
            holds: orders.clone()
        }))
    );
    let reason = Reason::try_from("dropped".to_owned())?;
    let wasted = store::waste(&mut tx, k.eggs, Quantity::try_from(1)?, "staff-1", &reason).await?;
    assert!(
        matches!(&wasted, Some(StockChange::Refused(DomainError::BelowReserved { holds, .. })) if *holds == orders),
        "{wasted:?}"
    );
    let missing = store::count(&mut tx, IngredientId::new(), StockLevel::ZERO, "staff-1", None).await?;
    assert_eq!(missing, None);
    tx.commit().await?;
    assert_eq!(stock(pool, k.eggs).await?, (12, 12), "nothing changed");

    // A released hold no longer counts; waste down to what is still held is fine.
    release(pool, orders[0]).await?;
    let mut tx = pool.begin().await?;
    let wasted = store::waste(&mut tx, k.eggs, Quantity::try_from(6)?, "staff-1", &reason).await?;
    let Some(StockChange::Applied { ingredient, event }) = wasted else { anyhow::bail!("refused: {wasted:?}") };
    assert_eq!(event, InventoryEvent::StockWasted { quantity: 6, on_hand: 6, reason: "dropped".to_owned() });
    assert_eq!((ingredient.on_hand.get(), ingredient.reserved.get()), (6, 6));
    let counted = store::count(&mut tx, k.eggs, StockLevel::try_from(5)?, "staff-1", None).await?;
    assert!(
        matches!(&counted, Some(StockChange::Refused(DomainError::BelowReserved { holds, .. })) if *holds == orders[1..]),
        "{counted:?}"
    );
    tx.commit().await?;
    Ok(())
}

#[tokio::test]
async fn the_ledger_adds_up_to_what_is_on_hand_and_reserved() -> anyhow::Result<()> {
    let k = kitchen(1000, 30).await?;
    let pool = &k.db.pool;
    let note = Note::try_from("delivery 17".to_owned())?;
    let mut tx = pool.begin().await?;
    store::receive(&mut tx, k.eggs, Quantity::try_from(24)?, "staff-1", Some(&note)).await?;
    store::count(&mut tx, k.eggs, StockLevel::try_from(50)?, "staff-2", None).await?;
    store::waste(&mut tx, k.eggs, Quantity::try_from(4)?, "staff-2", &Reason::try_from("cracked".to_owned())?).await?;
    tx.commit().await?;
    let (a, b, c) = (OrderId::new(), OrderId::new(), OrderId::new());
    for (order, omelettes) in [(a, 3), (b, 2), (c, 4)] {
        let Reservation::Held(_) = reserve(pool, order, &[(k.omelette, omelettes), (k.pancakes, 1)]).await? else {
            anyhow::bail!("not held")
        };
    }
    commit(pool, a).await?;
    release(pool, b).await?;

    let (on_hand, reserved) = stock(pool, k.eggs).await?;
    assert_eq!((on_hand, reserved), (50 - 4 - 10, 13));
    let ledger = store::list_movements(pool, k.eggs, ALL).await?;
    let sum = |kinds: &[MovementKind]| -> i64 {
        ledger.iter().filter(|e| kinds.contains(&e.movement.kind)).map(|e| e.movement.quantity).sum()
    };
    use MovementKind::{Consumed, Counted, Received, Released, Reserved, Wasted};
    assert_eq!(sum(&[Received, Counted, Wasted, Consumed]), on_hand);
    assert_eq!(sum(&[Reserved, Released, Consumed]), reserved, "a consumption also lowers reserved");
    let last = ledger.last().context("the ledger has lines")?;
    assert_eq!((last.movement.on_hand_after, last.movement.reserved_after), (on_hand, reserved));
    assert!(ledger.windows(2).all(|pair| pair[0].id < pair[1].id), "oldest first");
    let first = &ledger[0].movement;
    assert_eq!((first.kind, first.quantity, first.actor.as_str()), (Received, 30, "test"));
    let received = &ledger[1].movement;
    assert_eq!((received.reason.as_deref(), received.actor.as_str()), (Some("delivery 17"), "staff-1"));
    let counted = &ledger[2].movement;
    assert_eq!((counted.kind, counted.quantity, counted.on_hand_after), (Counted, -4, 50));
    Ok(())
}

#[tokio::test]
async fn sold_out_and_back_in_stock_are_signalled_once_per_crossing() -> anyhow::Result<()> {
    let k = kitchen(1000, 6).await?;
    let pool = &k.db.pool;
    assert_eq!(portions_of(pool, k.omelette).await?, 2);
    let truffle = stocked(pool, "Truffle", Unit::Gram, 0, 0).await?;
    let signals = set_recipe(pool, MenuItemId::new(), &[(truffle, 5)]).await?;
    let availability: Vec<&Outgoing> =
        signals.iter().filter(|o| !matches!(o.event, InventoryEvent::IngredientLowStock { .. })).collect();
    assert!(
        matches!(availability.as_slice(), [Outgoing { event: InventoryEvent::MenuItemSoldOut { .. }, version: 2, .. }]),
        "an item tracked with nothing in stock is told sold out: {signals:?}"
    );

    let order = OrderId::new();
    let mut tx = pool.begin().await?;
    let Reservation::Held(hold) =
        store::reserve(&mut tx, order, &lines(&[(k.omelette, 2)])?, Utc::now() + TimeDelta::hours(1), "o").await?.0
    else {
        anyhow::bail!("not held")
    };
    let touched: Vec<IngredientId> = hold.ingredients.iter().map(|h| h.ingredient_id).collect();
    let signals = store::stock_signals(&mut tx, &touched).await?;
    tx.commit().await?;
    let mut sold_out: Vec<(MenuItemId, i64)> = signals
        .iter()
        .filter_map(|o| match o.event {
            InventoryEvent::MenuItemSoldOut { menu_item_id } => Some((menu_item_id, o.version)),
            _ => None,
        })
        .collect();
    sold_out.sort();
    let mut expected = vec![(k.omelette, 2), (k.pancakes, 2)];
    expected.sort();
    assert_eq!(sold_out, expected, "both use eggs");
    assert!(signals.iter().all(|o| o.aggregate_id != k.flour.as_uuid()));

    // Nothing crosses again: no event.
    let mut tx = pool.begin().await?;
    assert_eq!(store::stock_signals(&mut tx, &touched).await?, vec![]);
    tx.commit().await?;

    let HoldChange::Applied(_) = release(pool, order).await? else { anyhow::bail!("not released") };
    let mut tx = pool.begin().await?;
    let back = store::stock_signals(&mut tx, &touched).await?;
    tx.commit().await?;
    let back: HashMap<MenuItemId, i64> = back
        .iter()
        .filter_map(|o| match o.event {
            InventoryEvent::MenuItemBackInStock { menu_item_id, portions_left } => Some((menu_item_id, portions_left)),
            _ => None,
        })
        .collect();
    assert_eq!(back, HashMap::from([(k.omelette, 2), (k.pancakes, 6)]));
    let tracked = store::portions(pool, Some(&[k.omelette, k.pancakes]), ALL).await?;
    assert!(tracked.iter().all(|item| !item.sold_out));
    let recipe = store::find_recipe(pool, k.omelette).await?.context("tracked")?;
    assert_eq!((recipe.version, recipe.sold_out, recipe.recipe.lines().len()), (3, false, 1));
    Ok(())
}

#[tokio::test]
async fn low_stock_is_signalled_once_per_fall_below_the_threshold() -> anyhow::Result<()> {
    let db = database().await?;
    let pool = &db.pool;
    let milk = stocked(pool, "Milk", Unit::Millilitre, 1000, 3000).await?;
    let reason = Reason::try_from("sour".to_owned())?;
    let mut published = Vec::new();
    for (waste, receive) in [(1500, 0), (600, 0), (100, 0), (0, 2000), (2000, 0)] {
        let mut tx = pool.begin().await?;
        if waste > 0 {
            store::waste(&mut tx, milk, Quantity::try_from(waste)?, "staff", &reason).await?;
        }
        if receive > 0 {
            store::receive(&mut tx, milk, Quantity::try_from(receive)?, "staff", None).await?;
        }
        published.extend(store::stock_signals(&mut tx, &[milk]).await?);
        tx.commit().await?;
    }
    let available: Vec<i64> = published
        .iter()
        .map(|o| match o.event {
            InventoryEvent::IngredientLowStock { available, threshold: 1000, .. } => Ok(available),
            _ => Err(anyhow::anyhow!("unexpected {o:?}")),
        })
        .collect::<anyhow::Result<_>>()?;
    assert_eq!(available, vec![900, 800], "900 falls below, 800 stays low, 2800 re-arms, 800 falls again");
    let low = store::list_ingredients(pool, true, ALL).await?;
    assert_eq!(low.iter().map(|i| (i.id, i.low_stock)).collect::<Vec<_>>(), vec![(milk, true)]);
    Ok(())
}

#[tokio::test]
async fn names_are_unique_whatever_the_case_and_recipes_use_known_ingredients() -> anyhow::Result<()> {
    let db = database().await?;
    let pool = &db.pool;
    let flour = stocked(pool, "Flour", Unit::Gram, 0, 0).await?;
    let (again, _) =
        Ingredient::create(IngredientName::try_from(" flour ".to_owned())?, Unit::Gram, StockLevel::ZERO, Utc::now());
    let mut tx = pool.begin().await?;
    assert_eq!(store::insert_ingredient(&mut tx, &again).await?, Inserted::NameTaken(flour));
    let ghost = IngredientId::new();
    let recipe = Recipe::new(MenuItemId::new(), [(flour, 10), (ghost, 1)])?;
    assert_eq!(
        store::set_recipe(&mut tx, &recipe).await?,
        RecipeOutcome::Refused(DomainError::UnknownIngredients(vec![ghost]))
    );
    tx.commit().await?;
    assert_eq!(store::find_recipe(pool, recipe.menu_item_id()).await?, None);
    assert_eq!(store::list_ingredients(pool, false, ALL).await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn menu_items_are_remembered_from_the_newest_event_only() -> anyhow::Result<()> {
    let db = database().await?;
    let pool = &db.pool;
    let item = MenuItemId::new();
    assert!(!store::item_seen(pool, item).await?);
    let mut tx = pool.begin().await?;
    assert!(store::record_item_seen(&mut tx, item, "Pancakes", 3).await?);
    assert!(!store::record_item_seen(&mut tx, item, "Old pancakes", 2).await?);
    assert!(store::record_item_seen(&mut tx, item, "Buttermilk pancakes", 4).await?);
    tx.commit().await?;
    assert!(store::item_seen(pool, item).await?);
    let flour = stocked(pool, "Flour", Unit::Gram, 0, 500).await?;
    set_recipe(pool, item, &[(flour, 100)]).await?;
    let tracked = store::portions(pool, None, ALL).await?;
    assert_eq!(tracked.len(), 1);
    assert_eq!((tracked[0].name.as_deref(), tracked[0].portions_left), (Some("Buttermilk pancakes"), 5));
    Ok(())
}

#[tokio::test]
async fn postgresql_refuses_more_reserved_than_on_hand_whatever_the_caller() -> anyhow::Result<()> {
    let db = database().await?;
    let flour = stocked(&db.pool, "Flour", Unit::Gram, 0, 100).await?;
    let refused =
        sqlx::query("UPDATE ingredients SET reserved = 101 WHERE id = $1").bind(flour).execute(&db.pool).await;
    let code = refused.err().and_then(|e| e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned()));
    assert_eq!(code.as_deref(), Some("23514"), "a CHECK violation");
    Ok(())
}

/// 200 orders of 1 to 3 portions race for 40 portions of a three-ingredient
/// recipe, on 20 connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reservations_never_hold_more_than_is_on_hand() -> anyhow::Result<()> {
    let db = database().await?;
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(20).connect_with(db.options.clone()).await?;
    let flour = stocked(&pool, "Flour", Unit::Gram, 1000, 40 * 120).await?;
    let eggs = stocked(&pool, "Eggs", Unit::Piece, 0, 40 * 2).await?;
    let milk = stocked(&pool, "Milk", Unit::Millilitre, 0, 40 * 250 + 249).await?;
    let crepes = MenuItemId::new();
    set_recipe(&pool, crepes, &[(flour, 120), (eggs, 2), (milk, 250)]).await?;
    assert_eq!(portions_of(&pool, crepes).await?, 40);

    let requests: Vec<(OrderId, i64)> = (0..200).map(|_| (OrderId::new(), rand::random_range(1..=3))).collect();
    let tasks = requests.iter().map(|&(order, portions)| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut tx = pool.begin().await?;
            let expires_at = Utc::now() + TimeDelta::minutes(15);
            let (reservation, moved) =
                store::reserve(&mut tx, order, &lines(&[(crepes, portions)])?, expires_at, "saga").await?;
            // What the command handler does: the moved rows, locked and current.
            let signals = store::signals_of_locked(&mut tx, moved).await?;
            tx.commit().await?;
            anyhow::Ok((portions, reservation, signals))
        })
    });
    let mut held_portions = 0;
    let mut smallest_refused = i64::MAX;
    let mut signals = Vec::new();
    for outcome in futures::future::join_all(tasks).await {
        let (portions, reservation, published) = outcome??;
        signals.extend(published);
        match reservation {
            Reservation::Held(_) => held_portions += portions,
            Reservation::Rejected(shortages) => {
                assert_eq!(shortages.len(), 1, "the one line is named");
                assert_eq!(shortages[0].menu_item_id, crepes);
                assert_eq!(shortages[0].requested, portions);
                assert!(shortages[0].available < portions, "{shortages:?}");
                smallest_refused = smallest_refused.min(portions);
            }
            Reservation::AlreadyDecided(hold) => anyhow::bail!("every order is new: {hold:?}"),
        }
    }
    assert!(held_portions <= 40, "held {held_portions} of 40 portions");
    let left = portions_of(&pool, crepes).await?;
    assert_eq!(left, 40 - held_portions);
    assert!(left < smallest_refused, "{left} portions left, yet an order of {smallest_refused} was refused");

    for (ingredient, per_portion, on_hand) in [(flour, 120, 4800), (eggs, 2, 80), (milk, 250, 10_249)] {
        let held: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(hi.quantity), 0)::int8 FROM hold_ingredients hi
             JOIN holds h ON h.order_id = hi.order_id WHERE h.status = 'held' AND hi.ingredient_id = $1",
        )
        .bind(ingredient)
        .fetch_one(&pool)
        .await?;
        assert_eq!(stock(&pool, ingredient).await?, (on_hand, held), "reserved is what the live holds hold");
        assert_eq!(held, held_portions * per_portion);
    }

    // Take what is left: the item sells out, and was told so exactly once.
    if left > 0 {
        let order = OrderId::new();
        let mut tx = pool.begin().await?;
        let Reservation::Held(hold) =
            store::reserve(&mut tx, order, &lines(&[(crepes, left)])?, Utc::now() + TimeDelta::hours(1), "saga")
                .await?
                .0
        else {
            anyhow::bail!("the last portions are held")
        };
        let touched: Vec<IngredientId> = hold.ingredients.iter().map(|h| h.ingredient_id).collect();
        signals.extend(store::stock_signals(&mut tx, &touched).await?);
        tx.commit().await?;
    }
    let count = |wanted: fn(&InventoryEvent) -> bool| signals.iter().filter(|o| wanted(&o.event)).count();
    assert_eq!(count(|e| matches!(e, InventoryEvent::MenuItemSoldOut { .. })), 1);
    assert_eq!(count(|e| matches!(e, InventoryEvent::MenuItemBackInStock { .. })), 0);
    let low: Vec<IngredientId> = signals
        .iter()
        .filter_map(|o| match o.event {
            InventoryEvent::IngredientLowStock { ingredient_id, .. } => Some(ingredient_id),
            _ => None,
        })
        .collect();
    let mut expected = vec![flour, eggs];
    expected.sort();
    let mut low_sorted = low.clone();
    low_sorted.sort();
    assert_eq!(low_sorted, expected, "flour fell to 1000 g once, the eggs ran out once, milk stays above 0: {low:?}");
    Ok(())
}

/// Every kind of change at once, on items that share ingredients: no
/// transaction deadlocks or fails, and `reserved` stays what the live holds hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mixed_changes_from_many_transactions_keep_the_books_and_never_deadlock() -> anyhow::Result<()> {
    enum Touched {
        Rows(Vec<Ingredient>),
        Ids(Vec<IngredientId>),
    }
    let db = database().await?;
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(20).connect_with(db.options.clone()).await?;
    let flour = stocked(&pool, "Flour", Unit::Gram, 500, 5000).await?;
    let eggs = stocked(&pool, "Eggs", Unit::Piece, 10, 100).await?;
    let milk = stocked(&pool, "Milk", Unit::Millilitre, 500, 5000).await?;
    let (crepes, omelette, cake) = (MenuItemId::new(), MenuItemId::new(), MenuItemId::new());
    set_recipe(&pool, crepes, &[(flour, 120), (eggs, 2), (milk, 250)]).await?;
    set_recipe(&pool, omelette, &[(eggs, 3), (milk, 50)]).await?;
    set_recipe(&pool, cake, &[(milk, 100), (flour, 300)]).await?;
    let orders: Vec<OrderId> = (0..60).map(|_| OrderId::new()).collect();

    let tasks = (0..300).map(|n| {
        let pool = pool.clone();
        let order = orders[n % orders.len()];
        let item = [crepes, omelette, cake][n % 3];
        tokio::spawn(async move {
            let mut tx = pool.begin().await?;
            // A change of a hold returns the rows it moved, which the signals
            // take as they are (as the command handler does); the others
            // name what they touched.
            let touched: Touched = match n % 8 {
                0..=2 => {
                    let order_lines = lines(&[(item, 1 + (n as i64 % 3)), (crepes, 1)])?;
                    let expires_at = Utc::now() + TimeDelta::milliseconds(if n % 5 == 0 { -1 } else { 60_000 });
                    Touched::Rows(store::reserve(&mut tx, order, &order_lines, expires_at, "saga").await?.1)
                }
                3 => Touched::Rows(store::release(&mut tx, order, "saga").await?.1),
                4 => Touched::Rows(store::commit(&mut tx, order, "saga").await?.1),
                5 => {
                    // Two ingredients in one transaction: in id order, like every lock.
                    let reason = Reason::try_from("spilt".to_owned())?;
                    let mut both = [eggs, milk];
                    both.sort();
                    for id in both {
                        if id == eggs {
                            store::receive(&mut tx, eggs, Quantity::try_from(2)?, "staff", None).await?;
                        } else {
                            store::waste(&mut tx, milk, Quantity::try_from(10)?, "staff", &reason).await?;
                        }
                    }
                    Touched::Ids(both.to_vec())
                }
                6 => {
                    let recipe = Recipe::new(cake, [(milk, 100 + (n as i64 % 2)), (flour, 300)])?;
                    store::set_recipe(&mut tx, &recipe).await?;
                    Touched::Ids(recipe.ingredient_ids())
                }
                _ => Touched::Ids(
                    store::expire_due(&mut tx, Utc::now(), 10)
                        .await?
                        .iter()
                        .flat_map(|hold| hold.ingredients.iter().map(|h| h.ingredient_id))
                        .collect(),
                ),
            };
            match touched {
                Touched::Rows(moved) => store::signals_of_locked(&mut tx, moved).await?,
                Touched::Ids(ids) => store::stock_signals(&mut tx, &ids).await?,
            };
            tx.commit().await?;
            anyhow::Ok(())
        })
    });
    for outcome in futures::future::join_all(tasks).await {
        outcome??;
    }

    for ingredient in [flour, eggs, milk] {
        let held: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(hi.quantity), 0)::int8 FROM hold_ingredients hi
             JOIN holds h ON h.order_id = hi.order_id WHERE h.status = 'held' AND hi.ingredient_id = $1",
        )
        .bind(ingredient)
        .fetch_one(&pool)
        .await?;
        let (on_hand, reserved) = stock(&pool, ingredient).await?;
        assert_eq!(reserved, held, "reserved is what the live holds hold");
        assert!(reserved <= on_hand);
        let ledger = store::list_movements(&pool, ingredient, ALL).await?;
        let on_hand_sum: i64 =
            ledger.iter().filter(|e| e.movement.kind.moves_on_hand()).map(|e| e.movement.quantity).sum();
        assert_eq!(on_hand_sum, on_hand, "the ledger adds up");
    }
    // What was last published about each item is what its portions say.
    for item in store::portions(&pool, None, ALL).await? {
        assert_eq!(item.sold_out, item.portions_left == 0, "{item:?}");
    }
    Ok(())
}
