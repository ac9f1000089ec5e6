-- The W3C trace context (`traceparent`, and `tracestate` when it has one) of
-- the span that created each event: the relay puts it on the stream entry as
-- fields of the same names, and consumers continue the trace from it. NULL
-- when the writer does not export traces. Nullable columns without a default:
-- adding them rewrites nothing, however many rows wait.
ALTER TABLE outbox
    ADD COLUMN traceparent text,
    ADD COLUMN tracestate  text;
