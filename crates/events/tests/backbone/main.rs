//! The event backbone against the real PostgreSQL and Redis of the machine.
//! Each test has its own schema and its own stream names.

mod delivery;
mod durability;
mod failures;
mod faults;
mod helpers;
mod inspect;
mod lua;
mod metrics;
mod relay;
mod retention;
