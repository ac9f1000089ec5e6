-- One ticket per order, and what it asks the kitchen to cook.
CREATE TABLE tickets (
    id               uuid        PRIMARY KEY,
    order_id         uuid        NOT NULL UNIQUE,
    status           text        NOT NULL CHECK (status IN ('pending', 'awaiting_acceptance', 'accepted', 'preparing',
                                                            'ready', 'picked_up', 'cancelled', 'rejected')),
    -- Set when the kitchen accepts the ticket; every status after acceptance has one.
    ready_by         timestamptz,
    reject_reason    text,
    -- Whether TicketOverdue was published: it is, once.
    overdue_notified boolean     NOT NULL DEFAULT false,
    version          bigint      NOT NULL CHECK (version > 0),
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    CHECK (status NOT IN ('accepted', 'preparing', 'ready', 'picked_up') OR ready_by IS NOT NULL),
    CHECK (reject_reason IS NULL OR status = 'rejected')
);

-- The kitchen's queue: tickets still in play, oldest first.
CREATE INDEX tickets_active_by_age ON tickets (created_at, id)
    WHERE status IN ('pending', 'awaiting_acceptance', 'accepted', 'preparing', 'ready');
CREATE INDEX tickets_by_status ON tickets (status, created_at, id);
-- The overdue sweep: promised tickets not yet ready whose overdue event is still to publish.
CREATE INDEX tickets_to_notify_overdue ON tickets (ready_by)
    WHERE status IN ('accepted', 'preparing') AND NOT overdue_notified;

CREATE TABLE ticket_lines (
    ticket_id    uuid    NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    -- The line's position on the ticket, from 1.
    line         integer NOT NULL CHECK (line > 0),
    menu_item_id uuid    NOT NULL,
    -- NULL when the kitchen has never seen the item on a menu.
    name         text,
    quantity     integer NOT NULL CHECK (quantity > 0),
    station      text    NOT NULL,
    notes        text,
    known        boolean NOT NULL,
    done         boolean NOT NULL DEFAULT false,
    PRIMARY KEY (ticket_id, line)
);

-- A station's screen: the tickets with a line for it.
CREATE INDEX ticket_lines_by_station ON ticket_lines (station, ticket_id);

-- The menu items the kitchen has seen, learnt only from menu-events: the
-- name and category a ticket line takes. An item's fields come from the
-- newest event that mentioned it (`name_version`, the menu's version then),
-- so duplicates and out-of-order deliveries converge.
CREATE TABLE menu_items_seen (
    menu_item_id uuid   PRIMARY KEY,
    menu_id      uuid   NOT NULL,
    name         text   NOT NULL,
    category     text   NOT NULL,
    name_version bigint NOT NULL
);
