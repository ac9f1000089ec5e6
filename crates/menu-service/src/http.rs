//! The menu API: JSON in and out, problem+json errors, `ETag`/`If-Match`
//! optimistic concurrency on every write.

use crate::domain::{
    Category, Currency, Description, ItemChanges, ItemName, Menu, MenuItem, MenuName, MenuStatus, NewItem, Price,
    ValueError,
};
use crate::error::Error;
use crate::service::Menus;
use crate::store;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use chrono::{DateTime, Utc};
use events::{MenuId, MenuItemId};
use serde::{Deserialize, Deserializer, Serialize};
use service_kit::extract::{Json, Path, Query, RequestId};

/// The menu routes.
pub fn router(menus: Menus) -> Router {
    Router::new()
        .route("/api/v1/menus", post(create).get(list))
        .route("/api/v1/menus/{menu_id}", get(show))
        .route("/api/v1/menus/{menu_id}/activate", post(activate))
        .route("/api/v1/menus/{menu_id}/deactivate", post(deactivate))
        .route("/api/v1/menus/{menu_id}/items", post(add_item))
        .route("/api/v1/menus/{menu_id}/items/{item_id}", patch(edit_item))
        .route("/api/v1/menus/{menu_id}/items/{item_id}/availability", patch(set_availability))
        .with_state(menus)
}

/// A menu as clients see it.
#[derive(Debug, Serialize)]
struct MenuBody {
    id: MenuId,
    name: String,
    description: Option<String>,
    status: MenuStatus,
    version: i64,
    items: Vec<ItemBody>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
struct ItemBody {
    id: MenuItemId,
    name: String,
    description: Option<String>,
    category: String,
    price_cents: i64,
    currency: &'static str,
    available: bool,
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
            available: item.available,
        }
    }
}

