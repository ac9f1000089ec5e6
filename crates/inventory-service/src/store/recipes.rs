//! Recipes, the menu items heard of from `menu-events`, and the portions the
//! stock allows of each tracked item.

use super::ingredients::lock_ingredients;
use super::{corrupt, now};
use crate::domain::{DomainError, Recipe};
use chrono::{DateTime, Utc};
use events::{IngredientId, MenuItemId};
use service_kit::database::StoreError;
use service_kit::values::Page;
use sqlx::{PgConnection, PgExecutor, PgPool};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// What [`set_recipe`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipeOutcome {
    /// The recipe is stored; the item's version is now `version`.
    Set {
        /// The menu item's version after the change; `RecipeSet`'s version.
        version: i64,
    },
    /// Nothing changed: [`DomainError::UnknownIngredients`].
    Refused(DomainError),
}

/// Sets or replaces a menu item's recipe; the item is tracked from now on (a
/// newly tracked item counts as not published sold out). Follow it with
/// [`stock_signals`](super::stock_signals) for the recipe's ingredients: the
/// item may have no portion left.
///
/// # Errors
/// PostgreSQL failed or a stored value is invalid.
#[tracing::instrument(skip_all, fields(menu_item_id = %recipe.menu_item_id()))]
pub async fn set_recipe(tx: &mut PgConnection, recipe: &Recipe) -> Result<RecipeOutcome, StoreError> {
    let mut ingredient_ids = recipe.ingredient_ids();
    ingredient_ids.sort();
    let found: HashSet<IngredientId> =
        lock_ingredients(&mut *tx, &ingredient_ids).await?.into_iter().map(|ingredient| ingredient.id).collect();
    let unknown: Vec<IngredientId> = ingredient_ids.iter().copied().filter(|id| !found.contains(id)).collect();
    if !unknown.is_empty() {
        return Ok(RecipeOutcome::Refused(DomainError::UnknownIngredients(unknown)));
    }
    // The lock order is ingredients, then recipes by id: take every recipe
    // row that `stock_signals` will lock for these ingredients now, in order.
    lock_items(&mut *tx, &ingredient_ids, &[recipe.menu_item_id()]).await?;
    let item = recipe.menu_item_id();
    let version: i64 = sqlx::query_scalar(
        "INSERT INTO recipes (menu_item_id, sold_out, version, updated_at) VALUES ($1, false, 1, $2)
         ON CONFLICT (menu_item_id) DO UPDATE SET version = recipes.version + 1, updated_at = EXCLUDED.updated_at
         RETURNING version",
    )
    .bind(item)
    .bind(now())
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM recipe_lines WHERE menu_item_id = $1").bind(item).execute(&mut *tx).await?;
    let lines = recipe.lines();
    sqlx::query(
        "INSERT INTO recipe_lines (menu_item_id, ingredient_id, quantity, position)
         SELECT $1, ingredient_id, quantity, position
         FROM UNNEST($2::uuid[], $3::int8[], $4::int4[]) AS l(ingredient_id, quantity, position)",
    )
    .bind(item)
    .bind(lines.iter().map(|line| line.ingredient_id).collect::<Vec<_>>())
    .bind(lines.iter().map(|line| line.quantity.get()).collect::<Vec<_>>())
    .bind((0..).take(lines.len()).collect::<Vec<i32>>())
    .execute(tx)
    .await?;
    Ok(RecipeOutcome::Set { version })
}

/// Locks, in id order and in one statement, the recipe rows of `items` and
/// of every item whose recipe uses one of `ingredients`, returning their ids.
pub(super) async fn lock_items(
    tx: &mut PgConnection,
    ingredients: &[IngredientId],
    items: &[MenuItemId],
) -> Result<Vec<MenuItemId>, StoreError> {
    let locked: Vec<Uuid> = sqlx::query_scalar(
        "SELECT menu_item_id FROM recipes
         WHERE menu_item_id = ANY($2)
            OR menu_item_id IN (SELECT menu_item_id FROM recipe_lines WHERE ingredient_id = ANY($1))
         ORDER BY menu_item_id
         FOR NO KEY UPDATE",
    )
    .bind(ingredients)
    .bind(items)
    .fetch_all(tx)
    .await?;
    Ok(locked.into_iter().map(MenuItemId::from).collect())
}

/// A recipe with what the store keeps beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecipe {
    /// The recipe.
    pub recipe: Recipe,
    /// Whether `MenuItemSoldOut` was the last availability event published for the item.
    pub sold_out: bool,
    /// The menu item's version in this service: bumped by every recipe and
    /// availability event.
    pub version: i64,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// Reads a menu item's recipe; `None` if it is not tracked.
