//! Prometheus metric names recorded by this crate, described once at start-up.
//!
//! Labels: `stream` on everything; `group` on consumer and group metrics;
//! `outcome` on [`CONSUMED`] (`ok`, `unknown_type`, `other_group`); `reason`
//! on [`RETRIED`] (`unavailable`, `rejected`).

/// Counter: events written to a stream by the relay.
pub const PUBLISHED: &str = "events_published_total";
/// Counter: events a consumer group finished with, by outcome.
pub const CONSUMED: &str = "events_consumed_total";
/// Counter: handler attempts that failed and will be retried.
pub const RETRIED: &str = "events_retried_total";
/// Counter: entries moved to a dead-letter stream.
pub const DEAD_LETTERED: &str = "events_dead_lettered_total";
/// Counter: pending entries taken over from another consumer.
pub const RECLAIMED: &str = "events_reclaimed_total";
/// Counter: pending entries deleted from the stream before their group handled them.
pub const LOST: &str = "events_lost_total";
/// Gauge: outbox rows not yet published.
pub const OUTBOX_BACKLOG: &str = "outbox_backlog";
/// Gauge: age in seconds of the oldest unpublished outbox row.
pub const OUTBOX_OLDEST_AGE: &str = "outbox_oldest_age_seconds";
/// Gauge: entries delivered to a group and not yet acknowledged.
pub const PENDING: &str = "events_pending";
/// Histogram: seconds from an event's `occurred_at` to its handler finishing.
pub const HANDLE_LAG: &str = "events_handle_lag_seconds";
/// Gauge: entries of a stream not yet handed to a consumer group, set by retention.
pub const GROUP_LAG: &str = "events_group_lag";
/// Counter: entries retention removed from a stream.
pub const TRIMMED: &str = "events_trimmed_total";
/// Counter: entries the hard cap removed that a group had not acknowledged: lost to it.
pub const TRIMMED_UNACKNOWLEDGED: &str = "events_trimmed_unacknowledged_total";

/// Registers descriptions for every metric above with the installed recorder.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(PUBLISHED, "Events the outbox relay wrote to a stream");
    describe_counter!(CONSUMED, "Events a consumer group finished with, by outcome");
    describe_counter!(RETRIED, "Failed handler attempts that will be retried");
    describe_counter!(DEAD_LETTERED, "Entries moved to a dead-letter stream");
    describe_counter!(RECLAIMED, "Pending entries claimed from an idle consumer");
    describe_counter!(LOST, "Pending entries deleted from the stream before their group handled them");
    describe_gauge!(OUTBOX_BACKLOG, "Outbox rows not yet published");
    describe_gauge!(OUTBOX_OLDEST_AGE, Unit::Seconds, "Age of the oldest unpublished outbox row");
    describe_gauge!(PENDING, "Entries delivered to the group and not yet acknowledged");
    describe_histogram!(HANDLE_LAG, Unit::Seconds, "Time from an event occurring to its handler finishing");
    describe_gauge!(GROUP_LAG, "Entries of the stream not yet delivered to the group");
    describe_counter!(TRIMMED, "Entries retention trimmed from the stream");
    describe_counter!(
        TRIMMED_UNACKNOWLEDGED,
        "Entries the hard cap trimmed before the group acknowledged them: lost to it"
    );
}
