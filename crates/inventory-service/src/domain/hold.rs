//! Holding stock for an order: what an order needs, whether the stock covers
//! it (all of it or nothing), and the life of a hold.

use super::error::DomainError;
use super::recipe::{Recipe, Stock};
use super::values::Portions;
use chrono::{DateTime, Utc};
use events::inventory::{OrderLine as EventLine, Shortage};
use events::{IngredientId, InventoryEvent, MenuItemId, OrderId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// Where a hold is in its life: `held` → `committed` (the order used the
/// stock), `released` (the order let it go) or `expired` (nobody did either
/// in time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldStatus {
    /// The stock is reserved for the order.
    Held,
    /// The order used the stock: it left on hand.
    Committed,
    /// The order let the stock go.
    Released,
    /// The hold lapsed; the stock is free again.
    Expired,
}

impl HoldStatus {
    /// Every status.
    pub const ALL: [Self; 4] = [Self::Held, Self::Committed, Self::Released, Self::Expired];

    /// The name used in JSON and in the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Committed => "committed",
            Self::Released => "released",
            Self::Expired => "expired",
        }
    }

    /// Parses the database form.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == value)
    }
}

impl fmt::Display for HoldStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change asked of a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldAction {
    /// The order uses the stock (`CommitStock`).
    Commit,
    /// The order lets the stock go (`ReleaseStock`).
    Release,
    /// The hold's time is up (the expiry sweep).
    Expire,
}

impl HoldAction {
    /// The status the action leads to, as a word: `committed`, `released`, `expired`.
    pub const fn past_tense(self) -> &'static str {
        match self {
            Self::Commit => "committed",
            Self::Release => "released",
            Self::Expire => "expired",
        }
    }
}

/// The hold's status rules, in one place. `Ok(None)` means nothing changes
/// and the answer is what the hold already says: a repeated command, a
/// release of stock that is already free, or an expiry of a hold that is over.
///
/// # Errors
/// [`DomainError::InvalidTransition`] for committing a hold whose stock was
/// freed, or releasing one whose stock was used.
pub fn transition(from: HoldStatus, requested: HoldAction) -> Result<Option<HoldStatus>, DomainError> {
    use HoldStatus::{Committed, Expired, Held, Released};
    let refuse = |detail| Err(DomainError::InvalidTransition { from, requested, detail });
    match (from, requested) {
        (Held, HoldAction::Commit) => Ok(Some(Committed)),
        (Held, HoldAction::Release) => Ok(Some(Released)),
        (Held, HoldAction::Expire) => Ok(Some(Expired)),
        (Committed, HoldAction::Commit | HoldAction::Expire)
        | (Released | Expired, HoldAction::Release | HoldAction::Expire) => Ok(None),
        (Committed, HoldAction::Release) => refuse("its stock was used and cannot be given back"),
        (Released, HoldAction::Commit) => refuse("its stock was let go; reserve again"),
        (Expired, HoldAction::Commit) => refuse("its stock was freed when it lapsed; reserve again"),
    }
}

/// Portions of one menu item an order asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderLine {
    /// The item.
    pub menu_item_id: MenuItemId,
    /// How many portions.
    pub portions: Portions,
}

/// The lines of an order: one to [`OrderLines::MAX`] items, each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLines(Vec<OrderLine>);

impl OrderLines {
    /// The most distinct items one order may ask for.
    pub const MAX: usize = 100;

