//! The write path. A booking is checked against the restaurant's rules,
//! inserted, and takes its seats in the seat ledger in one transaction with
//! its event; a status change loads the reservation under a row lock, lets
//! the domain decide at the service's clock, gives the seats back when it
//! stops holding them, and commits with its event and its history entry.

use crate::domain::{Booking, DomainError, Reservation, Rules};
use crate::error::Error;
use crate::manage_token::ManageToken;
use crate::store::ledger::{self, Contacts};
use crate::store::rules::Versioned;
use crate::{menu_view, store};
use chrono::{DateTime, TimeDelta, Utc};
use events::{Outbox, ReservationEvent, ReservationId};
use service_kit::clock::Clock;
use service_kit::database::StoreError;
use service_kit::extract::IfMatch;
use service_kit::idempotency::{Idempotency, Reply};
use service_kit::write::{Begun, Request, Writer, change_in};
use sqlx::PgPool;
use std::sync::{Arc, RwLock};

/// How many times a booking decided under rules that changed meanwhile is
/// decided again under the new ones.
const RULE_CHANGE_RETRIES: usize = 3;

/// How long past the horizon and the longest stay the ledger's rows reach:
/// slack for the upkeep.
const LEDGER_SLACK: TimeDelta = TimeDelta::days(1);

/// Reservations and their changes.
#[derive(Debug, Clone)]
pub struct Reservations {
    writer: Writer,
    rules: Arc<RwLock<Arc<Versioned>>>,
    clock: Clock,
}

impl Reservations {
    /// Opens the reservations stored in `pool`, publishing through `outbox`,
    /// deciding at `clock`: seeds the rules with `defaults` on a fresh
    /// database (counting the ledger from the reservations there) and makes
    /// the ledger's rows for the horizon.
    ///
    /// # Errors
    /// The database failed, or the stored rules are invalid.
    pub async fn open(pool: PgPool, outbox: Outbox, defaults: &Rules, clock: Clock) -> Result<Self, Error> {
        let mut tx = pool.begin().await.map_err(StoreError::from)?;
        if store::rules::seed(&mut tx, defaults, clock.now()).await? {
            extend_ledger(&mut tx, defaults, clock.now()).await?;
            ledger::recount(&mut tx).await.map_err(StoreError::from)?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        let current = store::rules::load(&pool).await?;
        let writer = Writer::new(pool, outbox, crate::BLUEPRINT.name());
        let reservations = Self { writer, rules: Arc::new(RwLock::new(Arc::new(current))), clock };
        reservations.upkeep_ledger().await?;
        Ok(reservations)
    }

    /// The pool, for reads.
    pub fn pool(&self) -> &PgPool {
        self.writer.pool()
    }

    /// The clock rules are decided at.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The rules as this instance last read them.
    pub fn rules(&self) -> Arc<Versioned> {
        self.rules.read().map_or_else(|poisoned| poisoned.into_inner().clone(), |rules| rules.clone())
    }

    /// Reads the rules again if another instance changed them; the current ones.
    ///
    /// # Errors
    /// The database failed.
    pub async fn refresh_rules(&self) -> Result<Arc<Versioned>, Error> {
        let stored: i64 = sqlx::query_scalar("SELECT version FROM restaurant")
            .fetch_one(self.pool())
            .await
            .map_err(StoreError::from)?;
        if stored == self.rules().version {
            return Ok(self.rules());
        }
        self.reload_rules().await
    }

    async fn reload_rules(&self) -> Result<Arc<Versioned>, Error> {
        let current = Arc::new(store::rules::load(self.pool()).await?);
        self.remember(current.clone());
        Ok(current)
    }

    fn remember(&self, rules: Arc<Versioned>) {
        match self.rules.write() {
            Ok(mut slot) => *slot = rules,
            Err(poisoned) => *poisoned.into_inner() = rules,
        }
    }

    /// Books a pending reservation for `actor` and publishes
    /// `ReservationCreated`; the booking's [`ManageToken`] is handed to
    /// `respond`, and only its hash stored with the booking.
    ///
    /// The seats are taken in the seat ledger in the booking's transaction
    /// (see [`ledger::take`]), so no two bookings that overlap can both take
    /// the last seats, however many instances run. A guest's bookings take a
    /// lock on their contacts first, so the limit of upcoming bookings holds
    /// under concurrency too. A booking decided under rules another instance
    /// changed meanwhile is decided again under the new ones.
    ///
    /// # Errors
    /// The domain refuses the booking, a pre-ordered item cannot be served,
    /// the seats are taken, the guest holds too many upcoming bookings, the
    /// idempotency key is in use or was used for another request, or the
    /// database failed.
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
        actor: &str,
        correlation_id: &str,
        key: Option<&Idempotency>,
        respond: impl Fn(&Reservation, &ManageToken) -> Result<Reply, serde_json::Error>,
    ) -> Result<Reply, Error> {
        let mut rules = self.rules();
        for _ in 0..RULE_CHANGE_RETRIES {
            match self.try_book(&rules, booking.clone(), actor, correlation_id, key, &respond).await {
                Err(Error::RulesChanged) => rules = self.reload_rules().await?,
                Err(Error::Domain(refused)) => {
                    // Refused under rules that may be stale: decide again if they are.
                    let current = self.refresh_rules().await?;
                    if current.version == rules.version {
                        return Err(refused.into());
                    }
                    rules = current;
                }
                result => return result,
            }
        }
        Err(Error::RulesChanged)
    }

