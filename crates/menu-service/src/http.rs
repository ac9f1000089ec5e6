//! The menu API: JSON in and out, problem+json errors, `ETag`/`If-Match`
//! optimistic concurrency on every write. Anyone may read menus; every
//! write needs a staff token with `menus:write` ([`Staff`]), checked before
//! the body is read.

use crate::domain::{
    Category, Cents, Currency, Description, ItemChanges, ItemName, Menu, MenuItem, MenuName, MenuStatus, NewItem, Price,
};
use crate::error::Error;
use crate::service::Menus;
use crate::store;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use chrono::{DateTime, Utc};
use events::{MenuId, MenuItemId};
use serde::{Deserialize, Deserializer, Serialize};
use service_kit::Problem;
use service_kit::auth::{Staff, scopes::MenusWrite};
use service_kit::extract::{IfMatch, Json, Path, Query, RequestId, non_null, optional_whole_number, whole_number};
use service_kit::idempotency::{IdempotentJson, Reply};
use service_kit::openapi::{optional_multiline_text, single_line_text};
use service_kit::values::{Page, parse, parse_optional};
use service_kit::write::WriteError;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa::{IntoParams, OpenApi, ToSchema};

/// The menu API's OpenAPI document (service-kit adds what all services share).
#[derive(OpenApi)]
#[openapi(
    info(title = "menu-service", description = "Menus and their items; every change is published on menu-events."),
    paths(create, list, show, activate, deactivate, add_item, edit_item, replace_item, set_availability),
    components(schemas(Problem))
)]
pub struct ApiDoc;

/// The menu routes.
pub fn router(menus: Menus) -> Router {
    Router::new()
        .route("/api/v1/menus", post(create).get(list))
        .route("/api/v1/menus/{menu_id}", get(show))
        .route("/api/v1/menus/{menu_id}/activate", post(activate))
        .route("/api/v1/menus/{menu_id}/deactivate", post(deactivate))
        .route("/api/v1/menus/{menu_id}/items", post(add_item))
        .route("/api/v1/menus/{menu_id}/items/{item_id}", patch(edit_item).put(replace_item))
        .route("/api/v1/menus/{menu_id}/items/{item_id}/availability", patch(set_availability))
        .with_state(menus)
}

/// `/api/v1/menus/{menu_id}…`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct MenuPath {
    /// The menu.
    #[param(value_type = uuid::Uuid)]
    menu_id: MenuId,
}

/// `/api/v1/menus/{menu_id}/items/{item_id}…`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct ItemPath {
    /// The menu.
    #[param(value_type = uuid::Uuid)]
    menu_id: MenuId,
    /// The item on it.
    #[param(value_type = uuid::Uuid)]
    item_id: MenuItemId,
}

