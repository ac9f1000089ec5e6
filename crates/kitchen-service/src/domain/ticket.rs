//! The ticket aggregate: what an order asks the kitchen to cook, line by
//! line, and what each action does to it and publishes.

use super::error::DomainError;
use super::stations::StationMap;
use super::status::{Action, Outcome, TicketStatus, transition};
use super::values::{Notes, Quantity, RejectReason};
use chrono::{DateTime, Utc};
use events::kitchen::{CommandLine, TicketLine};
use events::{KitchenEvent, MenuItemId, OrderId, TicketId};
use std::collections::HashMap;

/// What the kitchen knows of a menu item, learnt from `menu-events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenItem {
    /// The item's name.
    pub name: String,
    /// Its menu category, which decides its station.
    pub category: String,
}

/// One line of a ticket: portions of one menu item for one station.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Its position on the ticket, from 1.
    pub line: u32,
    /// The menu item to cook.
    pub menu_item_id: MenuItemId,
    /// The item's name when the ticket was made; `None` if the kitchen had
    /// not seen it on a menu.
    pub name: Option<String>,
    /// How many portions.
    pub quantity: Quantity,
    /// The station that cooks it.
    pub station: String,
    /// What the guest asked for.
    pub notes: Option<Notes>,
    /// Whether the kitchen had seen the item on a menu when the ticket was made.
    pub known: bool,
    /// Whether a cook has bumped it.
    pub done: bool,
}

impl Line {
    /// The line as events describe it.
    pub fn to_event(&self) -> TicketLine {
        TicketLine {
            line: self.line,
            menu_item_id: self.menu_item_id,
            name: self.name.clone(),
            quantity: self.quantity.get(),
            station: self.station.clone(),
            notes: self.notes.as_ref().map(|notes| notes.as_str().to_owned()),
            known: self.known,
        }
    }
}