/// The menu with its version as `ETag`.
fn menu_response(status: StatusCode, menu: &Menu) -> Response {
    let mut response = (status, Json(MenuBody::from(menu))).into_response();
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", menu.version)) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

/// The version named by `If-Match`, if any (`*` matches every version).
fn expected_version(headers: &HeaderMap) -> Result<Option<i64>, Error> {
    let Some(value) = headers.get(header::IF_MATCH) else { return Ok(None) };
    let value = value.to_str().map_err(|_| Error::MalformedIfMatch)?.trim();
    if value == "*" {
        return Ok(None);
    }
    let tag = value.strip_prefix("W/").unwrap_or(value);
    tag.strip_prefix('"')
        .and_then(|tag| tag.strip_suffix('"'))
        .and_then(|version| version.parse().ok())
        .map(Some)
        .ok_or(Error::MalformedIfMatch)
}

fn parse<T: TryFrom<String, Error = ValueError>>(field: impl Into<String>, value: String) -> Result<T, Error> {
    T::try_from(value).map_err(|source| Error::invalid(field, source))
}

fn parse_optional<T: TryFrom<String, Error = ValueError>>(
    field: &str,
    value: Option<String>,
) -> Result<Option<T>, Error> {
    value.map(|value| parse(field, value)).transpose()
}

/// A new item in a request.
#[derive(Debug, Deserialize)]
struct ItemRequest {
    name: String,
    description: Option<String>,
    category: String,
    price_cents: i64,
    currency: String,
}

impl ItemRequest {
    fn parse(self, at: &str) -> Result<NewItem, Error> {
        let currency: Currency = parse(format!("{at}currency"), self.currency)?;
        Ok(NewItem {
            name: parse(format!("{at}name"), self.name)?,
            description: parse_optional(&format!("{at}description"), self.description)?,
            category: parse(format!("{at}category"), self.category)?,
            price: Price::new(self.price_cents, currency).map_err(|e| Error::invalid(format!("{at}price_cents"), e))?,
        })
    }
}

#[derive(Debug, Deserialize)]
struct CreateMenu {
    name: String,
    description: Option<String>,
    #[serde(default)]
    items: Vec<ItemRequest>,
}

async fn create(
    State(menus): State<Menus>,
    RequestId(request_id): RequestId,
    Json(body): Json<CreateMenu>,
) -> Result<Response, Error> {
    let name: MenuName = parse("name", body.name)?;
    let description: Option<Description> = parse_optional("description", body.description)?;
    let items = body
        .items
        .into_iter()
        .enumerate()
        .map(|(index, item)| item.parse(&format!("items[{index}].")))
        .collect::<Result<Vec<_>, _>>()?;
    let menu = menus.create(name, description, items, &request_id).await?;
    let mut response = menu_response(StatusCode::CREATED, &menu);
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/menus/{}", menu.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<MenuStatus>,
    limit: Option<u16>,
    offset: Option<u32>,
}

#[derive(Debug, Serialize)]
struct MenuPage {
    menus: Vec<MenuBody>,
    limit: i64,
    offset: i64,
}

async fn list(State(menus): State<Menus>, Query(query): Query<ListQuery>) -> Result<Response, Error> {
    let limit = i64::from(query.limit.unwrap_or(20));
    if !(1..=100).contains(&limit) {
        return Err(Error::invalid("limit", ValueError("limit must be between 1 and 100".to_owned())));
    }
    let offset = i64::from(query.offset.unwrap_or(0));
    let page = store::list(menus.pool(), query.status, limit, offset).await?;
    Ok(Json(MenuPage { menus: page.iter().map(MenuBody::from).collect(), limit, offset }).into_response())
}

async fn show(State(menus): State<Menus>, Path(menu_id): Path<MenuId>) -> Result<Response, Error> {
    let menu = store::find(menus.pool(), menu_id).await?.ok_or(Error::MenuNotFound(menu_id))?;
    Ok(menu_response(StatusCode::OK, &menu))
}

async fn activate(
    State(menus): State<Menus>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    Path(menu_id): Path<MenuId>,
) -> Result<Response, Error> {
    change_status(&menus, &request_id, &headers, menu_id, Menu::activate).await
}

async fn deactivate(
    State(menus): State<Menus>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    Path(menu_id): Path<MenuId>,
) -> Result<Response, Error> {
    change_status(&menus, &request_id, &headers, menu_id, Menu::deactivate).await
}

/// Runs a status change and answers with the menu as it now is.
async fn change_status(
    menus: &Menus,
    request_id: &str,
    headers: &HeaderMap,
    menu_id: MenuId,
    command: fn(&mut Menu) -> Result<Option<events::MenuEvent>, crate::domain::DomainError>,
) -> Result<Response, Error> {
    let menu = menus.change(menu_id, expected_version(headers)?, request_id, command).await?;
    Ok(menu_response(StatusCode::OK, &menu))
}

async fn add_item(
    State(menus): State<Menus>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    Path(menu_id): Path<MenuId>,
    Json(body): Json<ItemRequest>,
) -> Result<Response, Error> {
    let item = body.parse("")?;
    let menu =
        menus.change(menu_id, expected_version(&headers)?, &request_id, |menu| menu.add_item(item).map(Some)).await?;
    Ok(menu_response(StatusCode::CREATED, &menu))
}

/// An edit of an item: absent fields stay; `"description": null` removes it.
#[derive(Debug, Deserialize)]
struct EditItem {
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    description: Option<Option<String>>,
    category: Option<String>,
    price_cents: Option<i64>,
    currency: Option<String>,
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

async fn edit_item(
    State(menus): State<Menus>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    Path((menu_id, item_id)): Path<(MenuId, MenuItemId)>,
    Json(body): Json<EditItem>,
) -> Result<Response, Error> {
    let price = match (body.price_cents, body.currency) {
        (None, None) => None,
        (Some(cents), Some(currency)) => {
            let currency: Currency = parse("currency", currency)?;
            Some(Price::new(cents, currency).map_err(|e| Error::invalid("price_cents", e))?)
        }
        (cents, _) => {
            let field = if cents.is_some() { "currency" } else { "price_cents" };
            return Err(Error::invalid(field, ValueError("price_cents and currency are changed together".to_owned())));
        }
    };
    let changes = ItemChanges {
        name: parse_optional::<ItemName>("name", body.name)?,
        description: body.description.map(|d| parse_optional::<Description>("description", d)).transpose()?,
        category: parse_optional::<Category>("category", body.category)?,
        price,
    };
    let menu = menus
        .change(menu_id, expected_version(&headers)?, &request_id, |menu| menu.update_item(item_id, changes))
        .await?;
    Ok(menu_response(StatusCode::OK, &menu))
}

#[derive(Debug, Deserialize)]
struct Availability {
    available: bool,
}

async fn set_availability(
    State(menus): State<Menus>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    Path((menu_id, item_id)): Path<(MenuId, MenuItemId)>,
    Json(body): Json<Availability>,
) -> Result<Response, Error> {
    let menu = menus
        .change(menu_id, expected_version(&headers)?, &request_id, |menu| {
            menu.set_availability(item_id, body.available)
        })
        .await?;
    Ok(menu_response(StatusCode::OK, &menu))
}
