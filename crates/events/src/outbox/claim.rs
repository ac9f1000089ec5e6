//! Claiming a batch: deleting the oldest committed rows and returning them.
//!
//! Deleted rows stay in the primary-key index until vacuum removes them, and
//! an index scan from the start of the table steps over every one of them: a
//! relay that had published 400,000 rows spent most of each claim walking past
//! the dead ones. So the relay remembers a [`Horizon`], a `seq` at or below
//! which no row can exist any more, and scans from there.
//!
//! Knowing that is not trivial, because `seq` is taken at insert and rows
//! become visible at commit: a writer may hold `seq` 100 uncommitted while
//! `seq` 101 is already published. Such a writer took its `seq` before the
//! writer of the claim's last row took its own (the identity sequence hands
//! out values in the order they are asked for; it has no per-session cache),
//! so before the claim's snapshot; and `append` gives a writer its
//! transaction id before its rows take a `seq`. Every such writer therefore
//! had its transaction id before the relay's own transaction got one, which
//! happens after the snapshot. (The snapshot's `xmax` is no such bound: it is
//! one past the latest *completed* transaction, and a running writer may well
//! have a higher id.) Once a later claim's oldest running transaction
//! (`xmin`) is at or past the earlier relay transaction's id, all those
//! writers have finished, and that later claim, scanning from the old
//! horizon, saw and took every row they committed. Only then does the horizon
//! move up to the earlier claim's last `seq`.

use crate::encoding::EncodedEvent;
use crate::trace::TraceContext;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

/// One claimed outbox row: an event in wire form, where it goes, and the
/// context of the span that created it, if it was traced.
pub(super) struct OutboxRow {
    pub seq: i64,
    pub stream: String,
    pub event: EncodedEvent,
    pub created: Option<TraceContext>,
}

/// What one claim deleted and what its snapshot said about running writers.
#[derive(Default)]
pub(super) struct Claimed {
    /// The rows, in `seq` order.
    pub rows: Vec<OutboxRow>,
    /// The claim's snapshot, when it took any rows.
    snapshot: Option<Snapshot>,
}

/// Where a claim stood among transactions.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    /// Every transaction below this id had finished when the claim began.
    snapshot_xmin: i64,
    /// The relay transaction's own id, given to it after the claim began: every
    /// writer that held a `seq` below the claim's last one has a lower id.
    relay_xid: i64,
}

/// A claimed row with the claim's snapshot, as the statement returns it.
struct ClaimedRow {
    row: OutboxRow,
    snapshot: Snapshot,
}

impl sqlx::FromRow<'_, PgRow> for ClaimedRow {
    /// Reads the columns by position, in the order of the claim's `RETURNING`
    /// (by name, each of the thirteen costs a hash lookup on every row).
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            row: OutboxRow {
                seq: row.try_get(0)?,
                stream: row.try_get(2)?,
                event: EncodedEvent {
                    id: row.try_get::<Uuid, _>(1)?.into(),
                    event_type: row.try_get(3)?,
                    aggregate_id: row.try_get(4)?,
                    version: row.try_get(5)?,
                    occurred_at: row.try_get(6)?,
                    data: row.try_get(7)?,
                    metadata: row.try_get(8)?,
                },
                created: row
                    .try_get::<Option<String>, _>(9)?
                    .map(|traceparent| Ok::<_, sqlx::Error>(TraceContext { traceparent, tracestate: row.try_get(10)? }))
                    .transpose()?,
            },
            snapshot: Snapshot { snapshot_xmin: row.try_get(11)?, relay_xid: row.try_get(12)? },
        })
    }
}

/// A `seq` at or below which the outbox holds no row and never will again.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Horizon {
    /// Rows with `seq` up to this are gone for good.
    settled: i64,
    /// A claim's last `seq`, waiting for the writers running during that claim
    /// to finish.
    pending: Option<Pending>,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    last_seq: i64,
    relay_xid: i64,
}

impl Horizon {
    /// Where the next claim starts scanning (exclusive).
    pub fn settled(self) -> i64 {
        self.settled
    }

    /// The horizon after `claim`, the first claim of a transaction that has
    /// committed. It scanned from [`Self::settled`], so it took every row
    /// visible to it from there up to its last `seq`.
    #[must_use]
    pub fn after(self, claim: &Claimed) -> Self {
        let (Some(snapshot), Some(last)) = (claim.snapshot, claim.rows.last()) else {
            return self;
        };
        let mut next = self;
        if let Some(pending) = self.pending
            && snapshot.snapshot_xmin >= pending.relay_xid
        {
            // Every writer that could have held a `seq` up to `pending.last_seq`
            // had finished before this claim (the earlier relay transaction,
            // committed, is below this claim's `xmax`, so `xmin` counts every
            // transaction below it), and this claim took everything visible up
            // to its own last `seq`.
            next.settled = self.settled.max(pending.last_seq.min(last.seq));
            next.pending = None;
        }
        if next.pending.is_none() {
            next.pending = Some(Pending { last_seq: last.seq, relay_xid: snapshot.relay_xid });
        }
        next
    }
}

