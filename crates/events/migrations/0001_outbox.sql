-- Events waiting to be published, written in the same transaction as the state change.
CREATE TABLE outbox (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     uuid        NOT NULL UNIQUE,
    stream       text        NOT NULL,
    event_type   text        NOT NULL,
    aggregate_id uuid        NOT NULL,
    version      bigint      NOT NULL,
    occurred_at  timestamptz NOT NULL,
    data         jsonb       NOT NULL,
    metadata     jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);

-- The relay reads the head of the unpublished queue; pruning reads the published tail.
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
