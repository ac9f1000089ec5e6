-- The restaurant's booking rules (schedule, seats, limits): one versioned
-- document, seeded from the environment on first start, then changed by staff.
CREATE TABLE restaurant (
    singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    rules      jsonb       NOT NULL,
    version    bigint      NOT NULL CHECK (version > 0),
    updated_at timestamptz NOT NULL
);

-- The seat ledger: seats taken in each 5-minute grain of time. A booking adds
-- its party to every grain its stay touches, in time order, in its own
-- transaction; PostgreSQL refuses any grain over capacity, whatever the
-- concurrency and however many instances run. Rows are made ahead for the
-- booking horizon by the service.
CREATE TABLE seat_ledger (
    grain_start timestamptz PRIMARY KEY,
    capacity    integer     NOT NULL CHECK (capacity > 0),
    seats_taken integer     NOT NULL DEFAULT 0 CHECK (seats_taken >= 0),
    CONSTRAINT seats_within_capacity CHECK (seats_taken <= capacity)
);

-- The visit's life: seated, no-shows, and pending bookings that expire.
ALTER TABLE reservations DROP CONSTRAINT reservations_status_check;
ALTER TABLE reservations ADD CONSTRAINT reservations_status_check
    CHECK (status IN ('pending', 'confirmed', 'seated', 'completed', 'cancelled', 'no_show', 'expired'));
ALTER TABLE reservations ADD COLUMN expires_at timestamptz;
UPDATE reservations SET expires_at = LEAST(created_at + interval '30 minutes', starts_at);
ALTER TABLE reservations ALTER COLUMN expires_at SET NOT NULL;

-- The seat ledger replaces the overlap search.
DROP INDEX reservations_holding_seats;
CREATE INDEX reservations_pending_by_expiry ON reservations (expires_at) WHERE status = 'pending';
-- A guest's upcoming bookings, by either contact.
CREATE INDEX reservations_by_email ON reservations (lower(guest_email), starts_at)
    WHERE status IN ('pending', 'confirmed') AND guest_email IS NOT NULL;
CREATE INDEX reservations_by_phone ON reservations (regexp_replace(guest_phone, '[^0-9]', '', 'g'), starts_at)
    WHERE status IN ('pending', 'confirmed') AND guest_phone IS NOT NULL;

-- Every status a reservation went through: who, when.
CREATE TABLE reservation_history (
    reservation_id uuid        NOT NULL REFERENCES reservations (id) ON DELETE CASCADE,
    version        bigint      NOT NULL,
    status         text        NOT NULL,
    actor          text        NOT NULL,
    at             timestamptz NOT NULL,
    PRIMARY KEY (reservation_id, version)
);
INSERT INTO reservation_history (reservation_id, version, status, actor, at)
    SELECT id, version, status, 'before history was kept', updated_at FROM reservations;
