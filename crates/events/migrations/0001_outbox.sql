-- Events waiting to be published, written in the same transaction as the state
-- change. The relay deletes a row in the transaction that publishes it: the
-- table is a queue, and the capped Redis stream is the history.
-- `data` and `metadata` are `json`, not `jsonb`: stored as written, read back
-- without conversion.
CREATE TABLE outbox (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     uuid        NOT NULL,
    stream       text        NOT NULL,
    event_type   text        NOT NULL,
    aggregate_id uuid        NOT NULL,
    version      bigint      NOT NULL,
    occurred_at  timestamptz NOT NULL,
    data         json        NOT NULL,
    metadata     json        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