///
/// # Errors
/// PostgreSQL failed or the stored recipe is invalid.
pub async fn find_recipe(pool: &PgPool, menu_item_id: MenuItemId) -> Result<Option<StoredRecipe>, StoreError> {
    let mut connection = pool.acquire().await?;
    let head: Option<(bool, i64, DateTime<Utc>)> =
        sqlx::query_as("SELECT sold_out, version, updated_at FROM recipes WHERE menu_item_id = $1")
            .bind(menu_item_id)
            .fetch_optional(&mut *connection)
            .await?;
    let Some((sold_out, version, updated_at)) = head else {
        return Ok(None);
    };
    let mut recipes = load_recipes(&mut *connection, &[menu_item_id]).await?;
    let recipe = recipes.remove(&menu_item_id).ok_or_else(|| corrupt("recipe", menu_item_id, "it has no lines"))?;
    Ok(Some(StoredRecipe { recipe, sold_out, version, updated_at }))
}

/// The recipes of those of `items` that are tracked, read in one statement.
///
/// # Errors
/// PostgreSQL failed or a stored recipe is invalid.
pub(super) async fn load_recipes<'e>(
    executor: impl PgExecutor<'e>,
    items: &[MenuItemId],
) -> Result<HashMap<MenuItemId, Recipe>, StoreError> {
    let rows: Vec<(Uuid, Uuid, i64)> = sqlx::query_as(
        "SELECT menu_item_id, ingredient_id, quantity FROM recipe_lines
         WHERE menu_item_id = ANY($1) ORDER BY menu_item_id, position",
    )
    .bind(items)
    .fetch_all(executor)
    .await?;
    let mut lines: HashMap<MenuItemId, Vec<(IngredientId, i64)>> = HashMap::new();
    for (item, ingredient, quantity) in rows {
        lines.entry(item.into()).or_default().push((ingredient.into(), quantity));
    }
    lines
        .into_iter()
        .map(|(item, lines)| {
            Recipe::new(item, lines).map(|recipe| (item, recipe)).map_err(|error| corrupt("recipe", item, error))
        })
        .collect()
}

/// Whether a menu event has named the item.
///
/// # Errors
/// PostgreSQL failed.
pub async fn item_seen<'e>(executor: impl PgExecutor<'e>, menu_item_id: MenuItemId) -> Result<bool, StoreError> {
    let seen = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM menu_items_seen WHERE menu_item_id = $1)")
        .bind(menu_item_id)
        .fetch_one(executor)
        .await?;
    Ok(seen)
}

/// Remembers a menu item named by a menu event of `version`; an event older
/// than one already seen changes nothing. Returns whether it changed anything.
///
/// # Errors
/// PostgreSQL failed.
pub async fn record_item_seen(
    tx: &mut PgConnection,
    menu_item_id: MenuItemId,
    name: &str,
    version: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO menu_items_seen (menu_item_id, name, seen_version) VALUES ($1, $2, $3)
         ON CONFLICT (menu_item_id) DO UPDATE SET name = EXCLUDED.name, seen_version = EXCLUDED.seen_version
         WHERE menu_items_seen.seen_version < EXCLUDED.seen_version",
    )
    .bind(menu_item_id)
    .bind(name)
    .bind(version)
    .execute(tx)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// A tracked menu item and the portions its stock allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedItem {
    /// The item.
    pub menu_item_id: MenuItemId,
    /// Its name, if a menu event named it.
    pub name: Option<String>,
    /// The portions the stock allows now: the least, over its recipe, of
    /// ⌊(on_hand − reserved) / quantity⌋.
    pub portions_left: i64,
    /// Whether `MenuItemSoldOut` was the last availability event published for it.
    pub sold_out: bool,
}

/// One page of tracked items (only those of `menu_item_ids`, if given) with
/// their portions left, in id order, computed in one statement.
///
/// # Errors
/// PostgreSQL failed.
pub async fn portions<'e>(
    executor: impl PgExecutor<'e>,
    menu_item_ids: Option<&[MenuItemId]>,
    page: Page,
) -> Result<Vec<TrackedItem>, StoreError> {
    let rows: Vec<(Uuid, Option<String>, i64, bool)> = sqlx::query_as(
        "SELECT r.menu_item_id, s.name,
                MIN(GREATEST(i.on_hand - i.reserved, 0) / rl.quantity)::int8 AS portions_left,
                r.sold_out
         FROM recipes r
         JOIN recipe_lines rl ON rl.menu_item_id = r.menu_item_id
         JOIN ingredients i ON i.id = rl.ingredient_id
         LEFT JOIN menu_items_seen s ON s.menu_item_id = r.menu_item_id
         WHERE $1::uuid[] IS NULL OR r.menu_item_id = ANY($1)
         GROUP BY r.menu_item_id, s.name, r.sold_out
         ORDER BY r.menu_item_id
         LIMIT $2 OFFSET $3",
    )
    .bind(menu_item_ids.map(<[MenuItemId]>::to_vec))
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name, portions_left, sold_out)| TrackedItem {
            menu_item_id: id.into(),
            name,
            portions_left,
            sold_out,
        })
        .collect())
}