    async fn try_book(
        &self,
        rules: &Versioned,
        booking: Booking,
        actor: &str,
        correlation_id: &str,
        key: Option<&Idempotency>,
        respond: &impl Fn(&Reservation, &ManageToken) -> Result<Reply, serde_json::Error>,
    ) -> Result<Reply, Error> {
        let now = self.clock.now();
        let (reservation, created) = Reservation::book(booking, &rules.rules, actor, now)?;
        let mut work = match self.writer.begin(Request::new(correlation_id).keyed(key)).await? {
            Begun::Replay(reply) => return Ok(reply),
            Begun::Work(work) => work,
        };
        let tx = work.connection();
        if !reservation.pre_order.is_empty() {
            let items: Vec<_> = reservation.pre_order.iter().map(|line| line.menu_item_id).collect();
            let mut refused = menu_view::unorderable(tx, &items).await.map_err(StoreError::from)?;
            let first_refused =
                items.iter().enumerate().find_map(|(index, item)| Some((index, *item, refused.remove(item)?)));
            if let Some((index, item, reason)) = first_refused {
                return Err(Error::Unorderable { index, item, reason });
            }
        }
        let manage_token = crate::manage_token::generate();
        store::insert(tx, &reservation, &manage_token.hash()).await?;
        let (starts_at, ends_at) = (reservation.starts_at, reservation.ends_at());
        let party = i32::from(reservation.party_size.get());
        let contacts = Contacts {
            email: reservation.guest.email.as_ref().map(|email| email.as_str()),
            phone: reservation.guest.phone.as_ref(),
        };
        // The event first, the seats last: the ledger's rows stay locked only until the commit right after.
        let event = work.event(&reservation, created);
        work.unit().append(&[event]).await.map_err(service_kit::write::WriteError::from)?;
        let tx = work.connection();
        let mut taking = ledger::take(tx, starts_at, ends_at, party, contacts, now).await.map_err(StoreError::from)?;
        if taking.missing {
            // The upkeep has not made these rows yet: make them (at the stored capacity) and try again.
            extend_ledger(tx, &rules.rules, now).await?;
            taking = ledger::take(tx, starts_at, ends_at, party, contacts, now).await.map_err(StoreError::from)?;
        }
        if taking.rules_version != rules.version {
            return Err(Error::RulesChanged);
        }
        let limit = rules.rules.max_upcoming_per_guest;
        if taking.upcoming > i64::from(limit) {
            return Err(Error::TooManyUpcoming { limit });
        }
        if !taking.taken {
            let free = taking.free.max(0);
            return Err(Error::NoCapacity { party: reservation.party_size.get(), free, starts_at, ends_at });
        }
        let reply = respond(&reservation, &manage_token).map_err(StoreError::Encode)?;
        let reply = work.finish::<ReservationEvent>(&[], reply).await?;
        tracing::info!(reservation_id = %reservation.id, party_size = reservation.party_size.get(), "reservation booked");
        Ok(reply)
    }

