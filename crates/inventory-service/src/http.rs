//! The inventory API: JSON in and out, problem+json errors, `ETag`/`If-Match`
//! on every change of an ingredient or a recipe, `Idempotency-Key` on every
//! request that adds something. Every route, reads included, needs a staff
//! token with `inventory:manage` (stock levels and suppliers' quantities are
//! the restaurant's business, not its guests').

use crate::domain::{Ingredient, Recipe, Unit};
use crate::error::Error;
use crate::service::{Adjustment, Inventory};
use crate::store::{self, LedgerEntry, StoredRecipe, TrackedItem};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use events::{IngredientId, MenuItemId, OrderId};
use serde::{Deserialize, Serialize};
use service_kit::Problem;
use service_kit::auth::{Staff, scopes::InventoryManage};
use service_kit::extract::{IfMatch, Path, Query, RequestId, whole_number};
use service_kit::idempotency::{IdempotentJson, Reply};
use service_kit::values::{Page, parse, parse_optional};
use service_kit::write::Request;
use utoipa::{IntoParams, OpenApi, ToSchema};

/// The inventory API's OpenAPI document (service-kit adds what all services share).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "inventory-service",
        description = "Ingredients, recipes and stock; every change is published on inventory-events."
    ),
    paths(create, list, show, receive, count, waste, movements, set_recipe, show_recipe, portions),
    components(schemas(Problem))
)]
pub struct ApiDoc;

/// The inventory routes.
pub fn router(inventory: Inventory) -> Router {
    Router::new()
        .route("/api/v1/ingredients", post(create).get(list))
        .route("/api/v1/ingredients/{ingredient_id}", get(show))
        .route("/api/v1/ingredients/{ingredient_id}/receipts", post(receive))
        .route("/api/v1/ingredients/{ingredient_id}/counts", post(count))
        .route("/api/v1/ingredients/{ingredient_id}/waste", post(waste))
        .route("/api/v1/ingredients/{ingredient_id}/movements", get(movements))
        .route("/api/v1/recipes/{menu_item_id}", get(show_recipe).put(set_recipe))
        .route("/api/v1/portions", get(portions))
        .with_state(inventory)
}

/// `/api/v1/ingredients/{ingredient_id}…`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct IngredientPath {
    /// The ingredient.
    #[param(value_type = uuid::Uuid)]
    ingredient_id: IngredientId,
}

/// `/api/v1/recipes/{menu_item_id}`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct RecipePath {
    /// The menu item.
    #[param(value_type = uuid::Uuid)]
    menu_item_id: MenuItemId,
}

/// An ingredient and its stock, in whole units (`g`, `ml`, `piece`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Ingredient)]
struct IngredientBody {
    #[schema(value_type = uuid::Uuid)]
    id: IngredientId,
    name: String,
    #[schema(value_type = String, example = "g")]
    unit: &'static str,
    /// What is in the kitchen.
    on_hand: i64,
    /// What of it is held for orders.
    reserved: i64,
    /// `on_hand − reserved`: what new orders can have.
    available: i64,
    /// At or below this much available, it is low on stock.
    low_stock_threshold: i64,
    /// Whether it is low on stock.
    low_stock: bool,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<&Ingredient> for IngredientBody {
    fn from(ingredient: &Ingredient) -> Self {
        Self {
            id: ingredient.id,
            name: ingredient.name.as_str().to_owned(),
            unit: ingredient.unit.as_str(),
            on_hand: ingredient.on_hand.get(),
            reserved: ingredient.reserved.get(),
            available: ingredient.available(),
            low_stock_threshold: ingredient.low_stock_threshold.get(),
            low_stock: ingredient.low_stock,
            version: ingredient.version,
            created_at: ingredient.created_at,
            updated_at: ingredient.updated_at,
        }
    }
}

/// The ingredient, `status` with its version as `ETag`.
fn ingredient_reply(status: StatusCode) -> impl FnOnce(&Ingredient) -> Result<Reply, serde_json::Error> {
    move |ingredient| Ok(Reply::json(status, &IngredientBody::from(ingredient))?.with_etag(ingredient.version))
}

/// A new ingredient; it starts with nothing on hand.
#[derive(Debug, Deserialize, ToSchema)]
struct CreateIngredient {
    /// 1 to 100 characters, unique whatever the case.
    #[schema(example = "Arborio rice")]
    name: String,
    /// `g`, `ml` or `piece`: quantities are whole numbers of it.
    #[schema(value_type = String, example = "g")]
    unit: String,
    /// At or below this much available, `IngredientLowStock` is published (default 0).
    #[serde(default, deserialize_with = "optional_whole")]
    #[schema(value_type = Option<i64>, minimum = 0, example = 2000)]
    low_stock_threshold: Option<i64>,
}

fn optional_whole<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    service_kit::extract::optional_whole_number(deserializer)
}

