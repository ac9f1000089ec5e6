-- Ingredients, recipes, holds for orders and the stock ledger. Every quantity
-- is a whole number of the ingredient's unit (grams, millilitres, pieces).

CREATE TABLE ingredients (
    id                  uuid        PRIMARY KEY,
    name                text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    unit                text        NOT NULL CHECK (unit IN ('g', 'ml', 'piece')),
    on_hand             bigint      NOT NULL CHECK (on_hand >= 0),
    -- Held for orders that have not committed or released yet.
    reserved            bigint      NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    low_stock_threshold bigint      NOT NULL CHECK (low_stock_threshold >= 0),
    -- Whether the last crossing of the threshold was downward, that is
    -- whether IngredientLowStock was published and not yet re-armed.
    low_stock           boolean     NOT NULL DEFAULT false,
    version             bigint      NOT NULL CHECK (version > 0),
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    -- The last line of defence against holding more than there is; the
    -- store's row locks keep requests from ever reaching it.
    CHECK (reserved <= on_hand)
);

-- Names are unique whatever their case: "Flour" and "flour" are one ingredient.
CREATE UNIQUE INDEX ingredients_name_unique ON ingredients (lower(name));

-- Tracked menu items: an item with a recipe. `sold_out` is what the service
-- last published about it (MenuItemSoldOut or MenuItemBackInStock), so that
-- those events are published exactly when the portions left cross zero.
CREATE TABLE recipes (
    menu_item_id uuid        PRIMARY KEY,
    sold_out     boolean     NOT NULL DEFAULT false,
    version      bigint      NOT NULL CHECK (version > 0),
    updated_at   timestamptz NOT NULL
);

-- What one portion of a tracked item uses.
CREATE TABLE recipe_lines (
    menu_item_id  uuid    NOT NULL REFERENCES recipes (menu_item_id) ON DELETE CASCADE,
    ingredient_id uuid    NOT NULL REFERENCES ingredients (id),
    quantity      bigint  NOT NULL CHECK (quantity > 0),
    position      integer NOT NULL,
    PRIMARY KEY (menu_item_id, ingredient_id)
);

CREATE INDEX recipe_lines_by_ingredient ON recipe_lines (ingredient_id);

-- The menu items this service has heard of, learnt only from menu-events.
-- `seen_version` is the version of the newest event that named the item.
CREATE TABLE menu_items_seen (
    menu_item_id uuid   PRIMARY KEY,
    name         text   NOT NULL,
    seen_version bigint NOT NULL
);

-- Stock held for an order. A hold is `held` until the order commits it
-- (the stock is used), releases it, or it expires.
CREATE TABLE holds (
    order_id   uuid        PRIMARY KEY,
    status     text        NOT NULL CHECK (status IN ('held', 'committed', 'released', 'expired')),
    expires_at timestamptz NOT NULL,
    version    bigint      NOT NULL CHECK (version > 0),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

-- The expiry sweep's index: only live holds, by when they lapse.
CREATE INDEX holds_due ON holds (expires_at) WHERE status = 'held';

-- The portions the order asked for.
CREATE TABLE hold_lines (
    order_id     uuid    NOT NULL REFERENCES holds (order_id) ON DELETE CASCADE,
    menu_item_id uuid    NOT NULL,
    quantity     bigint  NOT NULL CHECK (quantity > 0),
    position     integer NOT NULL,
    PRIMARY KEY (order_id, menu_item_id)
);

-- Exactly what the hold reserved of each ingredient, so that releasing or
-- committing it undoes exactly that, even if a recipe changed since.
CREATE TABLE hold_ingredients (
    order_id      uuid   NOT NULL REFERENCES holds (order_id) ON DELETE CASCADE,
    ingredient_id uuid   NOT NULL REFERENCES ingredients (id),
    quantity      bigint NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, ingredient_id)
);

CREATE INDEX hold_ingredients_by_ingredient ON hold_ingredients (ingredient_id);

-- The append-only stock ledger. `quantity` is the signed change of `on_hand`
-- for received, counted, wasted and consumed, and of `reserved` for reserved
-- and released (a consumption also lowers `reserved` by what it used).
CREATE TABLE stock_movements (
    id             bigserial   PRIMARY KEY,
    ingredient_id  uuid        NOT NULL REFERENCES ingredients (id),
    kind           text        NOT NULL
        CHECK (kind IN ('received', 'counted', 'wasted', 'consumed', 'reserved', 'released')),
    quantity       bigint      NOT NULL,
    on_hand_after  bigint      NOT NULL CHECK (on_hand_after >= 0),
    reserved_after bigint      NOT NULL CHECK (reserved_after >= 0),
    order_id       uuid,
    -- Who: a token's subject, or the service that sent the command.
    actor          text        NOT NULL,
    reason         text,
    at             timestamptz NOT NULL
);

CREATE INDEX stock_movements_by_ingredient ON stock_movements (ingredient_id, id);
