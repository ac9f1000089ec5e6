//! An order: what was ordered, at what price, and where it is in its life.

use super::{Action, DomainError, Notes, OrderStatus, Quantity, Table, transition};
use chrono::{DateTime, Utc};
use events::order::OrderLine;
use events::{MenuItemId, OrderEvent, OrderId, ReservationId};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// Whether the order is eaten in or taken away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// At a table, with a reservation or a table number.
    DineIn,
    /// Collected by the guest.
    Takeaway,
}

impl Kind {
    /// Its name in the API, the events and the tables.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DineIn => "dine_in",
            Self::Takeaway => "takeaway",
        }
    }

    /// The kind called `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::DineIn, Self::Takeaway].into_iter().find(|kind| kind.as_str() == name)
    }
}

/// A line as asked for, before it is priced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraftLine {
    /// The item.
    pub menu_item_id: MenuItemId,
    /// How many.
    pub quantity: Quantity,
    /// What the guest asked for.
    pub notes: Option<Notes>,
}

/// An order as asked for: checked for shape, not yet priced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// Dine-in or takeaway.
    pub kind: Kind,
    /// The reservation of a dine-in order.
    pub reservation_id: Option<ReservationId>,
    /// The table of a dine-in order.
    pub table: Option<Table>,
    /// The lines, 1 to [`Draft::MAX_LINES`], each item once.
    pub lines: Vec<DraftLine>,
}

/// What the menu view says of an item that can be ordered now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Its name.
    pub name: String,
    /// Its price in minor units.
    pub price_cents: i64,
    /// ISO 4217 code of the price.
    pub currency: String,
}

/// Why an item cannot be ordered now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unorderable {
    /// No menu event has offered it.
    Unknown,
    /// Its menu is not active.
    MenuInactive(String),
    /// It is marked unavailable.
    Unavailable(String),
}

impl std::fmt::Display for Unorderable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unknown => f.write_str("no menu offers it"),
            Self::MenuInactive(name) => write!(f, "{name:?} is not on an active menu"),
            Self::Unavailable(name) => write!(f, "{name:?} is not available"),
        }
    }
}

/// A priced line of an order: the name and price as they were at placing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The item.
    pub menu_item_id: MenuItemId,
    /// Its name at placing.
    pub name: String,
    /// Its price at placing, in minor units.
    pub unit_price_cents: i64,
    /// How many.
    pub quantity: Quantity,
    /// What the guest asked for.
    pub notes: Option<Notes>,
}

impl Line {
    /// The line as events carry it.
    pub fn to_event(&self) -> OrderLine {
        OrderLine {
            menu_item_id: self.menu_item_id,
            name: self.name.clone(),
            unit_price_cents: self.unit_price_cents,
            quantity: self.quantity.get(),
            notes: self.notes.as_ref().map(|notes| notes.as_str().to_owned()),
        }
    }
}

impl Draft {
    /// The most lines of one order.
    pub const MAX_LINES: usize = 50;

    /// Checks the draft's shape: 1 to 50 lines, each item once; a dine-in
    /// order names its reservation or table, a takeaway neither.
    ///
    /// # Errors
    /// [`DomainError::Invalid`] naming the field.
    pub fn new(
        kind: Kind,
        reservation_id: Option<ReservationId>,
        table: Option<Table>,
        lines: Vec<DraftLine>,
    ) -> Result<Self, DomainError> {
        if lines.is_empty() {
            return Err(DomainError::invalid("lines", "an order needs at least one line"));
        }
        if lines.len() > Self::MAX_LINES {
            return Err(DomainError::invalid("lines", format!("an order has at most {} lines", Self::MAX_LINES)));
        }
        let mut seen = HashSet::new();
        for (index, line) in lines.iter().enumerate() {
            if !seen.insert(line.menu_item_id) {
                return Err(DomainError::invalid(
                    format!("lines[{index}].menu_item_id"),
                    format!("item {} is on an earlier line; order it once with a larger quantity", line.menu_item_id),
                ));
            }
        }
        match kind {
            Kind::DineIn if reservation_id.is_none() && table.is_none() => {
                return Err(DomainError::invalid("table", "a dine-in order needs a reservation_id or a table"));
            }
            Kind::Takeaway if reservation_id.is_some() => {
                return Err(DomainError::invalid("reservation_id", "a takeaway order has no reservation"));
            }
            Kind::Takeaway if table.is_some() => {
                return Err(DomainError::invalid("table", "a takeaway order has no table"));
            }
            _ => {}
        }
        Ok(Self { kind, reservation_id, table, lines })
    }