#[utoipa::path(post, path = "/api/v1/ingredients", tag = "ingredients", request_body = CreateIngredient, security(("bearer" = ["inventory:manage"])), responses(
    (status = 201, description = "Stocked, with nothing on hand; IngredientCreated published", body = IngredientBody, headers(("Location" = String), ("ETag" = String))),
    (status = 409, description = "Another ingredient has that name", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "A field breaks a rule; `field` names it", body = Problem, content_type = "application/problem+json"),
))]
async fn create(
    _staff: Staff<InventoryManage>,
    State(inventory): State<Inventory>,
    RequestId(request_id): RequestId,
    IdempotentJson { key, body }: IdempotentJson<CreateIngredient>,
) -> Result<Reply, Error> {
    let name = parse("name", body.name)?;
    let unit: Unit = body.unit.parse().map_err(|error: events::inventory::UnknownUnit| {
        service_kit::values::FieldError::new("unit", error.to_string())
    })?;
    let threshold = parse("low_stock_threshold", body.low_stock_threshold.unwrap_or(0))?;
    let request = Request::new(&request_id).keyed(key.as_ref());
    inventory
        .create_ingredient(name, unit, threshold, request, |ingredient| {
            let location = format!("/api/v1/ingredients/{}", ingredient.id);
            Reply::created(&location, ingredient.version, &IngredientBody::from(ingredient))
        })
        .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only the ingredients low on stock.
    low_stock: Option<bool>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u16>,
    /// Ingredients to skip (default 0).
    #[param(minimum = 0, maximum = 1_000_000)]
    offset: Option<u32>,
}

/// One page of ingredients, by name.
#[derive(Debug, Serialize, ToSchema)]
struct IngredientPage {
    ingredients: Vec<IngredientBody>,
    limit: i64,
    offset: i64,
}

#[utoipa::path(get, path = "/api/v1/ingredients", tag = "ingredients", params(ListQuery), security(("bearer" = ["inventory:manage"])), responses(
    (status = 200, description = "A page of ingredients", body = IngredientPage),
    (status = 422, description = "limit or offset out of range", body = Problem, content_type = "application/problem+json"),
))]
async fn list(
    _staff: Staff<InventoryManage>,
    State(inventory): State<Inventory>,
    Query(query): Query<ListQuery>,
) -> Result<Reply, Error> {
    let page = Page::new(query.limit, query.offset)?;
    let found = store::list_ingredients(inventory.pool(), query.low_stock.unwrap_or(false), page).await?;
    let body = IngredientPage {
        ingredients: found.iter().map(IngredientBody::from).collect(),
        limit: page.limit,
        offset: page.offset,
    };
    Reply::json(StatusCode::OK, &body).map_err(encoding)
}

#[utoipa::path(get, path = "/api/v1/ingredients/{ingredient_id}", tag = "ingredients", params(IngredientPath), security(("bearer" = ["inventory:manage"])), responses(
    (status = 200, description = "The ingredient", body = IngredientBody, headers(("ETag" = String, description = "Its version"))),
    (status = 404, description = "No such ingredient", body = Problem, content_type = "application/problem+json"),
))]
async fn show(
    _staff: Staff<InventoryManage>,
    State(inventory): State<Inventory>,
    Path(IngredientPath { ingredient_id }): Path<IngredientPath>,
) -> Result<Reply, Error> {
    let ingredient = store::find_ingredient(inventory.pool(), ingredient_id)
        .await?
        .ok_or_else(|| Error::not_found(ingredient_id))?;
    ingredient_reply(StatusCode::OK)(&ingredient).map_err(encoding)
}

