-- The W3C trace context of the span that sent the saga's latest command: a
-- step the sweep re-sends or compensates after its deadline continues the
-- trace of the order it belongs to. NULL when the service does not export
-- traces.
ALTER TABLE sagas
    ADD COLUMN traceparent text,
    ADD COLUMN tracestate  text;
