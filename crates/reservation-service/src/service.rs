//! The write path: a booking takes the seat locks of its time, checks the
//! seats and the pre-order, and commits with its event; a status change
//! loads the reservation under a row lock, lets the domain decide, and
//! commits the new state together with its event.

use crate::domain::{Booking, BookingPolicy, DomainError, Reservation};
use crate::error::Error;
use crate::manage_token::ManageToken;
use crate::{menu_view, store};
use events::{Outbox, ReservationEvent, ReservationId};
use service_kit::database::StoreError;
use service_kit::extract::IfMatch;
use service_kit::idempotency::{Idempotency, Reply};
use service_kit::write::{Begun, Request, Writer};
use sqlx::PgPool;

/// Reservations and their changes.
#[derive(Debug, Clone)]
pub struct Reservations {
    writer: Writer,
    policy: BookingPolicy,
}

impl Reservations {
    /// Reservations stored in `pool` under `policy`, publishing through `outbox`.
    pub fn new(pool: PgPool, outbox: Outbox, policy: BookingPolicy) -> Self {
        Self { writer: Writer::new(pool, outbox, crate::BLUEPRINT.name()), policy }
    }

    /// The pool, for reads.
    pub fn pool(&self) -> &PgPool {
        self.writer.pool()
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
        let (reservation, created) = Reservation::book(booking, &self.policy, service_kit::write::now())?;
        // The seat count must see every booking committed by whoever held the
        // seat locks before this one: the unit of work runs at READ COMMITTED.
        let mut work = match self.writer.begin(Request::new(correlation_id).keyed(key)).await? {
            Begun::Replay(reply) => return Ok(reply),
            Begun::Work(work) => work,
        };
        let tx = work.connection();
        let items: Vec<_> = reservation.pre_order.iter().map(|line| line.menu_item_id).collect();
        let mut refused = menu_view::unorderable(tx, &items).await.map_err(StoreError::from)?;
        let first_refused =
            items.iter().enumerate().find_map(|(index, item)| Some((index, *item, refused.remove(item)?)));
        if let Some((index, item, reason)) = first_refused {
            return Err(Error::Unorderable { index, item, reason });
        }
        let (starts_at, ends_at) = (reservation.starts_at, reservation.ends_at());
        store::lock_seats(tx, starts_at, ends_at).await.map_err(StoreError::from)?;
        let taken = store::seats_taken(tx, starts_at, ends_at).await.map_err(StoreError::from)?;
        let free = i64::from(self.policy.seats) - taken;
        if i64::from(reservation.party_size.get()) > free {
            return Err(Error::NoCapacity {
                party: reservation.party_size.get(),
                free: free.max(0),
                starts_at,
                ends_at,
            });
        }
        let manage_token = crate::manage_token::generate();
        store::insert(tx, &reservation, &manage_token.hash()).await?;
        let event = work.event(&reservation, created);
        let reply = respond(&reservation, &manage_token).map_err(StoreError::Encode)?;
        let reply = work.finish(&[event], reply).await?;
        tracing::info!(reservation_id = %reservation.id, party_size = reservation.party_size.get(), "reservation booked");
        Ok(reply)
    }

    /// Applies `command` to reservation `id` and answers with the reply
    /// `respond` makes of the result (see [`Writer::change`]).
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
        respond: impl FnOnce(&Reservation) -> Result<Reply, serde_json::Error>,
    ) -> Result<Reply, Error> {
        let request = Request::new(correlation_id);
        self.writer
            .change(id, if_match, request, |reservation| command(reservation).map_err(Error::from), respond)
            .await
    }
}