/// A delivery.
#[derive(Debug, Deserialize, ToSchema)]
struct Receipt {
    /// How much arrived, in the ingredient's unit.
    #[serde(deserialize_with = "whole_number")]
    #[schema(minimum = 1, example = 5000)]
    quantity: i64,
    /// Up to 500 characters: the supplier, the delivery note.
    note: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/ingredients/{ingredient_id}/receipts", tag = "ingredients", params(IngredientPath, IfMatch), request_body = Receipt, security(("bearer" = ["inventory:manage"])), responses(
    (status = 200, description = "On hand rose; StockReceived published, and MenuItemBackInStock for items it makes available again", body = IngredientBody, headers(("ETag" = String))),
    (status = 404, description = "No such ingredient", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "If-Match names another version", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "The quantity or note breaks a rule", body = Problem, content_type = "application/problem+json"),
))]
async fn receive(
    staff: Staff<InventoryManage>,
    State(inventory): State<Inventory>,
    RequestId(request_id): RequestId,
    if_match: IfMatch,
    Path(IngredientPath { ingredient_id }): Path<IngredientPath>,
    IdempotentJson { key, body }: IdempotentJson<Receipt>,
) -> Result<Reply, Error> {
    let adjustment =
        Adjustment::Receipt { quantity: parse("quantity", body.quantity)?, note: parse_optional("note", body.note)? };
    let request = Request::new(&request_id).keyed(key.as_ref());
    let actor = &staff.identity.subject;
    inventory.adjust(ingredient_id, adjustment, actor, if_match, request, ingredient_reply(StatusCode::OK)).await
}

/// What a count found.
#[derive(Debug, Deserialize, ToSchema)]
struct Count {
    /// What is there, in the ingredient's unit.
    #[serde(deserialize_with = "whole_number")]
    #[schema(minimum = 0, example = 4200)]
    on_hand: i64,
    /// Up to 500 characters.
    note: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/ingredients/{ingredient_id}/counts", tag = "ingredients", params(IngredientPath, IfMatch), request_body = Count, security(("bearer" = ["inventory:manage"])), responses(
    (status = 200, description = "On hand is what was counted; StockCounted published, and what follows from it", body = IngredientBody, headers(("ETag" = String))),
    (status = 404, description = "No such ingredient", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "Less than orders hold (the problem names them), or If-Match names another version", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "A field breaks a rule", body = Problem, content_type = "application/problem+json"),
))]
async fn count(
    staff: Staff<InventoryManage>,
    State(inventory): State<Inventory>,
    RequestId(request_id): RequestId,
    if_match: IfMatch,
    Path(IngredientPath { ingredient_id }): Path<IngredientPath>,
    service_kit::extract::Json(body): service_kit::extract::Json<Count>,
) -> Result<Reply, Error> {
    let adjustment =
        Adjustment::Count { on_hand: parse("on_hand", body.on_hand)?, note: parse_optional("note", body.note)? };
    let actor = &staff.identity.subject;
    let request = Request::new(&request_id);
    inventory.adjust(ingredient_id, adjustment, actor, if_match, request, ingredient_reply(StatusCode::OK)).await
}

/// Stock thrown away.
#[derive(Debug, Deserialize, ToSchema)]
struct Waste {
    /// How much, in the ingredient's unit.
    #[serde(deserialize_with = "whole_number")]
    #[schema(minimum = 1, example = 300)]
    quantity: i64,
    /// Why, 1 to 500 characters.
    #[schema(example = "dropped on the floor")]
    reason: String,
}

#[utoipa::path(post, path = "/api/v1/ingredients/{ingredient_id}/waste", tag = "ingredients", params(IngredientPath, IfMatch), request_body = Waste, security(("bearer" = ["inventory:manage"])), responses(
    (status = 200, description = "On hand fell; StockWasted published, and MenuItemSoldOut for items it leaves without a portion", body = IngredientBody, headers(("ETag" = String))),
    (status = 404, description = "No such ingredient", body = Problem, content_type = "application/problem+json"),
    (status = 409, description = "More than is free of holds (the problem names them), or If-Match names another version", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "A field breaks a rule", body = Problem, content_type = "application/problem+json"),
))]
async fn waste(
    staff: Staff<InventoryManage>,
    State(inventory): State<Inventory>,
    RequestId(request_id): RequestId,
    if_match: IfMatch,
    Path(IngredientPath { ingredient_id }): Path<IngredientPath>,
    IdempotentJson { key, body }: IdempotentJson<Waste>,
) -> Result<Reply, Error> {
    let adjustment =
        Adjustment::Waste { quantity: parse("quantity", body.quantity)?, reason: parse("reason", body.reason)? };
    let request = Request::new(&request_id).keyed(key.as_ref());
    let actor = &staff.identity.subject;
    inventory.adjust(ingredient_id, adjustment, actor, if_match, request, ingredient_reply(StatusCode::OK)).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u16>,
    /// Entries to skip (default 0).
    #[param(minimum = 0, maximum = 1_000_000)]
    offset: Option<u32>,
}