/// A menu as clients see it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Menu)]
struct MenuBody {
    #[schema(value_type = uuid::Uuid)]
    id: MenuId,
    name: String,
    description: Option<String>,
    status: MenuStatus,
    version: i64,
    items: Vec<ItemBody>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// An item on a menu.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MenuItem)]
struct ItemBody {
    #[schema(value_type = uuid::Uuid)]
    id: MenuItemId,
    name: String,
    description: Option<String>,
    category: String,
    price_cents: i64,
    #[schema(value_type = String, example = "EUR")]
    currency: &'static str,
    /// Whether guests can order it: switched on by staff and in stock.
    available: bool,
    /// The staff's switch (`PATCH …/availability`).
    switched_on: bool,
    /// Whether the inventory has stock for a portion; always for an item
    /// whose stock is not tracked.
    in_stock: bool,
}

impl From<&Menu> for MenuBody {
    fn from(menu: &Menu) -> Self {
        Self {
            id: menu.id,
            name: menu.name.as_str().to_owned(),
            description: menu.description.as_ref().map(|d| d.as_str().to_owned()),
            status: menu.status,
            version: menu.version,
            items: menu.items.iter().map(ItemBody::from).collect(),
            created_at: menu.created_at,
            updated_at: menu.updated_at,
        }
    }
}

impl From<&MenuItem> for ItemBody {
    fn from(item: &MenuItem) -> Self {
        Self {
            id: item.id,
            name: item.name.as_str().to_owned(),
            description: item.description.as_ref().map(|d| d.as_str().to_owned()),
            category: item.category.as_str().to_owned(),
            price_cents: item.price.cents(),
            currency: item.price.currency().code(),
            available: item.available(),
            switched_on: item.switched_on,
            in_stock: item.in_stock,
        }
    }
}

/// The menu with its version as `ETag`.
/// The reply that shows `menu` with `status` and its `ETag`.
fn menu_reply(status: StatusCode) -> impl FnOnce(&Menu) -> Result<Reply, serde_json::Error> {
    move |menu| Ok(Reply::json(status, &MenuBody::from(menu))?.with_etag(menu.version))
}

/// An item as a client writes it: new items are available.
#[derive(Debug, Deserialize, ToSchema)]
struct ItemRequest {
    #[schema(schema_with = name_schema)]
    name: String,
    #[schema(schema_with = description_schema)]
    description: Option<String>,
    #[schema(schema_with = category_schema)]
    category: String,
    /// Minor units of `currency`, 0 to 1,000,000,000.
    #[serde(deserialize_with = "whole_number")]
    #[schema(example = 650, minimum = 0, maximum = 1_000_000_000)]
    price_cents: i64,
    #[schema(schema_with = currency_schema)]
    currency: String,
}

impl ItemRequest {
    fn parse(self, at: &str) -> Result<NewItem, Error> {
        let currency: Currency = parse(format!("{at}currency"), self.currency)?;
        Ok(NewItem {
            name: parse(format!("{at}name"), self.name)?,
            description: parse_optional(&format!("{at}description"), self.description)?,
            category: parse(format!("{at}category"), self.category)?,
            price: Price::new(parse::<Cents, _>(format!("{at}price_cents"), self.price_cents)?, currency),
        })
    }
}

/// A menu or item name, as [`MenuName`] and [`ItemName`] accept it.
fn name_schema() -> Object {
    single_line_text(MenuName::MAX_CHARS.min(ItemName::MAX_CHARS), "Tomato soup")
}

/// A category, as [`Category`] accepts it.
fn category_schema() -> Object {
    single_line_text(Category::MAX_CHARS, "starter")
}

/// A description, as [`Description`] accepts it: no control characters but
/// newline and tab; `null` for none.
fn description_schema() -> Object {
    optional_multiline_text(Description::MAX_CHARS)
}

/// An ISO 4217 code in use today, such as EUR.
fn currency_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("An ISO 4217 currency code in use today"))
        .enum_values(Some(Currency::CODES.iter().copied()))
        .examples(["EUR"])
        .build()
}

/// A new menu, created as a draft.
#[derive(Debug, Deserialize, ToSchema)]
struct CreateMenu {
    #[schema(schema_with = name_schema)]
    name: String,
    #[schema(schema_with = description_schema)]
    description: Option<String>,
    #[serde(default)]
    #[schema(max_items = 200)]
    items: Vec<ItemRequest>,
}

#[utoipa::path(post, path = "/api/v1/menus", tag = "menus", request_body = CreateMenu, security(("bearer" = ["menus:write"])), responses(
    (status = 201, description = "Created as a draft; MenuCreated published", body = MenuBody, headers(("Location" = String), ("ETag" = String))),
    (status = 422, description = "A field breaks a rule; `field` names it", body = Problem, content_type = "application/problem+json"),
))]
async fn create(
    _staff: Staff<MenusWrite>,
    State(menus): State<Menus>,
    RequestId(request_id): RequestId,
    IdempotentJson { key, body }: IdempotentJson<CreateMenu>,
) -> Result<Reply, Error> {
    let name: MenuName = parse("name", body.name)?;
    let description: Option<Description> = parse_optional("description", body.description)?;
    let items = body
        .items
        .into_iter()
        .enumerate()
        .map(|(index, item)| item.parse(&format!("items[{index}].")))
        .collect::<Result<Vec<_>, _>>()?;
    menus
        .create(name, description, items, &request_id, key.as_ref(), |menu| {
            Reply::created(&format!("/api/v1/menus/{}", menu.id), menu.version, &MenuBody::from(menu))
        })
        .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only menus in this status.
    status: Option<MenuStatus>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u16>,
    /// Menus to skip (default 0).
    #[param(minimum = 0, maximum = 1_000_000)]
    offset: Option<u32>,
}

/// One page of menus, oldest first.
#[derive(Debug, Serialize, ToSchema)]
struct MenuPage {
    menus: Vec<MenuBody>,
    limit: i64,
    offset: i64,
}

#[utoipa::path(get, path = "/api/v1/menus", tag = "menus", params(ListQuery), responses(
    (status = 200, description = "A page of menus", body = MenuPage),
    (status = 422, description = "limit or offset out of range", body = Problem, content_type = "application/problem+json"),
))]
async fn list(State(menus): State<Menus>, Query(query): Query<ListQuery>) -> Result<Response, Error> {
    let Page { limit, offset } = Page::new(query.limit, query.offset)?;
    let page = store::list(menus.pool(), query.status, limit, offset).await?;
    Ok(Json(MenuPage { menus: page.iter().map(MenuBody::from).collect(), limit, offset }).into_response())
}