/// A kitchen ticket: one per order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// Its id.
    pub id: TicketId,
    /// The order it cooks.
    pub order_id: OrderId,
    /// Where it is in its life.
    pub status: TicketStatus,
    /// What to cook, ordered by position.
    pub lines: Vec<Line>,
    /// When the kitchen promised it, once accepted.
    pub ready_by: Option<DateTime<Utc>>,
    /// Why the kitchen rejected it, once it has.
    pub reject_reason: Option<RejectReason>,
    /// Whether `TicketOverdue` has been published for it.
    pub overdue_notified: bool,
    /// 1 when created, one more with every change.
    pub version: i64,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Ticket {
    /// The most lines one ticket holds.
    pub const MAX_LINES: usize = 100;

    /// Makes the pending ticket of `order_id` at `now`, returning its
    /// `TicketCreated`. Each line is numbered from 1 in the order given and
    /// goes to its item's station; an item the kitchen has not `seen` on a
    /// menu is taken all the same, nameless, `known: false`, on the default
    /// station.
    ///
    /// # Errors
    /// No lines, too many, or a line with a bad quantity or notes.
    pub fn create(
        order_id: OrderId,
        lines: Vec<CommandLine>,
        stations: &StationMap,
        seen: &HashMap<MenuItemId, SeenItem>,
        now: DateTime<Utc>,
    ) -> Result<(Self, KitchenEvent), DomainError> {
        if lines.is_empty() {
            return Err(DomainError::NoLines);
        }
        if lines.len() > Self::MAX_LINES {
            return Err(DomainError::TooManyLines { max: Self::MAX_LINES, given: lines.len() });
        }
        let lines = (1..)
            .zip(lines)
            .map(|(position, line)| make_line(position, line, stations, seen))
            .collect::<Result<Vec<_>, _>>()?;
        let ticket = Self {
            id: TicketId::new(),
            order_id,
            status: TicketStatus::Pending,
            lines,
            ready_by: None,
            reject_reason: None,
            overdue_notified: false,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let created = ticket.created();
        Ok((ticket, created))
    }

    /// The `TicketCreated` that made this ticket: the answer to a repeated
    /// `CreateTicket`.
    pub fn created(&self) -> KitchenEvent {
        KitchenEvent::TicketCreated { order_id: self.order_id, lines: self.lines.iter().map(Line::to_event).collect() }
    }

    /// Applies `action` at `now` ([`transition`] decides), returning the
    /// event to publish: `None` when nothing changed. A refused cancellation
    /// leaves the ticket as it is and returns `TicketCancellationRefused`.
    ///
    /// # Errors
    /// The status does not allow the action, or an acceptance's `ready_by`
    /// is not in the future.
    pub fn apply(&mut self, action: &Action, now: DateTime<Utc>) -> Result<Option<KitchenEvent>, DomainError> {
        let order_id = self.order_id;
        let status = match transition(self.status, action, now)? {
            Outcome::Unchanged => return Ok(None),
            Outcome::CancellationRefused { status } => {
                let status = status.as_str().to_owned();
                return Ok(Some(KitchenEvent::TicketCancellationRefused { order_id, status }));
            }
            Outcome::Changed(status) => status,
        };
        self.status = status;
        let event = match action {
            Action::Confirm => KitchenEvent::TicketConfirmed { order_id },
            Action::Accept { ready_by } => {
                self.ready_by = Some(*ready_by);
                KitchenEvent::TicketAccepted { order_id, ready_by: *ready_by }
            }
            Action::Reject { reason } => {
                self.reject_reason = Some(reason.clone());
                KitchenEvent::TicketRejected { order_id, reason: reason.as_str().to_owned() }
            }
            Action::Start => KitchenEvent::TicketPreparationStarted { order_id },
            Action::Ready => KitchenEvent::TicketReady { order_id },
            Action::PickUp => KitchenEvent::TicketPickedUp { order_id },
            Action::Cancel => KitchenEvent::TicketCancelled { order_id },
        };
        Ok(Some(event))
    }

    /// Marks line `line` done (a cook bumped it) or not done (recalled),
    /// returning `TicketLineDone` or `TicketLineRecalled`; `None` if it
    /// already is.
    ///
    /// # Errors
    /// The ticket is not preparing, or has no such line.
    pub fn mark_line(&mut self, line: u32, done: bool) -> Result<Option<KitchenEvent>, DomainError> {
        if self.status != TicketStatus::Preparing {
            return Err(DomainError::NotPreparing { status: self.status });
        }
        let count = self.lines.len();
        let entry =
            self.lines.iter_mut().find(|entry| entry.line == line).ok_or(DomainError::UnknownLine { line, count })?;
        if entry.done == done {
            return Ok(None);
        }
        entry.done = done;
        let order_id = self.order_id;
        Ok(Some(if done {
            KitchenEvent::TicketLineDone { order_id, line }
        } else {
            KitchenEvent::TicketLineRecalled { order_id, line }
        }))
    }

    /// Whether the promised time has passed at `now` while the ticket is
    /// accepted or preparing, and nobody has been told yet.
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        matches!(self.status, TicketStatus::Accepted | TicketStatus::Preparing)
            && !self.overdue_notified
            && self.ready_by.is_some_and(|ready_by| ready_by < now)
    }

    /// `TicketOverdue` if the ticket [is overdue](Self::is_overdue) at `now`,
    /// marking it notified so that it is published once.
    pub fn overdue(&mut self, now: DateTime<Utc>) -> Option<KitchenEvent> {
        let ready_by = self.ready_by.filter(|_| self.is_overdue(now))?;
        self.overdue_notified = true;
        Some(KitchenEvent::TicketOverdue { order_id: self.order_id, ready_by })
    }
}

