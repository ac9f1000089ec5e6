-- Orders. Their lines never change once placed, so they are kept with the
-- order as JSON: name and unit price as they were at placing.
CREATE TABLE orders (
    id                uuid        PRIMARY KEY,
    kind              text        NOT NULL CHECK (kind IN ('dine_in', 'takeaway')),
    reservation_id    uuid,
    table_label       text,
    lines             jsonb       NOT NULL,
    currency          text        NOT NULL,
    total_cents       bigint      NOT NULL CHECK (total_cents >= 0),
    status            text        NOT NULL CHECK (status IN ('approval_pending', 'approved', 'preparing', 'ready',
                                                             'picked_up', 'completed', 'rejected', 'cancel_pending',
                                                             'cancelled')),
    -- Why it was rejected, naming the items.
    reason            text,
    -- The kitchen's refusal of the last cancellation.
    refusal           text,
    -- The status a refused cancellation returns to; set while cancel_pending.
    resume_status     text,
    -- The guest's capability: only the SHA-256 of the token handed out once.
    manage_token_hash bytea       CHECK (octet_length(manage_token_hash) = 32),
    version           bigint      NOT NULL CHECK (version > 0),
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    CHECK (kind = 'dine_in' OR (reservation_id IS NULL AND table_label IS NULL)),
    CHECK ((status = 'cancel_pending') = (resume_status IS NOT NULL))
);

CREATE INDEX orders_by_age ON orders (created_at, id);
CREATE INDEX orders_by_status ON orders (status, created_at, id);

-- What this service knows of the menus, learnt only from menu-events. Every
-- field keeps the version of the event that set it and takes a value only
-- from a newer one, so duplicates and out-of-order deliveries converge.
CREATE TABLE menus_seen (
    menu_id        uuid    PRIMARY KEY,
    active         boolean NOT NULL,
    status_version bigint  NOT NULL
);

CREATE TABLE menu_items_seen (
    item_id           uuid    PRIMARY KEY,
    menu_id           uuid    NOT NULL,
    -- NULL until an event describing the item arrives (an availability
    -- change may come first).
    name              text,
    name_version      bigint  NOT NULL,
    price_cents       bigint,
    currency          text,
    price_version     bigint  NOT NULL,
    available         boolean NOT NULL,
    available_version bigint  NOT NULL
);
