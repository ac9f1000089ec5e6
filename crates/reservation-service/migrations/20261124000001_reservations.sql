-- Reservations and what they pre-ordered.
CREATE TABLE reservations (
    id               uuid        PRIMARY KEY,
    guest_name       text        NOT NULL,
    guest_email      text,
    guest_phone      text,
    party_size       integer     NOT NULL CHECK (party_size > 0),
    starts_at        timestamptz NOT NULL,
    ends_at          timestamptz NOT NULL,
    notes            text,
    status           text        NOT NULL CHECK (status IN ('pending', 'confirmed', 'completed', 'cancelled')),
    cancel_reason    text,
    version          bigint      NOT NULL CHECK (version > 0),
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    CHECK (ends_at > starts_at),
    CHECK (guest_email IS NOT NULL OR guest_phone IS NOT NULL)
);

-- The reservations that hold seats, by the time they hold them: the capacity check's index.
CREATE INDEX reservations_holding_seats ON reservations USING gist (tstzrange(starts_at, ends_at))
    WHERE status IN ('pending', 'confirmed');
CREATE INDEX reservations_by_start ON reservations (starts_at, id);
CREATE INDEX reservations_by_status ON reservations (status, starts_at, id);

CREATE TABLE pre_order_lines (
    reservation_id uuid    NOT NULL REFERENCES reservations (id) ON DELETE CASCADE,
    position       integer NOT NULL,
    menu_item_id   uuid    NOT NULL,
    quantity       integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (reservation_id, menu_item_id)
);

CREATE INDEX pre_order_lines_by_item ON pre_order_lines (menu_item_id);

-- Pre-ordered items that can no longer be served, found by re-validation.
CREATE TABLE reservation_problems (
    reservation_id uuid        NOT NULL REFERENCES reservations (id) ON DELETE CASCADE,
    menu_item_id   uuid        NOT NULL,
    reason         text        NOT NULL,
    detected_at    timestamptz NOT NULL,
    PRIMARY KEY (reservation_id, menu_item_id)
);

-- The service's view of the menus, built only from menu-events. Each field
-- keeps the version of the event that set it, so that duplicates and
-- out-of-order deliveries converge on what the newest event says.
CREATE TABLE menus_seen (
    menu_id        uuid    PRIMARY KEY,
    active         boolean NOT NULL,
    status_version bigint  NOT NULL
);

CREATE TABLE menu_items_seen (
    item_id           uuid    PRIMARY KEY,
    menu_id           uuid    NOT NULL,
    name              text,
    name_version      bigint  NOT NULL,
    available         boolean NOT NULL,
    available_version bigint  NOT NULL
);

CREATE INDEX menu_items_seen_by_menu ON menu_items_seen (menu_id);
