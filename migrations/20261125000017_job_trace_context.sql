-- The W3C trace context (the `traceparent` header value) of the call that queued a job,
-- so the background evaluation or delivery continues the submitting caller's trace.
-- Nullable: jobs queued before this release, and calls that carried no trace, have none.
-- Bounded: a traceparent is 55 characters; anything longer was never one.
ALTER TABLE jobs
    ADD COLUMN trace_parent text CHECK (length(trace_parent) <= 64);