    /// The lines `(item, portions)` of an order, in order. An item named on
    /// several lines becomes one line with their sum, where it first appears.
    ///
    /// # Errors
    /// No lines, more than [`OrderLines::MAX`] items, or portions of a line
    /// (or of an item's sum) outside 1 to [`Portions::MAX`].
    pub fn new(lines: impl IntoIterator<Item = (MenuItemId, i64)>) -> Result<Self, DomainError> {
        let invalid =
            |menu_item_id, quantity| DomainError::InvalidPortions { menu_item_id, quantity, max: Portions::MAX };
        let mut order: Vec<MenuItemId> = Vec::new();
        let mut sums: HashMap<MenuItemId, i64> = HashMap::new();
        for (menu_item_id, quantity) in lines {
            if quantity < 1 {
                return Err(invalid(menu_item_id, quantity));
            }
            let sum = sums.entry(menu_item_id).or_insert_with(|| {
                order.push(menu_item_id);
                0
            });
            *sum = sum.saturating_add(quantity);
        }
        if order.is_empty() {
            return Err(DomainError::EmptyOrder);
        }
        if order.len() > Self::MAX {
            return Err(DomainError::TooManyOrderLines { max: Self::MAX, given: order.len() });
        }
        order
            .into_iter()
            .map(|menu_item_id| {
                let quantity = sums.get(&menu_item_id).copied().unwrap_or_default();
                let portions = Portions::try_from(quantity).map_err(|_| invalid(menu_item_id, quantity))?;
                Ok(OrderLine { menu_item_id, portions })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The lines of a `ReserveStock` command.
    ///
    /// # Errors
    /// As [`OrderLines::new`].
    pub fn from_event(lines: &[EventLine]) -> Result<Self, DomainError> {
        Self::new(lines.iter().map(|line| (line.menu_item_id, line.quantity)))
    }

    /// The lines, in order.
    pub fn lines(&self) -> &[OrderLine] {
        &self.0
    }

    /// The items, in order.
    pub fn menu_item_ids(&self) -> Vec<MenuItemId> {
        self.0.iter().map(|line| line.menu_item_id).collect()
    }

    /// The lines as events carry them.
    pub fn to_event_lines(&self) -> Vec<EventLine> {
        self.0.iter().map(|line| EventLine { menu_item_id: line.menu_item_id, quantity: line.portions.get() }).collect()
    }
}

/// How much of each ingredient an order needs: over its lines, the portions
/// times the recipe's quantity. Items without a recipe (in `recipes`) are not
/// tracked and need nothing. Sorted by ingredient id, the order in which the
/// store locks them.
pub fn needs(lines: &OrderLines, recipes: &HashMap<MenuItemId, Recipe>) -> BTreeMap<IngredientId, i64> {
    let mut needs = BTreeMap::new();
    for line in lines.lines() {
        for recipe_line in recipes.get(&line.menu_item_id).map(Recipe::lines).unwrap_or_default() {
            let need: &mut i64 = needs.entry(recipe_line.ingredient_id).or_default();
            *need = need.saturating_add(line.portions.get().saturating_mul(recipe_line.quantity.get()));
        }
    }
    needs
}

/// Whether `stock` covers every line of an order: the amount to hold of each
/// ingredient (sorted by id) if it does, otherwise the lines that cannot be
/// served. A line is short if its recipe uses an ingredient of which the
/// order as a whole needs more than is available; its `available` is the
/// portions of the item the stock allows on their own. An ingredient
/// `stock` does not know has nothing available.
///
/// # Errors
/// The shortages, at least one, in line order.
pub fn plan(
    lines: &OrderLines,
    recipes: &HashMap<MenuItemId, Recipe>,
    stock: &HashMap<IngredientId, Stock>,
) -> Result<Vec<HeldIngredient>, Vec<Shortage>> {
    let needs = needs(lines, recipes);
    let available = |id: &IngredientId| stock.get(id).copied().map_or(0, Stock::available);
    let short: HashSet<IngredientId> =
        needs.iter().filter(|(id, need)| **need > available(id)).map(|(id, _)| *id).collect();
    if short.is_empty() {
        return Ok(needs
            .into_iter()
            .map(|(ingredient_id, quantity)| HeldIngredient { ingredient_id, quantity })
            .collect());
    }
    Err(lines
        .lines()
        .iter()
        .filter_map(|line| {
            let recipe = recipes.get(&line.menu_item_id)?;
            recipe.lines().iter().any(|l| short.contains(&l.ingredient_id)).then(|| Shortage {
                menu_item_id: line.menu_item_id,
                requested: line.portions.get(),
                available: recipe.portions(|id| stock.get(&id).copied()),
            })
        })
        .collect())
}

/// How much of one ingredient a hold reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldIngredient {
    /// The ingredient.
    pub ingredient_id: IngredientId,
    /// How much of it, at least one.
    pub quantity: i64,
}

/// Stock held for an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The order; one hold per order.
    pub order_id: OrderId,
    /// Where it is in its life.
    pub status: HoldStatus,
    /// The portions the order asked for.
    pub lines: OrderLines,
    /// Exactly what was reserved of each ingredient, sorted by id. Release
    /// and commit undo this, whatever the recipes say by then.
    pub ingredients: Vec<HeldIngredient>,
    /// When it lapses if still held.
    pub expires_at: DateTime<Utc>,
    /// 1 when held, bumped by each change; the events' version.
    pub version: i64,
    /// When it was taken.
    pub created_at: DateTime<Utc>,
    /// When its status last changed.
    pub updated_at: DateTime<Utc>,
}

impl Hold {
    /// A new hold of `ingredients` for the order's `lines`.
    pub fn new(
        order_id: OrderId,
        lines: OrderLines,
        ingredients: Vec<HeldIngredient>,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            order_id,
            status: HoldStatus::Held,
            lines,
            ingredients,
            expires_at,
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }

