CREATE TABLE menus (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL,
    description text,
    status      text        NOT NULL CHECK (status IN ('draft', 'active', 'inactive')),
    version     bigint      NOT NULL CHECK (version > 0),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE INDEX menus_by_status ON menus (status, created_at, id);
CREATE INDEX menus_by_creation ON menus (created_at, id);

CREATE TABLE menu_items (
    id          uuid    PRIMARY KEY,
    menu_id     uuid    NOT NULL REFERENCES menus (id) ON DELETE CASCADE,
    position    integer NOT NULL,
    name        text    NOT NULL,
    description text,
    category    text    NOT NULL,
    price_cents bigint  NOT NULL CHECK (price_cents >= 0),
    currency    text    NOT NULL CHECK (length(currency) = 3),
    available   boolean NOT NULL
);

CREATE UNIQUE INDEX menu_items_unique_name ON menu_items (menu_id, lower(name));
CREATE INDEX menu_items_by_menu ON menu_items (menu_id, position);
