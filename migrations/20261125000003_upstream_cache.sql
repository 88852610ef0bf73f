-- L2 cache of upstream answers, shared by every pod. Keys are keyed hashes of the
-- question (a question may contain an SSN). `body` is NULL for "not found" answers.
CREATE TABLE upstream_cache (
    upstream     text NOT NULL,
    kind         text NOT NULL,
    key          bytea NOT NULL,
    body         jsonb,
    fetched_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    stale_until  timestamptz NOT NULL,
    PRIMARY KEY (upstream, kind, key)
);

CREATE INDEX upstream_cache_stale_idx ON upstream_cache (stale_until);

-- How each check's data was obtained (fetched, l1_hit, l2_hit, coalesced, stale, local).
ALTER TABLE check_results ADD COLUMN cache text;
