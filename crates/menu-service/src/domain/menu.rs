//! The menu aggregate: its items, its status, and the one function that
//! decides which status changes are allowed.

use super::values::{Category, Cents, Currency, Description, ItemName, MenuName, Price};
use chrono::{DateTime, Utc};
use events::menu::AvailabilityCause;
use events::{MenuEvent, MenuId, MenuItemId};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a menu is in its life: `draft` → `active` ⇄ `inactive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MenuStatus {
    /// Being written; not offered to guests.
    Draft,
    /// Offered to guests.
    Active,
    /// Taken off; can be activated again.
    Inactive,
}

impl MenuStatus {
    /// The name used in JSON and in the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Active => "active",
            Self::Inactive => "inactive",
        }
    }

    /// Parses the database form.
    pub fn parse(value: &str) -> Option<Self> {
        [Self::Draft, Self::Active, Self::Inactive].into_iter().find(|status| status.as_str() == value)
    }
}

impl fmt::Display for MenuStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status change someone asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Offer the menu to guests.
    Activate,
    /// Take the menu off.
    Deactivate,
}

/// The menu's status rules, in one place. `Ok(None)` means the menu is
/// already there: nothing changes and no event is published.
///
/// # Errors
/// [`DomainError::InvalidTransition`] for a change the status does not allow.
pub fn transition(from: MenuStatus, requested: Transition) -> Result<Option<MenuStatus>, DomainError> {
    use MenuStatus::{Active, Draft, Inactive};
    match (from, requested) {
        (Draft | Inactive, Transition::Activate) => Ok(Some(Active)),
        (Active, Transition::Deactivate) => Ok(Some(Inactive)),
        (Active, Transition::Activate) | (Inactive, Transition::Deactivate) => Ok(None),
        (Draft, Transition::Deactivate) => Err(DomainError::InvalidTransition {
            from,
            detail: "a draft menu has never been active, so it cannot be deactivated",
        }),
    }
}

/// What the domain refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Two items of a new menu share a name (case-insensitive). HTTP 422.
    #[error("two items are named {0:?}; item names must differ")]
    DuplicateItemName(String),
    /// Another item of the menu already has that name (case-insensitive). HTTP 409.
    #[error("the menu already has an item named {0:?}")]
    ItemNameTaken(String),
    /// The menu would have more than [`Menu::MAX_ITEMS`] items. HTTP 422.
    #[error("a menu holds at most {} items", Menu::MAX_ITEMS)]
    TooManyItems,
    /// No item with that id on this menu. HTTP 404.
    #[error("the menu has no item {0}")]
    NoSuchItem(MenuItemId),
    /// The status does not allow the change. HTTP 409.
    #[error("the menu is {from}: {detail}")]
    InvalidTransition {
        /// The status the menu is in.
        from: MenuStatus,
        /// Why the change is refused.
        detail: &'static str,
    },
}

/// An item on a menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuItem {
    /// Stable across edits.
    pub id: MenuItemId,
    /// Unique within the menu, case-insensitive.
    pub name: ItemName,
    /// Optional free text.
    pub description: Option<Description>,
    /// A grouping such as `starter`.
    pub category: Category,
    /// The price.
    pub price: Price,
    /// The staff's switch: on unless they turned it off.
    pub switched_on: bool,
    /// Whether the inventory has stock for a portion (always, for an item
    /// whose stock is not tracked).
    pub in_stock: bool,
    /// The version of the last inventory event about the item's stock.
    pub stock_version: i64,
}

impl MenuItem {
    /// Whether guests can order it: switched on and in stock.
    pub fn available(&self) -> bool {
        self.switched_on && self.in_stock
    }

    /// The item as events carry it.
    pub fn to_event(&self) -> events::menu::MenuItem {
        events::menu::MenuItem {
            id: self.id,
            name: self.name.as_str().to_owned(),
            description: self.description.as_ref().map(|d| d.as_str().to_owned()),
            category: self.category.as_str().to_owned(),
            price_cents: self.price.cents(),
            currency: self.price.currency().code().to_owned(),
            available: self.available(),
            switched_on: self.switched_on,
            in_stock: self.in_stock,
        }
    }
}

/// An item to add: everything but the id and availability (new items are available).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    /// The name.
    pub name: ItemName,
    /// Optional free text.
    pub description: Option<Description>,
    /// The category.
    pub category: Category,
    /// The price.
    pub price: Price,
}

/// An edit of an item; `None` leaves a part as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemChanges {
    /// A new name.
    pub name: Option<ItemName>,
    /// A new description (`Some(None)` removes it).
    pub description: Option<Option<Description>>,
    /// A new category.
    pub category: Option<Category>,
    /// A new amount, in the item's currency unless `currency` changes too.
    pub price_cents: Option<Cents>,
    /// A new currency, for the item's amount unless `price_cents` changes too.
    pub currency: Option<Currency>,
}

impl From<NewItem> for ItemChanges {
    /// Every editable part replaced by `item`'s.
    fn from(item: NewItem) -> Self {
        Self {
            name: Some(item.name),
            description: Some(item.description),
            category: Some(item.category),
            price_cents: Some(item.price.amount()),
            currency: Some(item.price.currency()),
        }
    }
}

/// A menu with its items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Menu {
    /// The menu's id.
    pub id: MenuId,
    /// Its name.
    pub name: MenuName,
    /// Optional free text.
    pub description: Option<Description>,
    /// Where it is in its life.
    pub status: MenuStatus,
    /// Bumped by every change; clients send it back in `If-Match`.
    pub version: i64,
    /// Its items, in the order they were added.
    pub items: Vec<MenuItem>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Menu {
    /// The most items one menu holds.
    pub const MAX_ITEMS: usize = 200;

    /// A new draft menu at version 1, and its `MenuCreated`.
    ///
    /// # Errors
    /// Duplicate item names or too many items.
    pub fn create(
        name: MenuName,
        description: Option<Description>,
        items: Vec<NewItem>,
        now: DateTime<Utc>,
    ) -> Result<(Self, MenuEvent), DomainError> {
        let mut menu = Self {
            id: MenuId::new(),
            name,
            description,
            status: MenuStatus::Draft,
            version: 1,
            items: Vec::with_capacity(items.len()),
            created_at: now,
            updated_at: now,
        };
        for item in items {
            menu.push_item(item).map_err(|error| match error {
                DomainError::ItemNameTaken(name) => DomainError::DuplicateItemName(name),
                other => other,
            })?;
        }
        let event = MenuEvent::MenuCreated {
            name: menu.name.as_str().to_owned(),
            description: menu.description.as_ref().map(|d| d.as_str().to_owned()),
            items: menu.event_items(),
        };
        Ok((menu, event))
    }

    /// Offers the menu; `None` if it already is.
    ///
    /// # Errors
    /// The status does not allow it.
    pub fn activate(&mut self) -> Result<Option<MenuEvent>, DomainError> {
        Ok(self
            .apply(Transition::Activate)?
            .then(|| MenuEvent::MenuActivated { name: self.name.as_str().to_owned(), items: self.event_items() }))
    }

    /// Takes the menu off; `None` if it already is.
    ///
    /// # Errors
    /// The status does not allow it (a draft).
    pub fn deactivate(&mut self) -> Result<Option<MenuEvent>, DomainError> {
        Ok(self.apply(Transition::Deactivate)?.then_some(MenuEvent::MenuDeactivated {}))
    }

    fn apply(&mut self, requested: Transition) -> Result<bool, DomainError> {
        let next = transition(self.status, requested)?;
        if let Some(status) = next {
            self.status = status;
        }
        Ok(next.is_some())
    }

    /// Adds an item (available) and returns its `MenuItemAdded`.
    ///
    /// # Errors
    /// Its name is taken, or the menu is full.
    pub fn add_item(&mut self, item: NewItem) -> Result<MenuEvent, DomainError> {
        let added = self.push_item(item)?;
        Ok(MenuEvent::MenuItemAdded { item: added.to_event() })
    }

    /// Edits an item; `None` if nothing actually changed.
    ///
    /// # Errors
    /// No such item, or the new name is taken by another item.
    pub fn update_item(&mut self, id: MenuItemId, changes: ItemChanges) -> Result<Option<MenuEvent>, DomainError> {
        if let Some(name) = &changes.name
            && self.items.iter().any(|item| item.id != id && same_name(&item.name, name))
        {
            return Err(DomainError::ItemNameTaken(name.as_str().to_owned()));
        }
        let item = self.item_mut(id)?;
        let before = item.clone();
        if let Some(name) = changes.name {
            item.name = name;
        }
        if let Some(description) = changes.description {
            item.description = description;
        }
        if let Some(category) = changes.category {
            item.category = category;
        }
        if let Some(cents) = changes.price_cents {
            item.price = item.price.with_cents(cents);
        }
        if let Some(currency) = changes.currency {
            item.price = item.price.with_currency(currency);
        }
        Ok((*item != before).then(|| MenuEvent::MenuItemUpdated { item: item.to_event() }))
    }

    /// Switches an item on or off; `None` if it already was. Switching on an
    /// item that is sold out does not make it available: that is a
    /// `MenuItemUpdated`, and `ItemAvailabilityChanged` follows when it is
    /// back in stock.
    ///
    /// # Errors
    /// No such item.
    pub fn set_availability(&mut self, id: MenuItemId, switched_on: bool) -> Result<Option<MenuEvent>, DomainError> {
        let item = self.item_mut(id)?;
        if item.switched_on == switched_on {
            return Ok(None);
        }
        let was_available = item.available();
        item.switched_on = switched_on;
        Ok(Some(availability_event(item, was_available, AvailabilityCause::Staff)))
    }

    /// Records that item `id` is in stock or sold out, as the inventory's
    /// event of `version` says; `None` if it is not on this menu, the event is
    /// older than one applied before, or it changes nothing.
    pub fn set_stock(&mut self, id: MenuItemId, in_stock: bool, version: i64) -> Option<MenuEvent> {
        let item = self.items.iter_mut().find(|item| item.id == id)?;
        if version <= item.stock_version || item.in_stock == in_stock {
            return None;
        }
        let was_available = item.available();
        item.in_stock = in_stock;
        item.stock_version = version;
        Some(availability_event(item, was_available, AvailabilityCause::Stock))
    }

    /// Whether it has item `id`.
    pub fn has_item(&self, id: MenuItemId) -> bool {
        self.items.iter().any(|item| item.id == id)
    }

    fn push_item(&mut self, item: NewItem) -> Result<&MenuItem, DomainError> {
        if self.items.iter().any(|existing| same_name(&existing.name, &item.name)) {
            return Err(DomainError::ItemNameTaken(item.name.as_str().to_owned()));
        }
        if self.items.len() >= Self::MAX_ITEMS {
            return Err(DomainError::TooManyItems);
        }
        self.items.push(MenuItem {
            id: MenuItemId::new(),
            name: item.name,
            description: item.description,
            category: item.category,
            price: item.price,
            switched_on: true,
            in_stock: true,
            stock_version: 0,
        });
        Ok(&self.items[self.items.len() - 1])
    }

    fn item_mut(&mut self, id: MenuItemId) -> Result<&mut MenuItem, DomainError> {
        self.items.iter_mut().find(|item| item.id == id).ok_or(DomainError::NoSuchItem(id))
    }

    fn event_items(&self) -> Vec<events::menu::MenuItem> {
        self.items.iter().map(MenuItem::to_event).collect()
    }
}

fn same_name(a: &ItemName, b: &ItemName) -> bool {
    a.as_str().to_lowercase() == b.as_str().to_lowercase()
}

/// The event of a change of one of `item`'s two facts: `ItemAvailabilityChanged`
/// when whether it can be ordered changed, else `MenuItemUpdated` (the fact
/// changed, what guests see did not).
fn availability_event(item: &MenuItem, was_available: bool, cause: AvailabilityCause) -> MenuEvent {
    if item.available() == was_available {
        MenuEvent::MenuItemUpdated { item: item.to_event() }
    } else {
        MenuEvent::ItemAvailabilityChanged { item_id: item.id, available: item.available(), cause }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MenuStatus::{Active, Draft, Inactive};

    #[test]
    fn every_transition_is_allowed_refused_or_a_no_op_as_the_table_says() {
        let table = [
            (Draft, Transition::Activate, Ok(Some(Active))),
            (Draft, Transition::Deactivate, Err(())),
            (Active, Transition::Activate, Ok(None)),
            (Active, Transition::Deactivate, Ok(Some(Inactive))),
            (Inactive, Transition::Activate, Ok(Some(Active))),
            (Inactive, Transition::Deactivate, Ok(None)),
        ];
        for (from, requested, expected) in table {
            assert_eq!(transition(from, requested).map_err(drop), expected, "{from} + {requested:?}");
        }
    }

    fn new_item(name: &str) -> NewItem {
        let eur = Currency::try_from("EUR".to_owned()).unwrap_or_else(|e| panic!("{e}"));
        NewItem {
            name: ItemName::try_from(name.to_owned()).unwrap_or_else(|e| panic!("{e}")),
            description: None,
            category: Category::try_from("main".to_owned()).unwrap_or_else(|e| panic!("{e}")),
            price: Price::new(Cents::try_from(1200).unwrap_or_else(|e| panic!("{e}")), eur),
        }
    }

    fn menu(items: &[&str]) -> Menu {
        let name = MenuName::try_from("Lunch".to_owned()).unwrap_or_else(|e| panic!("{e}"));
        Menu::create(name, None, items.iter().map(|n| new_item(n)).collect(), Utc::now())
            .unwrap_or_else(|e| panic!("{e}"))
            .0
    }

    #[test]
    fn activating_twice_yields_one_event_carrying_every_item() {
        let mut menu = menu(&["Soup", "Bread"]);
        let Ok(Some(MenuEvent::MenuActivated { items, .. })) = menu.activate() else { panic!("no MenuActivated") };
        assert_eq!(items.len(), 2);
        assert!(items.iter().all(|item| item.available && item.switched_on && item.in_stock));
        assert_eq!(menu.activate(), Ok(None));
    }

    #[test]
    fn item_names_are_unique_regardless_of_case_and_the_menu_is_bounded() {
        let name = MenuName::try_from("Lunch".to_owned()).unwrap_or_else(|e| panic!("{e}"));
        let duplicate = Menu::create(name, None, vec![new_item("Soup"), new_item("SOUP")], Utc::now());
        assert_eq!(duplicate.err(), Some(DomainError::DuplicateItemName("SOUP".to_owned())));

        let mut menu = menu(&[]);
        for n in 0..Menu::MAX_ITEMS {
            assert!(menu.add_item(new_item(&format!("Dish {n}"))).is_ok());
        }
        assert_eq!(menu.add_item(new_item("One too many")).err(), Some(DomainError::TooManyItems));
    }

    #[test]
    fn availability_changes_only_when_it_differs() {
        let mut menu = menu(&["Soup"]);
        let id = menu.items[0].id;
        assert_eq!(menu.set_availability(id, true), Ok(None));
        assert_eq!(
            menu.set_availability(id, false),
            Ok(Some(MenuEvent::ItemAvailabilityChanged {
                item_id: id,
                available: false,
                cause: AvailabilityCause::Staff
            }))
        );
        assert_eq!(
            menu.set_availability(MenuItemId::new(), false).err().map(|e| matches!(e, DomainError::NoSuchItem(_))),
            Some(true)
        );
    }

    /// What each change of one of the two facts publishes, from each state.
    #[test]
    fn availability_is_the_switch_and_the_stock_and_changes_exactly_when_their_combination_does() {
        let changed = |available, cause| Some(("ItemAvailabilityChanged", Some(available), Some(cause)));
        let updated = Some(("MenuItemUpdated", None, None));
        // (switched on, in stock) before → the change → what is published.
        let table: [((bool, bool), Change, Option<Published>); 8] = [
            ((true, true), Change::Switch(false), changed(false, AvailabilityCause::Staff)),
            ((true, true), Change::Stock(false), changed(false, AvailabilityCause::Stock)),
            ((true, false), Change::Switch(false), updated),
            ((true, false), Change::Stock(true), changed(true, AvailabilityCause::Stock)),
            ((false, true), Change::Switch(true), changed(true, AvailabilityCause::Staff)),
            ((false, true), Change::Stock(false), updated),
            ((false, false), Change::Switch(true), updated),
            ((false, false), Change::Stock(true), updated),
        ];
        for ((switched_on, in_stock), change, expected) in table {
            let mut menu = menu(&["Soup"]);
            let id = menu.items[0].id;
            menu.items[0].switched_on = switched_on;
            menu.items[0].in_stock = in_stock;
            menu.items[0].stock_version = 1;
            let event = match change {
                Change::Switch(on) => menu.set_availability(id, on).unwrap_or_else(|e| panic!("{e}")),
                Change::Stock(stocked) => menu.set_stock(id, stocked, 2),
            };
            let seen = event.map(|event| match event {
                MenuEvent::ItemAvailabilityChanged { available, cause, .. } => {
                    ("ItemAvailabilityChanged", Some(available), Some(cause))
                }
                MenuEvent::MenuItemUpdated { item } => {
                    assert_eq!((item.available, item.switched_on, item.in_stock), {
                        let item = &menu.items[0];
                        (item.available(), item.switched_on, item.in_stock)
                    });
                    ("MenuItemUpdated", None, None)
                }
                other => panic!("unexpected {other:?}"),
            });
            assert_eq!(seen, expected, "from ({switched_on}, {in_stock}), {change:?}");
        }
    }

    /// What a change published: its type, and for `ItemAvailabilityChanged`
    /// whether the item is available now and why.
    type Published = (&'static str, Option<bool>, Option<AvailabilityCause>);

    #[derive(Debug, Clone, Copy)]
    enum Change {
        Switch(bool),
        Stock(bool),
    }

    #[test]
    fn a_stock_event_older_than_one_applied_or_about_another_item_changes_nothing() {
        let mut menu = menu(&["Soup"]);
        let id = menu.items[0].id;
        assert!(menu.set_stock(id, false, 3).is_some());
        assert_eq!(menu.set_stock(id, true, 2), None, "older than the one applied");
        assert_eq!(menu.set_stock(id, false, 4), None, "already sold out");
        assert_eq!(menu.set_stock(MenuItemId::new(), true, 5), None, "not on this menu");
        assert!(!menu.items[0].available());
    }

    #[test]
    fn an_edit_that_changes_nothing_publishes_nothing_and_a_taken_name_is_refused() {
        let mut menu = menu(&["Soup", "Bread"]);
        let soup = menu.items[0].id;
        assert_eq!(menu.update_item(soup, ItemChanges::default()), Ok(None));
        let rename = ItemChanges {
            name: Some(ItemName::try_from("bread".to_owned()).unwrap_or_else(|e| panic!("{e}"))),
            ..ItemChanges::default()
        };
        assert_eq!(menu.update_item(soup, rename).err(), Some(DomainError::ItemNameTaken("bread".to_owned())));
        let again = menu.add_item(new_item("SOUP"));
        assert_eq!(again.err(), Some(DomainError::ItemNameTaken("SOUP".to_owned())));
        let reprice = ItemChanges {
            price_cents: Some(Cents::try_from(900).unwrap_or_else(|e| panic!("{e}"))),
            ..ItemChanges::default()
        };
        assert!(matches!(menu.update_item(soup, reprice), Ok(Some(MenuEvent::MenuItemUpdated { .. }))));
    }
}
