//! The order service from the outside: HTTP and menu events in, rows and
//! stream entries out; and the saga's steps applied through the store.

mod helpers;
mod menu_view;
mod orders;
mod sagas;
mod steps;