    /// The items the draft names, in line order.
    pub fn items(&self) -> Vec<MenuItemId> {
        self.lines.iter().map(|line| line.menu_item_id).collect()
    }

    /// Prices the lines with what the menu view offers: every item must be
    /// offered, all in one currency; returns the lines, the currency and the
    /// total in minor units.
    ///
    /// # Errors
    /// [`DomainError::Invalid`] naming `lines[i].menu_item_id` for the first
    /// item that cannot be ordered or has another currency, or `lines` when
    /// the total does not fit.
    pub fn price(
        &self,
        offers: &HashMap<MenuItemId, Result<Offer, Unorderable>>,
    ) -> Result<(Vec<Line>, String, i64), DomainError> {
        let mut currency: Option<&str> = None;
        let mut total: i64 = 0;
        let mut lines = Vec::with_capacity(self.lines.len());
        for (index, line) in self.lines.iter().enumerate() {
            let field = format!("lines[{index}].menu_item_id");
            let offer = match offers.get(&line.menu_item_id) {
                Some(Ok(offer)) => offer,
                Some(Err(why)) => {
                    return Err(DomainError::invalid(
                        field,
                        format!("item {} cannot be ordered: {why}", line.menu_item_id),
                    ));
                }
                None => {
                    let why = Unorderable::Unknown;
                    return Err(DomainError::invalid(
                        field,
                        format!("item {} cannot be ordered: {why}", line.menu_item_id),
                    ));
                }
            };
            match currency {
                Some(first) if first != offer.currency => {
                    return Err(DomainError::invalid(
                        field,
                        format!(
                            "{:?} is priced in {}, the order's other lines in {first}; place one order per currency",
                            offer.name, offer.currency
                        ),
                    ));
                }
                _ => currency = Some(&offer.currency),
            }
            let overflow = || DomainError::invalid("lines", "the order's total is too large");
            let amount = offer.price_cents.checked_mul(i64::from(line.quantity.get())).ok_or_else(overflow)?;
            total = total.checked_add(amount).ok_or_else(overflow)?;
            lines.push(Line {
                menu_item_id: line.menu_item_id,
                name: offer.name.clone(),
                unit_price_cents: offer.price_cents,
                quantity: line.quantity,
                notes: line.notes.clone(),
            });
        }
        Ok((lines, currency.unwrap_or_default().to_owned(), total))
    }
}

