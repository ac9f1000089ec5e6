-- The inbox: which consumer group has applied which event. A handler's effects
-- and its row here commit together, so a redelivered event changes nothing.
CREATE TABLE processed_events (
    consumer_group text        NOT NULL,
    event_id       uuid        NOT NULL,
    processed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, event_id)
);

CREATE INDEX processed_events_processed_at ON processed_events (processed_at);