#[utoipa::path(get, path = "/api/v1/menus/{menu_id}", tag = "menus", params(MenuPath), responses(
    (status = 200, description = "The menu", body = MenuBody, headers(("ETag" = String, description = "The menu's version"))),
))]
async fn show(State(menus): State<Menus>, Path(MenuPath { menu_id }): Path<MenuPath>) -> Result<Reply, Error> {
    let menu = store::find(menus.pool(), menu_id).await?.ok_or_else(|| WriteError::not_found::<Menu>(menu_id))?;
    Ok(menu_reply(StatusCode::OK)(&menu).map_err(service_kit::database::StoreError::Encode)?)
}

#[utoipa::path(post, path = "/api/v1/menus/{menu_id}/activate", tag = "menus", params(MenuPath, IfMatch), security(("bearer" = ["menus:write"])), responses(
    (status = 200, description = "Active; MenuActivated published unless it already was", body = MenuBody, headers(("ETag" = String, description = "The menu's version"))),
))]
async fn activate(
    _staff: Staff<MenusWrite>,
    State(menus): State<Menus>,
    RequestId(request_id): RequestId,
    if_match: IfMatch,
    Path(MenuPath { menu_id }): Path<MenuPath>,
) -> Result<Reply, Error> {
    change_status(&menus, &request_id, if_match, menu_id, Menu::activate).await
}

#[utoipa::path(post, path = "/api/v1/menus/{menu_id}/deactivate", tag = "menus", params(MenuPath, IfMatch), security(("bearer" = ["menus:write"])), responses(
    (status = 200, description = "Inactive; MenuDeactivated published unless it already was", body = MenuBody, headers(("ETag" = String, description = "The menu's version"))),
    (status = 409, description = "The menu is a draft, or If-Match names another version", body = Problem, content_type = "application/problem+json"),
))]
async fn deactivate(
    _staff: Staff<MenusWrite>,
    State(menus): State<Menus>,
    RequestId(request_id): RequestId,
    if_match: IfMatch,
    Path(MenuPath { menu_id }): Path<MenuPath>,
) -> Result<Reply, Error> {
    change_status(&menus, &request_id, if_match, menu_id, Menu::deactivate).await
}

/// Runs a status change and answers with the menu as it now is.
async fn change_status(
    menus: &Menus,
    request_id: &str,
    if_match: IfMatch,
    menu_id: MenuId,
    command: fn(&mut Menu) -> Result<Option<events::MenuEvent>, crate::domain::DomainError>,
) -> Result<Reply, Error> {
    menus.change(menu_id, if_match, request_id, None, command, menu_reply(StatusCode::OK)).await
}

#[utoipa::path(post, path = "/api/v1/menus/{menu_id}/items", tag = "menus", params(MenuPath, IfMatch), request_body = ItemRequest, security(("bearer" = ["menus:write"])), responses(
    (status = 409, description = "Another item has that name, or If-Match names another version", body = Problem, content_type = "application/problem+json"),
    (status = 201, description = "Added; MenuItemAdded published", body = MenuBody, headers(("ETag" = String, description = "The menu's version"))),
    (status = 422, description = "A field breaks a rule, or the menu is full", body = Problem, content_type = "application/problem+json"),
))]
async fn add_item(
    _staff: Staff<MenusWrite>,
    State(menus): State<Menus>,
    RequestId(request_id): RequestId,
    if_match: IfMatch,
    Path(MenuPath { menu_id }): Path<MenuPath>,
    IdempotentJson { key, body }: IdempotentJson<ItemRequest>,
) -> Result<Reply, Error> {
    let item = body.parse("")?;
    let command = |menu: &mut Menu| menu.add_item(item).map(Some);
    menus.change(menu_id, if_match, &request_id, key.as_ref(), command, menu_reply(StatusCode::CREATED)).await
}

/// An edit of an item: fields left out stay as they are; `"description":
/// null` removes the description; no other field may be `null`.
#[derive(Debug, Deserialize, ToSchema)]
struct EditItem {
    #[serde(default, deserialize_with = "non_null")]
    #[schema(schema_with = name_schema)]
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = description_schema)]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "non_null")]
    #[schema(schema_with = category_schema)]
    category: Option<String>,
    #[serde(default, deserialize_with = "optional_whole_number")]
    #[schema(value_type = i64, required = false, minimum = 0, maximum = 1_000_000_000)]
    price_cents: Option<i64>,
    #[serde(default, deserialize_with = "non_null")]
    #[schema(schema_with = currency_schema)]
    currency: Option<String>,
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