/// An order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Its id, also the aggregate id of its events and the subject of its sagas.
    pub id: OrderId,
    /// Dine-in or takeaway.
    pub kind: Kind,
    /// The reservation of a dine-in order.
    pub reservation_id: Option<ReservationId>,
    /// The table of a dine-in order.
    pub table: Option<Table>,
    /// What was ordered, priced at placing.
    pub lines: Vec<Line>,
    /// ISO 4217 code of every price.
    pub currency: String,
    /// The sum of the lines, in minor units.
    pub total_cents: i64,
    /// Where it is.
    pub status: OrderStatus,
    /// Why it was rejected, naming the items.
    pub reason: Option<String>,
    /// The kitchen's refusal of the last cancellation, if it refused.
    pub refusal: Option<String>,
    /// The status it returns to if a pending cancellation is refused.
    pub resume: Option<OrderStatus>,
    /// 1 when placed, one more with every change.
    pub version: i64,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Order {
    /// A new order of `draft` priced as `priced`, awaiting approval, and its
    /// `OrderPlaced`.
    pub fn place(
        id: OrderId,
        draft: Draft,
        priced: (Vec<Line>, String, i64),
        now: DateTime<Utc>,
    ) -> (Self, OrderEvent) {
        let (lines, currency, total_cents) = priced;
        let order = Self {
            id,
            kind: draft.kind,
            reservation_id: draft.reservation_id,
            table: draft.table,
            lines,
            currency,
            total_cents,
            status: OrderStatus::ApprovalPending,
            reason: None,
            refusal: None,
            resume: None,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let placed = order.placed();
        (order, placed)
    }

    /// Its `OrderPlaced`.
    pub fn placed(&self) -> OrderEvent {
        OrderEvent::OrderPlaced {
            kind: self.kind.as_str().to_owned(),
            reservation_id: self.reservation_id,
            table: self.table.as_ref().map(|table| table.as_str().to_owned()),
            lines: self.lines.iter().map(Line::to_event).collect(),
            currency: self.currency.clone(),
            total_cents: self.total_cents,
        }
    }

    /// Applies `action` ([`transition`]); returns the event to publish, or
    /// `None` if the order already took that step.
    ///
    /// # Errors
    /// [`DomainError::InvalidTransition`].
    pub fn apply(&mut self, action: &Action) -> Result<Option<OrderEvent>, DomainError> {
        let Some(step) = transition(self.status, self.resume, action)? else { return Ok(None) };
        match action {
            Action::Reject(reason) => self.reason = Some(reason.clone()),
            Action::RequestCancel => self.refusal = None,
            Action::RefuseCancellation(kitchen) => {
                self.refusal = Some(format!("the kitchen refused to cancel: its ticket is {kitchen}"));
            }
            _ => {}
        }
        self.status = step.status;
        self.resume = step.resume;
        Ok(Some(step.event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: MenuItemId, quantity: i64) -> DraftLine {
        DraftLine {
            menu_item_id: id,
            quantity: Quantity::try_from(quantity).unwrap_or_else(|e| panic!("{e}")),
            notes: None,
        }
    }

    fn offer(name: &str, price_cents: i64, currency: &str) -> Result<Offer, Unorderable> {
        Ok(Offer { name: name.to_owned(), price_cents, currency: currency.to_owned() })
    }

    fn field(error: DomainError) -> String {
        match error {
            DomainError::Invalid { field, .. } => field,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_draft_has_one_to_fifty_lines_each_item_once_and_a_table_only_when_dine_in() {
        let (a, b) = (MenuItemId::new(), MenuItemId::new());
        let draft = |kind, table: Option<&str>, lines| {
            Draft::new(
                kind,
                None,
                table.map(|t| Table::try_from(t.to_owned()).unwrap_or_else(|e| panic!("{e}"))),
                lines,
            )
        };
        assert!(draft(Kind::Takeaway, None, vec![line(a, 1), line(b, 2)]).is_ok());
        assert_eq!(draft(Kind::Takeaway, None, vec![]).map_err(field), Err("lines".to_owned()));
        let many = (0..51).map(|_| line(MenuItemId::new(), 1)).collect();
        assert_eq!(draft(Kind::Takeaway, None, many).map_err(field), Err("lines".to_owned()));
        assert_eq!(
            draft(Kind::Takeaway, None, vec![line(a, 1), line(a, 2)]).map_err(field),
            Err("lines[1].menu_item_id".to_owned())
        );
        assert_eq!(draft(Kind::DineIn, None, vec![line(a, 1)]).map_err(field), Err("table".to_owned()));
        assert!(draft(Kind::DineIn, Some("12"), vec![line(a, 1)]).is_ok());
        assert_eq!(draft(Kind::Takeaway, Some("12"), vec![line(a, 1)]).map_err(field), Err("table".to_owned()));
    }

    #[test]
    fn pricing_keeps_names_and_prices_totals_in_minor_units_and_refuses_what_cannot_be_ordered() {
        let (a, b, c) = (MenuItemId::new(), MenuItemId::new(), MenuItemId::new());
        let draft =
            Draft::new(Kind::Takeaway, None, None, vec![line(a, 2), line(b, 3)]).unwrap_or_else(|e| panic!("{e}"));
        let mut offers = HashMap::from([(a, offer("Soup", 650, "EUR")), (b, offer("Bread", 199, "EUR"))]);
        let (lines, currency, total) = draft.price(&offers).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((currency.as_str(), total), ("EUR", 2 * 650 + 3 * 199));
        assert_eq!((lines[1].name.as_str(), lines[1].unit_price_cents), ("Bread", 199));
        offers.insert(b, offer("Bread", 199, "USD"));
        assert_eq!(draft.price(&offers).map_err(field), Err("lines[1].menu_item_id".to_owned()));
        offers.insert(b, Err(Unorderable::Unavailable("Bread".to_owned())));
        assert_eq!(draft.price(&offers).map_err(field), Err("lines[1].menu_item_id".to_owned()));
        let unknown = Draft::new(Kind::Takeaway, None, None, vec![line(c, 1)]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(unknown.price(&offers).map_err(field), Err("lines[0].menu_item_id".to_owned()));
        offers.insert(a, offer("Gold", i64::MAX / 2, "EUR"));
        offers.insert(b, offer("Bread", 199, "EUR"));
        assert_eq!(draft.price(&offers).map_err(field), Err("lines".to_owned()));
    }
}