    /// Applies `command` to reservation `id` for `actor`, at the service's
    /// clock and under the current rules, and answers with the reply
    /// `respond` makes of the result. A change that stops the reservation
    /// holding seats gives them back in the same transaction.
    ///
    /// # Errors
    /// No such reservation, a stale version, the domain refuses, or the database failed.
    #[tracing::instrument(skip_all, fields(reservation_id = %id))]
    pub async fn change(
        &self,
        id: ReservationId,
        if_match: IfMatch,
        actor: &str,
        correlation_id: &str,
        command: impl FnOnce(&mut Reservation, &Rules, DateTime<Utc>) -> Result<Option<ReservationEvent>, DomainError>,
        respond: impl FnOnce(&Reservation) -> Result<Reply, serde_json::Error>,
    ) -> Result<Reply, Error> {
        let rules = self.rules();
        let now = self.clock.now();
        let mut work = match self.writer.begin(Request::new(correlation_id)).await? {
            Begun::Replay(reply) => return Ok(reply),
            Begun::Work(work) => work,
        };
        let mut held_seats = false;
        let decide = |reservation: &mut Reservation| {
            held_seats = reservation.status.holds_seats();
            let event = command(reservation, &rules.rules, now)?;
            if event.is_some() {
                reservation.record(actor, now);
            }
            Ok::<_, Error>(event)
        };
        let (reservation, payload) = change_in(work.connection(), id, if_match, decide).await?;
        let Some(payload) = payload else {
            return Ok(respond(&reservation).map_err(StoreError::Encode)?);
        };
        if held_seats && !reservation.status.holds_seats() {
            release(work.connection(), &reservation).await?;
        }
        let event = work.event(&reservation, payload);
        let reply = respond(&reservation).map_err(StoreError::Encode)?;
        tracing::info!(event_type = event.event_type(), version = reservation.version, "reservation changed");
        Ok(work.finish(&[event], reply).await?)
    }

    /// Replaces the rules with `rules` if `if_match` names the stored
    /// version. Lowering the seats below what some future time already has
    /// booked is refused; the upcoming bookings the new schedule would no
    /// longer take are kept, and returned so that staff can call the guests.
    ///
    /// # Errors
    /// A stale version, seats below what is booked, or the database failed.
    pub async fn change_rules(
        &self,
        rules: Rules,
        if_match: IfMatch,
    ) -> Result<(Arc<Versioned>, Vec<ReservationId>), Error> {
        let now = self.clock.now();
        let mut tx = self.pool().begin().await.map_err(StoreError::from)?;
        let stored = store::rules::lock(&mut tx).await?;
        if_match
            .check(stored.version)
            .map_err(|stale| service_kit::write::WriteError::Stale { kind: "restaurant rules", stale })?;
        let seats = i32::try_from(rules.seats).unwrap_or(i32::MAX);
        if let Err((at, taken)) = ledger::set_capacity(&mut tx, now, seats).await.map_err(StoreError::from)? {
            return Err(Error::SeatsBooked { seats: rules.seats, at, taken });
        }
        extend_ledger(&mut tx, &rules, now).await?;
        let outside = store::upcoming_stays(&mut tx, now)
            .await
            .map_err(StoreError::from)?
            .into_iter()
            .filter(|(_, starts_at, ends_at)| rules.schedule.check(*starts_at, *ends_at - *starts_at).is_err())
            .map(|(id, _, _)| ReservationId::from(id))
            .collect();
        let version = stored.version + 1;
        store::rules::save(&mut tx, &rules, version, now).await?;
        tx.commit().await.map_err(StoreError::from)?;
        let current = Arc::new(Versioned { rules, version, updated_at: now });
        self.remember(current.clone());
        Ok((current, outside))
    }

