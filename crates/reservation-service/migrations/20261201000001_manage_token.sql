-- The guest's capability to read and cancel their own booking: only the
-- SHA-256 of the secret handed out once in the booking's 201 is kept, so a
-- leaked database row does not let anyone manage the booking. NULL for
-- bookings made before there were manage tokens (staff manage those).
ALTER TABLE reservations ADD COLUMN manage_token_hash bytea CHECK (octet_length(manage_token_hash) = 32);
