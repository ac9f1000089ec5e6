//! The menu domain: types that cannot hold bad values and the rules of a
//! menu's life. No I/O here.

mod menu;
mod values;

pub use menu::{DomainError, ItemChanges, Menu, MenuItem, MenuStatus, NewItem, Transition, transition};
pub use values::{Category, Cents, Currency, Description, ItemName, MenuName, Price, ValueError};
