//! Black-box tests of the reservation service on port 0 against the real
//! PostgreSQL and Redis.

mod auth;
mod capacity;
mod errors;
mod helpers;
mod menu_events;
mod reservations;
mod schedule;
mod shutdown;
mod visits;
