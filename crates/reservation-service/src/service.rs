//! The write path: a booking takes the seat locks of its time, checks the
//! seats and the pre-order, and commits with its event; a status change
//! loads the reservation under a row lock, lets the domain decide, and
//! commits the new state together with its event.

use crate::domain::{Booking, BookingPolicy, DomainError, Reservation};
use crate::error::Error;
use crate::manage_token::ManageToken;
use crate::{menu_view, store};
use chrono::{SubsecRound, Utc};
use events::{DomainEvent, Metadata, Outbox, ReservationEvent, ReservationId};
use service_kit::database::StoreError;
use service_kit::extract::IfMatch;
use service_kit::idempotency::{self, Idempotency, Reply};
use sqlx::PgPool;

/// The name events carry as their `source`.
pub const SOURCE: &str = "reservation-service";

/// Reservations and their changes.
#[derive(Debug, Clone)]
pub struct Reservations {
    pool: PgPool,
    outbox: Outbox,
    policy: BookingPolicy,
}

impl Reservations {
    /// Reservations stored in `pool` under `policy`, publishing through `outbox`.
    pub fn new(pool: PgPool, outbox: Outbox, policy: BookingPolicy) -> Self {
        Self { pool, outbox, policy }
    }

    /// The pool, for reads.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The booking rules.
    pub fn policy(&self) -> &BookingPolicy {
        &self.policy
    }

    /// Books a pending reservation and publishes `ReservationCreated`; the
    /// booking's [`ManageToken`] is handed to `respond`, and only its hash
    /// stored with the booking.
    ///
    /// Capacity is decided in PostgreSQL under the seat locks of the
    /// reservation's time ([`store::lock_seats`]), so no two bookings that
    /// overlap can both take the last seats, however many instances run.
    ///
    /// # Errors
    /// The domain refuses the booking, a pre-ordered item cannot be served,
    /// the seats are taken, the idempotency key is in use or was used for
    /// another request, or the database failed.
    ///
    /// With an idempotency `key` used before, nothing is booked and the first
    /// reply is sent again; the reply to a new key, made by `respond`,
    /// commits with the booking and its event. (So the stored reply holds the
    /// manage token for as long as the key is kept: a guest who missed the
    /// answer gets the token with the replay.)
    #[tracing::instrument(skip_all)]
    pub async fn book(
        &self,
        booking: Booking,
        correlation_id: &str,
        key: Option<&Idempotency>,
        respond: impl FnOnce(&Reservation, &ManageToken) -> Result<Reply, serde_json::Error>,
    ) -> Result<Reply, Error> {
        let (reservation, created) = Reservation::book(booking, &self.policy, Utc::now().trunc_subsecs(6))?;
        // The seat count must see every booking committed by whoever held the
        // seat locks before this one: each statement needs a snapshot of its
        // own, so the level is set here, not inherited from the server.
        let mut tx = self.pool.begin_with("BEGIN ISOLATION LEVEL READ COMMITTED").await?;
        if let Some(replay) = idempotency::begin(&mut tx, key).await? {
            return Ok(replay);
        }
        let items: Vec<_> = reservation.pre_order.iter().map(|line| line.menu_item_id).collect();
        let mut refused = menu_view::unorderable(&mut tx, &items).await?;
        let first_refused =
            items.iter().enumerate().find_map(|(index, item)| Some((index, *item, refused.remove(item)?)));
        if let Some((index, item, reason)) = first_refused {
            return Err(Error::Unorderable { index, item, reason });
        }
        let (starts_at, ends_at) = (reservation.starts_at, reservation.ends_at());
        store::lock_seats(&mut tx, starts_at, ends_at).await?;
        let taken = store::seats_taken(&mut tx, starts_at, ends_at).await?;
        let free = i64::from(self.policy.seats) - taken;
        if i64::from(reservation.party_size.get()) > free {
            return Err(Error::NoCapacity {
                party: reservation.party_size.get(),
                free: free.max(0),
                starts_at,
                ends_at,
            });
        }
        let event =
            DomainEvent::new(reservation.id, reservation.version, created, Metadata::new(SOURCE, correlation_id));
        let manage_token = ManageToken::generate();
        store::insert(&mut tx, &reservation, &manage_token.hash()).await?;
        self.outbox.append(&mut tx, &[event]).await?;
        let reply = respond(&reservation, &manage_token).map_err(StoreError::Encode)?;
        idempotency::record(&mut tx, key, &reply).await?;
        self.outbox.commit(tx).await?;
        tracing::info!(reservation_id = %reservation.id, party_size = reservation.party_size.get(), "reservation booked");
        Ok(reply)
    }

    /// Applies `command` to reservation `id`. If it yields an event, the
    /// version is bumped and the reservation and its event commit together;
    /// if not, nothing is written. The version `if_match` names, if any, must
    /// be the stored one.
    ///
    /// # Errors
    /// No such reservation, a stale version, the domain refuses, or the database failed.
    #[tracing::instrument(skip_all, fields(reservation_id = %id))]
    pub async fn change(
        &self,
        id: ReservationId,
        if_match: IfMatch,
        correlation_id: &str,
        command: impl FnOnce(&mut Reservation) -> Result<Option<ReservationEvent>, DomainError>,
    ) -> Result<Reservation, Error> {
        let mut tx = self.pool.begin().await?;
        let mut reservation = store::lock(&mut tx, id).await?.ok_or(Error::NotFound(id))?;
        if_match.check(reservation.version)?;
        let Some(payload) = command(&mut reservation)? else {
            return Ok(reservation);
        };
        reservation.version += 1;
        reservation.updated_at = Utc::now().trunc_subsecs(6);
        let event =
            DomainEvent::new(reservation.id, reservation.version, payload, Metadata::new(SOURCE, correlation_id));
        store::update_status(&mut tx, &reservation).await?;
        self.outbox.append(&mut tx, std::slice::from_ref(&event)).await?;
        self.outbox.commit(tx).await?;
        tracing::info!(event_type = event.event_type(), version = reservation.version, "reservation changed");
        Ok(reservation)
    }
}