    /// Makes the seat ledger's rows for the horizon ahead and drops those of
    /// the past week; run at start and then every so often.
    ///
    /// # Errors
    /// The database failed.
    pub async fn upkeep_ledger(&self) -> Result<(), Error> {
        let now = self.clock.now();
        let mut tx = self.pool().begin().await.map_err(StoreError::from)?;
        let stored = store::rules::lock(&mut tx).await?;
        extend_ledger(&mut tx, &stored.rules, now).await?;
        ledger::prune(&mut tx, now - TimeDelta::days(7)).await.map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }

    /// Lets go of the pending bookings nobody confirmed by their expiry at
    /// `now`, in batches, each commit with its `ReservationExpired` events and
    /// the seats given back; returns how many. Several instances may run it
    /// side by side: each takes the bookings no other has locked.
    ///
    /// # Errors
    /// The database failed; the batch under way stays pending.
    pub async fn expire_due(&self, now: DateTime<Utc>) -> Result<usize, Error> {
        const BATCH: i64 = 100;
        let mut expired = 0;
        loop {
            let correlation_id = format!("expiry-{}", uuid::Uuid::now_v7());
            let mut work = match self.writer.begin(Request::new(&correlation_id)).await? {
                Begun::Work(work) => work,
                Begun::Replay(_) => return Ok(expired),
            };
            let due = store::lock_due_for_expiry(work.connection(), now, BATCH).await?;
            if due.is_empty() {
                return Ok(expired);
            }
            let mut published = Vec::with_capacity(due.len());
            for mut reservation in due {
                let Some(payload) = reservation.expire(now)? else { continue };
                reservation.record(crate::BLUEPRINT.name(), now);
                let version = reservation.version + 1;
                service_kit::write::Aggregate::advance(&mut reservation, version, now);
                store::update_status(work.connection(), &reservation).await?;
                release(work.connection(), &reservation).await?;
                published.push(work.event(&reservation, payload));
            }
            let batch = published.len();
            work.commit(&published).await?;
            tracing::info!(reservations = batch, "expired pending reservations nobody confirmed");
            expired += batch;
            if i64::try_from(batch).unwrap_or(i64::MAX) < BATCH {
                return Ok(expired);
            }
        }
    }
}

/// Gives the seats of `reservation`'s stay back.
async fn release(tx: &mut sqlx::PgConnection, reservation: &Reservation) -> Result<(), Error> {
    let party = i32::from(reservation.party_size.get());
    ledger::release(tx, reservation.starts_at, reservation.ends_at(), party).await.map_err(StoreError::from)?;
    Ok(())
}

/// Makes the ledger's rows from now to past the horizon of `rules`, at their
/// seats, under a share lock on the stored rules: a change of the seats
/// waits for the rows to commit, and the rows for the change.
async fn extend_ledger(tx: &mut sqlx::PgConnection, rules: &Rules, now: DateTime<Utc>) -> Result<(), Error> {
    sqlx::query("SELECT 1 FROM restaurant FOR SHARE").execute(&mut *tx).await.map_err(StoreError::from)?;
    let longest_stay = TimeDelta::minutes(i64::from(crate::domain::Duration::MAX_MINUTES));
    let until = now + rules.horizon + longest_stay + LEDGER_SLACK;
    let seats = i32::try_from(rules.seats).unwrap_or(i32::MAX);
    ledger::extend(tx, now, until, seats).await.map_err(StoreError::from)?;
    Ok(())
}