/// Takes the publishing lock of the outbox in `tx`'s schema until `tx` ends,
/// unless another relay holds it. Returns whether it was taken.
pub(super) async fn take_publishing_lock(tx: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext(concat('events.outbox.', current_schema()))::bigint)")
        .fetch_one(tx)
        .await
}

/// Deletes the oldest committed rows after `after` (at most `limit`) in `tx`,
/// which holds the publishing lock, and returns them.
pub(super) async fn claim(tx: &mut PgConnection, after: i64, limit: usize) -> Result<Claimed, sqlx::Error> {
    // Holding the lock, the relay is the only one deleting rows, so the batch
    // is a range of the primary key: rows not committed yet are invisible and
    // wait for a later batch. The snapshot's `xmin` and the relay's
    // transaction id are read only when a row is returned, so an empty claim
    // stays read-only; either way the id is given after the statement's
    // snapshot was taken.
    let claimed: Vec<ClaimedRow> = sqlx::query_as(
        "WITH snapshot AS (
             SELECT pg_snapshot_xmin(pg_current_snapshot())::text::int8 AS xmin,
                    pg_current_xact_id()::text::int8 AS relay_xid
         )
         DELETE FROM outbox
         WHERE seq > $1
           AND seq <= (SELECT max(seq) FROM (SELECT seq FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2) AS batch)
         RETURNING seq, event_id, stream, event_type, aggregate_id, version, occurred_at,
                   data::text AS data, metadata::text AS metadata, traceparent, tracestate,
                   (SELECT xmin FROM snapshot) AS snapshot_xmin, (SELECT relay_xid FROM snapshot) AS relay_xid",
    )
    .bind(after)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(tx)
    .await?;
    let snapshot = claimed.first().map(|claimed| claimed.snapshot);
    let mut rows: Vec<OutboxRow> = claimed.into_iter().map(|claimed| claimed.row).collect();
    rows.sort_unstable_by_key(|row| row.seq);
    Ok(Claimed { rows, snapshot })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A claim whose snapshot had `xmin`, in relay transaction `relay_xid`, which took `seqs`.
    fn claimed(seqs: &[i64], snapshot_xmin: i64, relay_xid: i64) -> Claimed {
        let rows = seqs
            .iter()
            .map(|&seq| OutboxRow {
                seq,
                stream: String::new(),
                event: EncodedEvent {
                    id: Uuid::nil().into(),
                    event_type: String::new(),
                    aggregate_id: Uuid::nil(),
                    version: 1,
                    occurred_at: chrono::DateTime::UNIX_EPOCH,
                    data: String::new(),
                    metadata: String::new(),
                },
                created: None,
            })
            .collect();
        Claimed { rows, snapshot: Some(Snapshot { snapshot_xmin, relay_xid }) }
    }

    #[test]
    fn the_horizon_waits_until_every_writer_running_during_a_claim_has_finished() {
        // Claim 1, in relay transaction 12, takes seqs 1..=3 while transaction
        // 10 is running.
        let horizon = Horizon::default().after(&claimed(&[1, 2, 3], 10, 12));
        assert_eq!(horizon.settled(), 0);
        // Transaction 10 is still running: it may hold seq 0..3 uncommitted.
        let horizon = horizon.after(&claimed(&[4, 5], 10, 14));
        assert_eq!(horizon.settled(), 0);
        // Everything below 12 has finished, and this claim scanned from 0.
        let horizon = horizon.after(&claimed(&[6], 12, 15));
        assert_eq!(horizon.settled(), 3);
        // The next candidate is that claim's last seq, 6, settled after 15.
        let horizon = horizon.after(&claimed(&[7], 14, 16));
        assert_eq!(horizon.settled(), 3);
        let horizon = horizon.after(&claimed(&[8], 15, 17));
        assert_eq!(horizon.settled(), 6);
    }

    #[test]
    fn a_writer_with_a_higher_id_than_the_latest_completed_one_still_holds_the_horizon() {
        // Writer 11 got its id after writer 10 but took the lower seq; 10
        // committed, and claim 1 (relay transaction 12) took 10's row. 11 is
        // the oldest running transaction at the next claims.
        let horizon = Horizon::default().after(&claimed(&[2], 11, 12));
        let horizon = horizon.after(&claimed(&[3], 11, 13));
        assert_eq!(horizon.settled(), 0, "writer 11 may still commit seq 1");
        let horizon = horizon.after(&claimed(&[1, 4], 13, 14));
        assert_eq!(horizon.settled(), 2);
    }

    #[test]
    fn the_horizon_never_passes_what_the_settling_claim_itself_covered() {
        let horizon = Horizon::default().after(&claimed(&[100], 5, 6));
        // A late row (seq 40) is the whole of the next claim: only up to 40 is
        // known to be gone, not up to 100.
        let horizon = horizon.after(&claimed(&[40], 6, 7));
        assert_eq!(horizon.settled(), 40);
    }

    #[test]
    fn an_empty_claim_moves_nothing() {
        let horizon = Horizon::default().after(&claimed(&[1, 2], 5, 6));
        let empty = Claimed::default();
        let unchanged = horizon.after(&empty);
        assert_eq!(unchanged.settled(), 0);
        assert_eq!(unchanged.after(&claimed(&[3], 6, 7)).settled(), 2);
    }
}