    /// Applies `action` by [`transition`]; `Ok(false)` if nothing changes.
    ///
    /// # Errors
    /// The status does not allow it.
    pub fn apply(&mut self, action: HoldAction, now: DateTime<Utc>) -> Result<bool, DomainError> {
        let next = transition(self.status, action)?;
        if let Some(status) = next {
            self.status = status;
            self.version += 1;
            self.updated_at = now;
        }
        Ok(next.is_some())
    }

    /// The event that tells the hold's status: `StockReserved`,
    /// `StockCommitted`, `StockReleased` or `StockReservationExpired`; also
    /// the answer to a repeated command.
    pub fn event(&self) -> InventoryEvent {
        let order_id = self.order_id;
        match self.status {
            HoldStatus::Held => InventoryEvent::StockReserved {
                order_id,
                lines: self.lines.to_event_lines(),
                expires_at: self.expires_at,
            },
            HoldStatus::Committed => InventoryEvent::StockCommitted { order_id },
            HoldStatus::Released => InventoryEvent::StockReleased { order_id },
            HoldStatus::Expired => InventoryEvent::StockReservationExpired { order_id },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HoldStatus::{Committed, Expired, Held, Released};

    #[test]
    fn every_transition_is_allowed_refused_or_a_no_op_as_the_table_says() {
        let table = [
            (Held, HoldAction::Commit, Ok(Some(Committed))),
            (Held, HoldAction::Release, Ok(Some(Released))),
            (Held, HoldAction::Expire, Ok(Some(Expired))),
            (Committed, HoldAction::Commit, Ok(None)),
            (Committed, HoldAction::Release, Err(())),
            (Committed, HoldAction::Expire, Ok(None)),
            (Released, HoldAction::Commit, Err(())),
            (Released, HoldAction::Release, Ok(None)),
            (Released, HoldAction::Expire, Ok(None)),
            (Expired, HoldAction::Commit, Err(())),
            (Expired, HoldAction::Release, Ok(None)),
            (Expired, HoldAction::Expire, Ok(None)),
        ];
        for (from, requested, expected) in table {
            assert_eq!(transition(from, requested).map_err(drop), expected, "{from} + {requested:?}");
        }
        for status in HoldStatus::ALL {
            assert_eq!(HoldStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(HoldStatus::parse("rejected"), None);
    }

    fn recipe(item: MenuItemId, lines: &[(IngredientId, i64)]) -> Recipe {
        Recipe::new(item, lines.iter().copied()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn order(lines: &[(MenuItemId, i64)]) -> OrderLines {
        OrderLines::new(lines.iter().copied()).unwrap_or_else(|e| panic!("{e}"))
    }

    struct Kitchen {
        pancakes: MenuItemId,
        omelette: MenuItemId,
        water: MenuItemId,
        flour: IngredientId,
        eggs: IngredientId,
        recipes: HashMap<MenuItemId, Recipe>,
    }

    fn kitchen() -> Kitchen {
        let (pancakes, omelette, water) = (MenuItemId::new(), MenuItemId::new(), MenuItemId::new());
        let (flour, eggs) = (IngredientId::new(), IngredientId::new());
        let recipes = HashMap::from([
            (pancakes, recipe(pancakes, &[(flour, 100), (eggs, 1)])),
            (omelette, recipe(omelette, &[(eggs, 3)])),
        ]);
        Kitchen { pancakes, omelette, water, flour, eggs, recipes }
    }

    fn stock(entries: &[(IngredientId, i64, i64)]) -> HashMap<IngredientId, Stock> {
        entries.iter().map(|&(id, on_hand, reserved)| (id, Stock { on_hand, reserved })).collect()
    }

    #[test]
    fn an_order_needs_the_sum_of_its_tracked_lines_and_untracked_items_need_nothing() {
        let k = kitchen();
        let lines = order(&[(k.pancakes, 2), (k.omelette, 1), (k.water, 5)]);
        let expected = BTreeMap::from([(k.flour, 200), (k.eggs, 5)]);
        assert_eq!(needs(&lines, &k.recipes), expected);
        assert!(needs(&order(&[(k.water, 3)]), &k.recipes).is_empty());
    }

    #[test]
    fn an_order_the_stock_covers_holds_exactly_its_needs_sorted_by_ingredient() {
        let k = kitchen();
        let lines = order(&[(k.pancakes, 2), (k.omelette, 1), (k.water, 5)]);
        let held = plan(&lines, &k.recipes, &stock(&[(k.flour, 200, 0), (k.eggs, 10, 5)]));
        let mut expected = vec![
            HeldIngredient { ingredient_id: k.flour, quantity: 200 },
            HeldIngredient { ingredient_id: k.eggs, quantity: 5 },
        ];
        expected.sort_by_key(|held| held.ingredient_id);
        assert_eq!(held, Ok(expected));
    }

    #[test]
    fn an_order_the_stock_does_not_cover_names_every_line_that_uses_a_short_ingredient() {
        let k = kitchen();
        let lines = order(&[(k.pancakes, 2), (k.omelette, 1), (k.water, 5)]);
        // Eggs: 5 needed, 4 available. Each line alone would fit.
        let result = plan(&lines, &k.recipes, &stock(&[(k.flour, 1000, 0), (k.eggs, 6, 2)]));
        assert_eq!(
            result,
            Err(vec![
                Shortage { menu_item_id: k.pancakes, requested: 2, available: 4 },
                Shortage { menu_item_id: k.omelette, requested: 1, available: 1 },
            ])
        );
        // Flour short: only the pancakes are named.
        let result = plan(
            &order(&[(k.pancakes, 3), (k.omelette, 1)]),
            &k.recipes,
            &stock(&[(k.flour, 250, 0), (k.eggs, 50, 0)]),
        );
        assert_eq!(result, Err(vec![Shortage { menu_item_id: k.pancakes, requested: 3, available: 2 }]));
        // An ingredient with no stock row has nothing.
        let result = plan(&order(&[(k.omelette, 1)]), &k.recipes, &HashMap::new());
        assert_eq!(result, Err(vec![Shortage { menu_item_id: k.omelette, requested: 1, available: 0 }]));
    }

    #[test]
    fn order_lines_merge_repeated_items_and_are_bounded() {
        let (a, b) = (MenuItemId::new(), MenuItemId::new());
        let lines = order(&[(a, 1), (b, 2), (a, 3)]);
        assert_eq!(lines.menu_item_ids(), vec![a, b]);
        assert_eq!(
            lines.to_event_lines(),
            vec![EventLine { menu_item_id: a, quantity: 4 }, EventLine { menu_item_id: b, quantity: 2 }]
        );
        assert_eq!(OrderLines::new([]), Err(DomainError::EmptyOrder));
        assert_eq!(
            OrderLines::new([(a, 0)]),
            Err(DomainError::InvalidPortions { menu_item_id: a, quantity: 0, max: Portions::MAX })
        );
        assert!(OrderLines::new([(a, 3), (a, -1)]).is_err(), "a negative line does not shrink another");
        assert!(OrderLines::new([(a, Portions::MAX), (a, 1)]).is_err());
        let many: Vec<_> = (0..=OrderLines::MAX).map(|_| (MenuItemId::new(), 1)).collect();
        assert_eq!(OrderLines::new(many), Err(DomainError::TooManyOrderLines { max: 100, given: 101 }));
    }

    #[test]
    fn a_hold_tells_its_status_with_one_event_and_bumps_its_version_on_each_change() {
        let now = Utc::now();
        let item = MenuItemId::new();
        let order_id = OrderId::new();
        let mut hold = Hold::new(order_id, order(&[(item, 2)]), vec![], now, now);
        assert_eq!(
            hold.event(),
            InventoryEvent::StockReserved {
                order_id,
                lines: vec![EventLine { menu_item_id: item, quantity: 2 }],
                expires_at: now
            }
        );
        assert_eq!(hold.apply(HoldAction::Commit, now), Ok(true));
        assert_eq!((hold.status, hold.version), (Committed, 2));
        assert_eq!(hold.apply(HoldAction::Commit, now), Ok(false));
        assert_eq!(hold.version, 2);
        assert!(hold.apply(HoldAction::Release, now).is_err());
        assert_eq!(hold.event(), InventoryEvent::StockCommitted { order_id });
    }
}
