-- Retention of the two tables that grow with every request (docs/operations.md,
-- "Retention"): the audit trail upstream_calls and the finished jobs. Every pod purges
-- both every few minutes (crates/store/src/retention.rs), in batches.
--
-- The service role may still not DELETE from upstream_calls (20261125000015): it purges
-- through purge_upstream_calls, which runs with its owner's rights and deletes only
-- whole UTC days older than at least 90 days. A stolen service login can no longer
-- keep the audit for ever, but it cannot erase the last 90 days of what the vendors
-- were asked either.

-- How far back each purged table is complete. Only upstream_calls is recorded: the
-- reporting view reads it to tell a purged day (unknown) from a day without requests.
CREATE TABLE retention_horizons (
    table_name    text PRIMARY KEY CHECK (table_name IN ('upstream_calls')),
    -- Rows before this instant (a UTC midnight) have been, or are being, deleted; every
    -- row from it on is kept. It only moves forward.
    purged_before timestamptz NOT NULL,
    advanced_at   timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE retention_horizons IS
    'How far back a purged table is complete: rows before purged_before have been, or are being, deleted (docs/operations.md, Retention).';

-- One batch: deletes at most `batch` rows of upstream_calls from before the UTC day
-- `retain_days` days before today, and returns how many it deleted. The caller calls
-- it again until it deletes fewer than `batch`. Rows another session holds locked are
-- skipped (FOR UPDATE SKIP LOCKED), so pods purging at once do not wait on each other.
-- The horizon is advanced in the same transaction as the first batch of a new day, so
-- a reader never sees a partly deleted day without the horizon that covers it.
CREATE FUNCTION purge_upstream_calls(retain_days int, batch int) RETURNS bigint
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = public, pg_temp
AS $$
DECLARE
    cutoff  timestamptz;
    deleted bigint;
BEGIN
    IF retain_days IS NULL OR retain_days < 90 THEN
        RAISE EXCEPTION 'upstream_calls are kept at least 90 days; a retention of % days is refused', retain_days
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Bounded, so that no caller can make one statement hold many row locks or write a
    -- large burst of WAL.
    IF batch IS NULL OR batch < 1 OR batch > 10000 THEN
        RAISE EXCEPTION 'a purge batch is 1 to 10000 rows; % is refused', batch
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    cutoff := (date_trunc('day', now() AT TIME ZONE 'UTC') - make_interval(days => retain_days))
              AT TIME ZONE 'UTC';
    -- Read first, without a lock: after the day's first batch the horizon is already
    -- there, and the batches of several pods then never queue on its row.
    IF NOT EXISTS (SELECT 1 FROM retention_horizons
                   WHERE table_name = 'upstream_calls' AND purged_before >= cutoff) THEN
        INSERT INTO retention_horizons (table_name, purged_before)
        VALUES ('upstream_calls', cutoff)
        ON CONFLICT (table_name) DO UPDATE
        SET purged_before = greatest(retention_horizons.purged_before, excluded.purged_before),
            advanced_at = now();
    END IF;
    DELETE FROM upstream_calls
    WHERE id IN (SELECT id FROM upstream_calls
                 WHERE called_at < cutoff
                 LIMIT batch
                 FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END
$$;

COMMENT ON FUNCTION purge_upstream_calls(int, int) IS
    'Deletes one batch (at most `batch` rows, 1 to 10000) of upstream_calls from before the UTC day `retain_days` (at least 90) days before today, records the horizon in retention_horizons, and returns the rows deleted.';

-- Functions are executable by PUBLIC by default; this one only by the service.
REVOKE ALL ON FUNCTION purge_upstream_calls(int, int) FROM PUBLIC;

-- Days before the horizon of upstream_calls have lost (some of) their audit rows: their
-- audit columns are NULL (unknown) rather than 0 or a partial count. The cache columns
-- come from check_results, which is not purged, and stay. Same columns, same types, same
-- order as 20261125000004 (CREATE OR REPLACE VIEW keeps the grants).
CREATE OR REPLACE VIEW reporting.upstream_usage AS
WITH horizon AS (
    -- The first complete day of the audit; NULL when nothing was ever purged.
    SELECT (SELECT (r.purged_before AT TIME ZONE 'UTC')::date
            FROM retention_horizons r WHERE r.table_name = 'upstream_calls') AS audited_from
), calls AS (
    SELECT (u.called_at AT TIME ZONE 'UTC')::date                          AS day,
           u.upstream,
           count(*)                                                        AS requests,
           count(*) FILTER (WHERE u.outcome NOT IN ('ok', 'not_found'))    AS errors,
           sum(u.cost_cents)                                               AS cost_cents,
           avg(u.cost_cents)                                               AS unit_cost_cents,
           avg(u.latency_ms)                                               AS mean_latency_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY u.latency_ms)      AS p95_latency_ms
    FROM upstream_calls u
    GROUP BY 1, 2
), answers AS (
    -- One row per upstream answer a run used: the checks fed by one answer share its
    -- upstream, fetched_at and cache outcome.
    SELECT c.run_id, c.upstream, c.fetched_at, c.cache,
           (min(c.finished_at) AT TIME ZONE 'UTC')::date AS day
    FROM check_results c
    WHERE c.upstream IS NOT NULL
      AND c.cache IN ('fetched', 'l1_hit', 'l2_hit', 'coalesced', 'stale')
    GROUP BY c.run_id, c.upstream, c.fetched_at, c.cache
), cache AS (
    SELECT day,
           upstream,
           count(*)                                                          AS answers,
           count(*) FILTER (WHERE cache IN ('l1_hit', 'l2_hit', 'coalesced', 'stale')) AS cache_hits
    FROM answers
    GROUP BY 1, 2
), joined AS (
    SELECT coalesce(k.day, h.day)                                    AS day,
           coalesce(k.upstream, h.upstream)                          AS upstream,
           k.requests, k.errors, k.cost_cents, k.unit_cost_cents,
           k.mean_latency_ms, k.p95_latency_ms, h.answers, h.cache_hits,
           coalesce(k.day, h.day) >= coalesce(z.audited_from, '-infinity'::date) AS audited
    FROM calls k
    FULL JOIN cache h ON h.day = k.day AND h.upstream = k.upstream
    CROSS JOIN horizon z
)
SELECT day,
       upstream,
       CASE WHEN audited THEN coalesce(requests, 0) END                  AS requests,
       CASE WHEN audited THEN coalesce(errors, 0) END                    AS errors,
       CASE WHEN audited THEN coalesce(cost_cents, 0) END                AS cost_cents,
       CASE WHEN audited THEN round(mean_latency_ms, 1) END              AS mean_latency_ms,
       CASE WHEN audited THEN round(p95_latency_ms::numeric, 1) END      AS p95_latency_ms,
       coalesce(answers, 0)                                              AS answers,
       coalesce(cache_hits, 0)                                           AS cache_hits,
       CASE WHEN coalesce(answers, 0) > 0
            THEN round(cache_hits::numeric / answers, 4) END             AS cache_hit_rate,
       CASE WHEN audited THEN round(coalesce(unit_cost_cents, 0), 2) END AS unit_cost_cents,
       CASE WHEN audited
            THEN round(coalesce(cache_hits, 0) * coalesce(unit_cost_cents, 0), 2) END AS cost_saved_cents
FROM joined;

COMMENT ON VIEW reporting.upstream_usage IS
    'Per UTC day and upstream. From the audit trail (upstream_calls, every real request, DataService look-ups included): requests, errors (outcome other than ok or not_found), cost_cents (sum), mean and p95 latency (ms). From check results (underwriting runs only): answers = distinct upstream answers the runs used (fetched or from cache), cache_hits = those served by L1, L2, coalescing or stale cache, cache_hit_rate = cache_hits / answers. unit_cost_cents = mean cost_cents of that day''s audited calls to the upstream (0 without calls); cost_saved_cents = cache_hits x unit_cost_cents, an estimate. Days before the audit''s retention horizon (retention_horizons) have NULL requests, errors, cost, latency, unit cost and savings: their audit rows were purged. See docs/reporting.md.';

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dossier_service') THEN
        -- Its own queue's finished rows (crates/store/src/retention.rs); the audit only
        -- through the function above.
        GRANT DELETE ON jobs TO dossier_service;
        GRANT EXECUTE ON FUNCTION purge_upstream_calls(int, int) TO dossier_service;
    END IF;
END
$$;