fn make_line(
    position: u32,
    line: CommandLine,
    stations: &StationMap,
    seen: &HashMap<MenuItemId, SeenItem>,
) -> Result<Line, DomainError> {
    let invalid = |error: service_kit::values::ValueError| DomainError::InvalidLine { line: position, detail: error.0 };
    let quantity = Quantity::try_from(line.quantity).map_err(invalid)?;
    let notes =
        line.notes.map(Notes::try_from).transpose().map_err(invalid)?.filter(|notes| !notes.as_str().is_empty());
    let item = seen.get(&line.menu_item_id);
    Ok(Line {
        line: position,
        menu_item_id: line.menu_item_id,
        name: item.map(|item| item.name.clone()),
        quantity,
        station: stations.station_for(item.map(|item| item.category.as_str())).to_owned(),
        notes,
        known: item.is_some(),
        done: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn stations() -> StationMap {
        StationMap::parse("grill:mains;cold:desserts").unwrap_or_else(|e| panic!("{e}"))
    }

    fn command_line(menu_item_id: MenuItemId, quantity: u32, notes: Option<&str>) -> CommandLine {
        CommandLine { menu_item_id, quantity, notes: notes.map(str::to_owned) }
    }

    fn seen(items: &[(MenuItemId, &str, &str)]) -> HashMap<MenuItemId, SeenItem> {
        items
            .iter()
            .map(|(id, name, category)| (*id, SeenItem { name: (*name).to_owned(), category: (*category).to_owned() }))
            .collect()
    }

    /// A ticket of two lines, moved through `actions` at `now`.
    fn ticket(now: DateTime<Utc>, actions: &[Action]) -> Ticket {
        let lines = vec![command_line(MenuItemId::new(), 1, None), command_line(MenuItemId::new(), 2, None)];
        let (mut ticket, _) = Ticket::create(OrderId::new(), lines, &stations(), &HashMap::new(), now)
            .unwrap_or_else(|e| panic!("create: {e}"));
        for action in actions {
            ticket.apply(action, now).unwrap_or_else(|e| panic!("{}: {e}", action.name()));
        }
        ticket
    }

    fn accept(now: DateTime<Utc>) -> Action {
        Action::Accept { ready_by: now + TimeDelta::minutes(15) }
    }

    #[test]
    fn a_new_ticket_is_pending_with_its_lines_numbered_from_one_on_their_stations() {
        let now = Utc::now();
        let (steak, cake, mystery) = (MenuItemId::new(), MenuItemId::new(), MenuItemId::new());
        let known = seen(&[(steak, "Steak", "Mains"), (cake, "Cake", "desserts")]);
        let lines = vec![
            command_line(steak, 2, Some(" rare ")),
            command_line(cake, 1, Some("   ")),
            command_line(mystery, 3, None),
        ];
        let order_id = OrderId::new();
        let (ticket, created) =
            Ticket::create(order_id, lines, &stations(), &known, now).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((ticket.status, ticket.version, ticket.created_at), (TicketStatus::Pending, 1, now));
        let expected = vec![
            TicketLine {
                line: 1,
                menu_item_id: steak,
                name: Some("Steak".to_owned()),
                quantity: 2,
                station: "grill".to_owned(),
                notes: Some("rare".to_owned()),
                known: true,
            },
            TicketLine {
                line: 2,
                menu_item_id: cake,
                name: Some("Cake".to_owned()),
                quantity: 1,
                station: "cold".to_owned(),
                notes: None,
                known: true,
            },
            TicketLine {
                line: 3,
                menu_item_id: mystery,
                name: None,
                quantity: 3,
                station: "pass".to_owned(),
                notes: None,
                known: false,
            },
        ];
        assert_eq!(created, KitchenEvent::TicketCreated { order_id, lines: expected });
        assert_eq!(ticket.created(), created, "a repeated CreateTicket is answered the same");
        assert!(ticket.lines.iter().all(|line| !line.done));
    }

    #[test]
    fn a_ticket_needs_one_to_a_hundred_lines_each_with_a_sane_quantity_and_notes() {
        let now = Utc::now();
        let create = |lines| Ticket::create(OrderId::new(), lines, &stations(), &HashMap::new(), now).map(drop);
        let line = |quantity, notes: Option<&str>| command_line(MenuItemId::new(), quantity, notes);
        assert_eq!(create(vec![]), Err(DomainError::NoLines));
        assert_eq!(create(vec![line(1, None); 101]), Err(DomainError::TooManyLines { max: 100, given: 101 }));
        assert_eq!(create(vec![line(1, None); 100]), Ok(()));
        assert_eq!(
            create(vec![line(1, None), line(0, None)]),
            Err(DomainError::InvalidLine {
                line: 2,
                detail: "the quantity must be between 1 and 1000, not 0".to_owned()
            })
        );
        let long = "x".repeat(501);
        assert!(matches!(create(vec![line(1, Some(&long))]), Err(DomainError::InvalidLine { line: 1, .. })));
    }

    #[test]
    fn each_step_of_a_tickets_life_publishes_its_event_once() {
        let now = Utc::now();
        let mut ticket = ticket(now, &[]);
        let order_id = ticket.order_id;
        let ready_by = now + TimeDelta::minutes(15);
        let steps = [
            (Action::Confirm, KitchenEvent::TicketConfirmed { order_id }, TicketStatus::AwaitingAcceptance),
            (Action::Accept { ready_by }, KitchenEvent::TicketAccepted { order_id, ready_by }, TicketStatus::Accepted),
            (Action::Start, KitchenEvent::TicketPreparationStarted { order_id }, TicketStatus::Preparing),
            (Action::Ready, KitchenEvent::TicketReady { order_id }, TicketStatus::Ready),
            (Action::PickUp, KitchenEvent::TicketPickedUp { order_id }, TicketStatus::PickedUp),
        ];
        for (action, event, status) in steps {
            assert_eq!(ticket.apply(&action, now), Ok(Some(event)), "{}", action.name());
            assert_eq!(ticket.status, status);
            assert_eq!(ticket.apply(&action, now), Ok(None), "{} again changes nothing", action.name());
        }
        assert_eq!(ticket.ready_by, Some(ready_by));
        assert_eq!(ticket.version, 1, "versions are the store's to bump");
    }

    #[test]
    fn a_rejection_keeps_its_reason() {
        let now = Utc::now();
        let mut ticket = ticket(now, &[Action::Confirm]);
        let reason = RejectReason::try_from("no gas".to_owned()).unwrap_or_else(|e| panic!("{e}"));
        let event = ticket.apply(&Action::Reject { reason: reason.clone() }, now);
        assert_eq!(
            event,
            Ok(Some(KitchenEvent::TicketRejected { order_id: ticket.order_id, reason: "no gas".to_owned() }))
        );
        assert_eq!((ticket.status, ticket.reject_reason), (TicketStatus::Rejected, Some(reason)));
    }

    #[test]
    fn cancelling_once_cooking_began_is_refused_with_the_status_and_changes_nothing() {
        let now = Utc::now();
        let mut cooking = ticket(now, &[Action::Confirm, accept(now), Action::Start]);
        let before = cooking.clone();
        assert_eq!(
            cooking.apply(&Action::Cancel, now),
            Ok(Some(KitchenEvent::TicketCancellationRefused {
                order_id: cooking.order_id,
                status: "preparing".to_owned()
            }))
        );
        assert_eq!(cooking, before);

        let mut accepted = ticket(now, &[Action::Confirm, accept(now)]);
        let order_id = accepted.order_id;
        assert_eq!(accepted.apply(&Action::Cancel, now), Ok(Some(KitchenEvent::TicketCancelled { order_id })));
        assert_eq!(accepted.apply(&Action::Cancel, now), Ok(None));
        assert_eq!(accepted.status, TicketStatus::Cancelled);
    }

    #[test]
    fn lines_are_bumped_and_recalled_only_while_preparing() {
        let now = Utc::now();
        let mut accepted = ticket(now, &[Action::Confirm, accept(now)]);
        assert_eq!(accepted.mark_line(1, true), Err(DomainError::NotPreparing { status: TicketStatus::Accepted }));

        let mut cooking = ticket(now, &[Action::Confirm, accept(now), Action::Start]);
        let order_id = cooking.order_id;
        assert_eq!(cooking.mark_line(2, true), Ok(Some(KitchenEvent::TicketLineDone { order_id, line: 2 })));
        assert_eq!(cooking.mark_line(2, true), Ok(None), "a second bump changes nothing");
        assert_eq!(cooking.lines.iter().map(|line| line.done).collect::<Vec<_>>(), [false, true]);
        assert_eq!(cooking.mark_line(2, false), Ok(Some(KitchenEvent::TicketLineRecalled { order_id, line: 2 })));
        assert_eq!(cooking.mark_line(1, false), Ok(None), "recalling a line not done changes nothing");
        assert!(cooking.lines.iter().all(|line| !line.done));
        assert_eq!(cooking.mark_line(3, true), Err(DomainError::UnknownLine { line: 3, count: 2 }));
        assert_eq!(cooking.mark_line(0, true), Err(DomainError::UnknownLine { line: 0, count: 2 }));
    }

    #[test]
    fn an_overdue_ticket_is_announced_once_while_accepted_or_preparing() {
        let now = Utc::now();
        let later = now + TimeDelta::minutes(16);
        let mut accepted = ticket(now, &[Action::Confirm, accept(now)]);
        let ready_by = now + TimeDelta::minutes(15);
        assert_eq!(accepted.overdue(now + TimeDelta::minutes(15)), None, "not before ready_by has passed");
        assert!(accepted.is_overdue(later));
        assert_eq!(
            accepted.overdue(later),
            Some(KitchenEvent::TicketOverdue { order_id: accepted.order_id, ready_by })
        );
        assert!(accepted.overdue_notified);
        assert_eq!(accepted.overdue(later + TimeDelta::hours(1)), None, "once");

        let mut cooking = ticket(now, &[Action::Confirm, accept(now), Action::Start]);
        assert!(cooking.overdue(later).is_some());
        for mut done in [
            ticket(now, &[Action::Confirm, accept(now), Action::Start, Action::Ready]),
            ticket(now, &[Action::Confirm, accept(now), Action::Cancel]),
            ticket(now, &[Action::Confirm]),
        ] {
            assert_eq!(done.overdue(later), None, "{}", done.status);
        }
    }
}
