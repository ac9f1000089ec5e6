-- An item's availability is two facts: the staff's switch, and whether the
-- inventory has stock for it (learnt from inventory-events, in the order of
-- that stream's versions for the item).
ALTER TABLE menu_items RENAME COLUMN available TO switched_on;
ALTER TABLE menu_items
    ADD COLUMN in_stock      boolean NOT NULL DEFAULT true,
    ADD COLUMN stock_version bigint  NOT NULL DEFAULT 0;
