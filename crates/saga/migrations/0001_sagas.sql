-- One row per saga: where it is (phase, step, attempts, deadline) and why it
-- ended the way it did. `data` is the saga's own input as jsonb, without a
-- size limit (eventuate's varchar(1000) overflowed for real users).
CREATE TABLE sagas (
    id              uuid        PRIMARY KEY,
    saga_type       text        NOT NULL,
    subject         uuid        NOT NULL,
    data            jsonb       NOT NULL,
    current_step    int         NOT NULL CHECK (current_step >= 0),
    phase           text        NOT NULL CHECK (phase IN ('forward', 'compensation')),
    status          text        NOT NULL CHECK (status IN ('running', 'compensating', 'completed', 'failed', 'stuck')),
    -- Set exactly while a reply is awaited; the sweep re-sends past it.
    step_deadline   timestamptz,
    -- When the current step's (or compensation's) first command was sent: step latency.
    step_started_at timestamptz,
    attempts        int         NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- The id of the command last sent, which replies name as their causation.
    command_id      uuid,
    -- Why the saga compensates or failed.
    reason          text,
    -- Why the saga is stuck, while it is.
    stuck_reason    text,
    correlation_id  text        NOT NULL,
    source          text        NOT NULL,
    version         bigint      NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((status IN ('running', 'compensating')) = (step_deadline IS NOT NULL)),
    CHECK ((status = 'stuck') = (stuck_reason IS NOT NULL))
);

-- The deadline sweep: only sagas awaiting a reply.
CREATE INDEX sagas_due ON sagas (step_deadline) WHERE status IN ('running', 'compensating');
-- Replies find the sagas of their subject.
CREATE INDEX sagas_subject ON sagas (subject, created_at);
-- Operators list by status, newest first.
CREATE INDEX sagas_status ON sagas (status, created_at DESC, id);

-- Everything that happened to a saga, in order: every command sent, every
-- reply received or ignored, every timeout and operator action.
CREATE TABLE saga_history (
    saga_id    uuid        NOT NULL REFERENCES sagas (id) ON DELETE CASCADE,
    seq        int         NOT NULL,
    at         timestamptz NOT NULL,
    kind       text        NOT NULL CHECK (kind IN (
                   'started', 'command_sent', 'compensation_sent', 'reply_received', 'reply_ignored',
                   'timed_out', 'compensating', 'completed', 'failed', 'stuck', 'retried', 'aborted')),
    step       int,
    event_type text,
    event_id   uuid,
    detail     jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (saga_id, seq)
);

-- Duplicate replies and the causation of late ones are looked up by event id.
CREATE INDEX saga_history_event ON saga_history (saga_id, event_id) WHERE event_id IS NOT NULL;
