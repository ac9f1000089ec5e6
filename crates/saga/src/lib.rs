//! A persisted saga orchestrator, usable by any service.
//!
//! A saga is a short ordered list of steps ([`Definition`]): each sends one
//! command to a participant and waits for the participant's reply, which a
//! classifier turns into [`Verdict::Completed`], [`Verdict::Failed`] or
//! [`Verdict::Ignore`]. A step may have a compensation, sent when a later
//! step fails; compensations run one after the other in reverse order, each
//! after the previous one's reply.
//!
//! # Where the state lives
//!
//! In the orchestrating service's own schema ([`migrator`]): one `sagas` row
//! per saga and a `saga_history` of everything that happened to it. Every
//! change of a saga and the command it sends commit in one transaction through
//! the service's [`events::Outbox`] ([`start`], [`on_reply`], [`retry`],
//! [`abort`] all work in the caller's [`events::UnitOfWork`]); replies are
//! applied in the inbox transaction of the service's handler, so a redelivered
//! reply changes nothing.
//!
//! # Traces
//!
//! While the service exports traces, each start, reply, command sent,
//! deadline and operator action has a span (`saga step CreateOrder/reserve_stock`,
//! …) in the trace of the request or event that caused it; the saga row keeps
//! the context of its latest command's span, so that a deadline handled by
//! the sweep continues the same trace.
//!
//! # What it guards against
//!
//! * **Unknown outcomes are not failures.** A step whose reply never came
//!   may have happened: when its re-sends run out, the saga compensates that
//!   step too (compensations must tolerate "never happened"). Only a reply
//!   that says no is a failure of the step itself.
//! * **Retry before compensating.** A step without a reply by its deadline is
//!   re-sent (as a new command; participants are idempotent per subject) up
//!   to its retry limit ([`Sweeper`]); several sweepers may run side by side.
//! * **Duplicate, late and stray replies.** A reply already applied, a reply
//!   to a command of a step already passed (found through its `causation_id`),
//!   or one the current step does not expect is recorded as ignored and
//!   changes nothing.
//! * **Compensations that keep failing.** They leave the saga `stuck` with its
//!   reason, visible ([`list`], [`find`]) and actionable ([`retry`],
//!   [`abort`]); nothing panics and nothing silently stays pending.

#![deny(missing_docs)]

mod definition;
mod engine;
mod error;
mod metrics;
mod plan;
mod query;
mod state;
mod store;
mod sweep;
mod trace;

pub use definition::{Action, Command, Definition, Definitions, Reply, Step, Verdict};
pub use engine::{Effect, Ignored, Outcome, abort, on_reply, retry, start};
pub use error::Error;
pub use query::{HistoryEntry, SagaPage, SagaSummary, SagaView, find, for_subject, list};
pub use state::{Phase, SagaId, Status};
pub use sweep::Sweeper;

use sqlx::migrate::Migrator;

/// The migrations of the `sagas` and `saga_history` tables, with their own
/// history table (`_saga_migrations`) so that they never have to agree on
/// version numbers with the service's migrations. A service applies them
/// with `service_kit`'s `Builder::migrate`, which waits for another
/// instance's migration instead of giving up at the request pool's
/// `lock_timeout`.
pub fn migrator() -> Migrator {
    let mut migrator: Migrator = sqlx::migrate!("./migrations");
    migrator.dangerous_set_table_name("_saga_migrations");
    migrator
}