#[utoipa::path(patch, path = "/api/v1/menus/{menu_id}/items/{item_id}", tag = "menus", params(ItemPath, IfMatch), request_body = EditItem, security(("bearer" = ["menus:write"])), responses(
    (status = 409, description = "Another item has that name, or If-Match names another version", body = Problem, content_type = "application/problem+json"),
    (status = 200, description = "Edited; MenuItemUpdated published if anything changed", body = MenuBody, headers(("ETag" = String, description = "The menu's version"))),
    (status = 422, description = "A field breaks a rule", body = Problem, content_type = "application/problem+json"),
))]
async fn edit_item(
    _staff: Staff<MenusWrite>,
    State(menus): State<Menus>,
    RequestId(request_id): RequestId,
    if_match: IfMatch,
    Path(ItemPath { menu_id, item_id }): Path<ItemPath>,
    Json(body): Json<EditItem>,
) -> Result<Reply, Error> {
    let changes = ItemChanges {
        name: parse_optional::<ItemName, _>("name", body.name)?,
        description: body.description.map(|d| parse_optional::<Description, _>("description", d)).transpose()?,
        category: parse_optional::<Category, _>("category", body.category)?,
        price_cents: parse_optional::<Cents, _>("price_cents", body.price_cents)?,
        currency: parse_optional::<Currency, _>("currency", body.currency)?,
    };
    update_item(&menus, &request_id, if_match, menu_id, item_id, changes).await
}

/// Applies `changes` to an item and answers with the menu as it now is.
async fn update_item(
    menus: &Menus,
    request_id: &str,
    if_match: IfMatch,
    menu_id: MenuId,
    item_id: MenuItemId,
    changes: ItemChanges,
) -> Result<Reply, Error> {
    let command = |menu: &mut Menu| menu.update_item(item_id, changes);
    menus.change(menu_id, if_match, request_id, None, command, menu_reply(StatusCode::OK)).await
}

/// Replaces every editable part of an item; its availability stays.
#[utoipa::path(put, path = "/api/v1/menus/{menu_id}/items/{item_id}", tag = "menus", params(ItemPath, IfMatch), request_body = ItemRequest, security(("bearer" = ["menus:write"])), responses(
    (status = 409, description = "Another item has that name, or If-Match names another version", body = Problem, content_type = "application/problem+json"),
    (status = 200, description = "Replaced; MenuItemUpdated published if anything changed", body = MenuBody, headers(("ETag" = String, description = "The menu's version"))),
    (status = 422, description = "A field breaks a rule", body = Problem, content_type = "application/problem+json"),
))]
async fn replace_item(
    _staff: Staff<MenusWrite>,
    State(menus): State<Menus>,
    RequestId(request_id): RequestId,
    if_match: IfMatch,
    Path(ItemPath { menu_id, item_id }): Path<ItemPath>,
    Json(body): Json<ItemRequest>,
) -> Result<Reply, Error> {
    let changes = ItemChanges::from(body.parse("")?);
    update_item(&menus, &request_id, if_match, menu_id, item_id, changes).await
}

/// The staff's switch for an item: off takes it off, on offers it again
/// (once in stock: an item sold out stays unavailable until it is back).
#[derive(Debug, Deserialize, ToSchema)]
struct Availability {
    available: bool,
}

#[utoipa::path(patch, path = "/api/v1/menus/{menu_id}/items/{item_id}/availability", tag = "menus", params(ItemPath, IfMatch), request_body = Availability, security(("bearer" = ["menus:write"])), responses(
    (status = 200, description = "Switched; ItemAvailabilityChanged published if whether it can be ordered changed, MenuItemUpdated if only the switch did (it is sold out)", body = MenuBody, headers(("ETag" = String, description = "The menu's version"))),
))]
async fn set_availability(
    _staff: Staff<MenusWrite>,
    State(menus): State<Menus>,
    RequestId(request_id): RequestId,
    if_match: IfMatch,
    Path(ItemPath { menu_id, item_id }): Path<ItemPath>,
    Json(body): Json<Availability>,
) -> Result<Reply, Error> {
    let available = body.available;
    let command = |menu: &mut Menu| menu.set_availability(item_id, available);
    menus.change(menu_id, if_match, &request_id, None, command, menu_reply(StatusCode::OK)).await
}