/// One line of the stock ledger.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Movement)]
struct MovementBody {
    /// Later movements have larger ids.
    id: i64,
    /// `received`, `counted`, `wasted`, `consumed`, `reserved` or `released`.
    kind: &'static str,
    /// The signed change: of on hand for received, counted, wasted and
    /// consumed; of reserved for reserved and released.
    quantity: i64,
    on_hand_after: i64,
    reserved_after: i64,
    /// The order, for holds and consumption.
    #[schema(value_type = Option<uuid::Uuid>)]
    order_id: Option<OrderId>,
    /// Who: a staff token's subject, or the service that sent the command.
    actor: String,
    /// Why, or the note given.
    reason: Option<String>,
    at: DateTime<Utc>,
}

impl From<&LedgerEntry> for MovementBody {
    fn from(entry: &LedgerEntry) -> Self {
        let movement = &entry.movement;
        Self {
            id: entry.id,
            kind: movement.kind.as_str(),
            quantity: movement.quantity,
            on_hand_after: movement.on_hand_after,
            reserved_after: movement.reserved_after,
            order_id: movement.order_id,
            actor: movement.actor.clone(),
            reason: movement.reason.clone(),
            at: movement.at,
        }
    }
}

/// One page of an ingredient's ledger, oldest first.
#[derive(Debug, Serialize, ToSchema)]
struct MovementPage {
    movements: Vec<MovementBody>,
    limit: i64,
    offset: i64,
}

#[utoipa::path(get, path = "/api/v1/ingredients/{ingredient_id}/movements", tag = "ingredients", params(IngredientPath, PageQuery), security(("bearer" = ["inventory:manage"])), responses(
    (status = 200, description = "A page of the ingredient's ledger, oldest first", body = MovementPage),
    (status = 404, description = "No such ingredient", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "limit or offset out of range", body = Problem, content_type = "application/problem+json"),
))]
async fn movements(
    _staff: Staff<InventoryManage>,
    State(inventory): State<Inventory>,
    Path(IngredientPath { ingredient_id }): Path<IngredientPath>,
    Query(query): Query<PageQuery>,
) -> Result<Reply, Error> {
    let page = Page::new(query.limit, query.offset)?;
    if store::find_ingredient(inventory.pool(), ingredient_id).await?.is_none() {
        return Err(Error::not_found(ingredient_id));
    }
    let entries = store::list_movements(inventory.pool(), ingredient_id, page).await?;
    let body = MovementPage {
        movements: entries.iter().map(MovementBody::from).collect(),
        limit: page.limit,
        offset: page.offset,
    };
    Reply::json(StatusCode::OK, &body).map_err(encoding)
}

/// What one portion of a menu item uses.
#[derive(Debug, Deserialize, ToSchema)]
struct SetRecipe {
    /// 1 to 50 lines, each ingredient once.
    lines: Vec<RecipeLineBody>,
}

/// One ingredient of a recipe and how much of it a portion uses.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = RecipeLine)]
struct RecipeLineBody {
    #[schema(value_type = uuid::Uuid)]
    ingredient_id: IngredientId,
    /// In the ingredient's unit, at least 1.
    #[serde(deserialize_with = "whole_number")]
    #[schema(minimum = 1, example = 80)]
    quantity: i64,
}

/// A tracked menu item's recipe.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Recipe)]
struct RecipeBody {
    #[schema(value_type = uuid::Uuid)]
    menu_item_id: MenuItemId,
    lines: Vec<RecipeLineBody>,
    /// The item's version here: bumped by recipe changes and by selling out
    /// and coming back.
    version: i64,
}

impl RecipeBody {
    fn new(recipe: &Recipe, version: i64) -> Self {
        let lines = recipe
            .lines()
            .iter()
            .map(|line| RecipeLineBody { ingredient_id: line.ingredient_id, quantity: line.quantity.get() })
            .collect();
        Self { menu_item_id: recipe.menu_item_id(), lines, version }
    }
}

