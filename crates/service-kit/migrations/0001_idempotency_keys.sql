-- The first successful response to each Idempotency-Key, per caller. It is
-- written in the transaction that created what it describes, together with
-- the business rows and the outbox row, so a key is recorded exactly when
-- its effects are.
CREATE TABLE idempotency_keys (
    caller      text        NOT NULL,
    key         text        NOT NULL,
    fingerprint bytea       NOT NULL,
    status      smallint    NOT NULL,
    headers     jsonb       NOT NULL,
    body        bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, key)
);

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
