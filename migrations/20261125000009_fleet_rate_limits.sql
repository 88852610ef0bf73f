-- Fleet-wide rate limits: one GCRA "theoretical arrival time" per upstream, shared by
-- every pod, advanced with one statement per permit. Each pod's in-process limiter
-- (governor) stays in front as a cheap local gate.
CREATE TABLE rate_limits (
    key  text PRIMARY KEY,
    tat  timestamptz NOT NULL
);