#[utoipa::path(put, path = "/api/v1/recipes/{menu_item_id}", tag = "recipes", params(RecipePath, IfMatch), request_body = SetRecipe, security(("bearer" = ["inventory:manage"])), responses(
    (status = 200, description = "Set; RecipeSet published, and MenuItemSoldOut if the stock allows no portion", body = RecipeBody, headers(("ETag" = String))),
    (status = 409, description = "If-Match names another version", body = Problem, content_type = "application/problem+json"),
    (status = 422, description = "No menu has the item, an ingredient does not exist, or the lines break a rule", body = Problem, content_type = "application/problem+json"),
))]
async fn set_recipe(
    _staff: Staff<InventoryManage>,
    State(inventory): State<Inventory>,
    RequestId(request_id): RequestId,
    if_match: IfMatch,
    Path(RecipePath { menu_item_id }): Path<RecipePath>,
    service_kit::extract::Json(body): service_kit::extract::Json<SetRecipe>,
) -> Result<Reply, Error> {
    let recipe = Recipe::new(menu_item_id, body.lines.iter().map(|line| (line.ingredient_id, line.quantity)))?;
    let respond = |recipe: &Recipe, version| {
        Ok(Reply::json(StatusCode::OK, &RecipeBody::new(recipe, version))?.with_etag(version))
    };
    inventory.set_recipe(recipe, if_match, Request::new(&request_id), respond).await
}

#[utoipa::path(get, path = "/api/v1/recipes/{menu_item_id}", tag = "recipes", params(RecipePath), security(("bearer" = ["inventory:manage"])), responses(
    (status = 200, description = "The recipe", body = RecipeBody, headers(("ETag" = String))),
    (status = 404, description = "The item has no recipe: its stock is not tracked", body = Problem, content_type = "application/problem+json"),
))]
async fn show_recipe(
    _staff: Staff<InventoryManage>,
    State(inventory): State<Inventory>,
    Path(RecipePath { menu_item_id }): Path<RecipePath>,
) -> Result<Reply, Error> {
    let StoredRecipe { recipe, version, .. } =
        store::find_recipe(inventory.pool(), menu_item_id).await?.ok_or(Error::NotTracked(menu_item_id))?;
    Ok(Reply::json(StatusCode::OK, &RecipeBody::new(&recipe, version)).map_err(encoding)?.with_etag(version))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PortionsQuery {
    /// Only this item.
    #[param(value_type = Option<uuid::Uuid>)]
    menu_item_id: Option<MenuItemId>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u16>,
    /// Items to skip (default 0).
    #[param(minimum = 0, maximum = 1_000_000)]
    offset: Option<u32>,
}

/// A tracked item and the portions its stock allows.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Portions)]
struct PortionsBody {
    #[schema(value_type = uuid::Uuid)]
    menu_item_id: MenuItemId,
    /// Its name on the menu, if a menu event named it.
    name: Option<String>,
    /// The least, over its recipe, of ⌊(on hand − reserved) / quantity⌋.
    portions_left: i64,
    /// Whether it is sold out (`MenuItemSoldOut` was the last word).
    sold_out: bool,
}

impl From<&TrackedItem> for PortionsBody {
    fn from(item: &TrackedItem) -> Self {
        Self {
            menu_item_id: item.menu_item_id,
            name: item.name.clone(),
            portions_left: item.portions_left,
            sold_out: item.sold_out,
        }
    }
}

/// One page of tracked items, by id.
#[derive(Debug, Serialize, ToSchema)]
struct PortionsPage {
    portions: Vec<PortionsBody>,
    limit: i64,
    offset: i64,
}

#[utoipa::path(get, path = "/api/v1/portions", tag = "recipes", params(PortionsQuery), security(("bearer" = ["inventory:manage"])), responses(
    (status = 200, description = "The tracked items with the portions left of each", body = PortionsPage),
    (status = 422, description = "limit or offset out of range", body = Problem, content_type = "application/problem+json"),
))]
async fn portions(
    _staff: Staff<InventoryManage>,
    State(inventory): State<Inventory>,
    Query(query): Query<PortionsQuery>,
) -> Result<Reply, Error> {
    let page = Page::new(query.limit, query.offset)?;
    let only = query.menu_item_id.map(|item| vec![item]);
    let found = store::portions(inventory.pool(), only.as_deref(), page).await?;
    let body = PortionsPage {
        portions: found.iter().map(PortionsBody::from).collect(),
        limit: page.limit,
        offset: page.offset,
    };
    Reply::json(StatusCode::OK, &body).map_err(encoding)
}

fn encoding(error: serde_json::Error) -> Error {
    service_kit::write::WriteError::Store(service_kit::database::StoreError::Encode(error)).into()
}
