-- Reporting for underwriters: read-only views in their own schema, and a role that can
-- read those views and nothing else. Additive only, like every migration here.
-- docs/reporting.md explains every view, its columns and the role.
--
-- Rules for these views:
--   * No view exposes a name, SSN, date of birth, email, sealed column, lookup hash,
--     evidence or figures blob, idempotency key or upstream error text.
--   * "day" is always a UTC calendar date (`(ts AT TIME ZONE 'UTC')::date`), so the
--     numbers do not depend on the reader's session time zone.
--   * An application's current decision is the decision of its latest decided run
--     (latest decisions.decided_at, ties broken by run id).
--   * Views run with their owner's rights (the migrating user, who owns the tables), so
--     dossier_reporting needs no rights on the tables underneath.

CREATE SCHEMA reporting;

COMMENT ON SCHEMA reporting IS
    'Read-only reporting views for underwriters (docs/reporting.md). No PII.';

-- Applications by submission day, status and current decision.
CREATE VIEW reporting.pipeline AS
SELECT (a.created_at AT TIME ZONE 'UTC')::date AS day,
       a.status,
       cd.decision,
       count(*)                                AS count
FROM applications a
LEFT JOIN LATERAL (
    SELECT d.decision
    FROM decisions d
    WHERE d.application_id = a.id
    ORDER BY d.decided_at DESC, d.run_id DESC
    LIMIT 1
) cd ON true
GROUP BY 1, 2, 3;

COMMENT ON VIEW reporting.pipeline IS
    'Applications per UTC day of submission (applications.created_at), status (pending, running, decided) and current decision (approved, declined, refer; NULL while undecided). The current decision is that of the latest decided run.';

-- Reason codes of current DECLINED decisions, by submission day.
CREATE VIEW reporting.decline_reasons AS
WITH current AS (
    SELECT (a.created_at AT TIME ZONE 'UTC')::date AS day, cd.reason_codes
    FROM applications a
    JOIN LATERAL (
        SELECT d.decision, d.reason_codes
        FROM decisions d
        WHERE d.application_id = a.id
        ORDER BY d.decided_at DESC, d.run_id DESC
        LIMIT 1
    ) cd ON true
    WHERE cd.decision = 'declined'
), per_day AS (
    SELECT day, count(*) AS total FROM current GROUP BY day
)
SELECT c.day,
       r.reason_code,
       count(*)                                 AS count,
       round(count(*)::numeric / p.total, 4)    AS share
FROM current c
-- DISTINCT: a code listed twice on one decision counts once.
CROSS JOIN LATERAL (SELECT DISTINCT unnest(c.reason_codes)) AS r(reason_code)
JOIN per_day p ON p.day = c.day
GROUP BY c.day, r.reason_code, p.total;

COMMENT ON VIEW reporting.decline_reasons IS
    'Reason codes of applications whose current decision is declined, per UTC day of submission: count = declined applications carrying the code (a code listed twice on one decision counts once), share = count / that day''s declined applications. A decision has one or more codes, so shares of a day can add up to more than 1.';

-- Reason codes of current REFER decisions, by submission day.
CREATE VIEW reporting.refer_reasons AS
WITH current AS (
    SELECT (a.created_at AT TIME ZONE 'UTC')::date AS day, cd.reason_codes
    FROM applications a
    JOIN LATERAL (
        SELECT d.decision, d.reason_codes
        FROM decisions d
        WHERE d.application_id = a.id
        ORDER BY d.decided_at DESC, d.run_id DESC
        LIMIT 1
    ) cd ON true
    WHERE cd.decision = 'refer'
), per_day AS (
    SELECT day, count(*) AS total FROM current GROUP BY day
)
SELECT c.day,
       r.reason_code,
       count(*)                                 AS count,
       round(count(*)::numeric / p.total, 4)    AS share
FROM current c
-- DISTINCT: a code listed twice on one decision counts once.
CROSS JOIN LATERAL (SELECT DISTINCT unnest(c.reason_codes)) AS r(reason_code)
JOIN per_day p ON p.day = c.day
GROUP BY c.day, r.reason_code, p.total;

COMMENT ON VIEW reporting.refer_reasons IS
    'Reason codes of applications whose current decision is refer, per UTC day of submission: count = referred applications carrying the code (a code listed twice on one decision counts once), share = count / that day''s referred applications. Shares of a day can add up to more than 1.';

-- Every recorded check result, by the UTC day it finished, and check kind.
CREATE VIEW reporting.check_outcomes AS
SELECT (c.finished_at AT TIME ZONE 'UTC')::date                                  AS day,
       c.kind,
       count(*)                                                                  AS checks,
       count(*) FILTER (WHERE c.outcome = 'pass')                                AS pass,
       count(*) FILTER (WHERE c.outcome = 'fail')                                AS fail,
       count(*) FILTER (WHERE c.outcome = 'review')                              AS review,
       count(*) FILTER (WHERE c.outcome = 'unavailable')                         AS unavailable,
       round(count(*) FILTER (WHERE c.outcome = 'pass')::numeric / count(*), 4)  AS pass_rate,
       round(count(*) FILTER (WHERE c.outcome = 'fail')::numeric / count(*), 4)  AS fail_rate,
       round(count(*) FILTER (WHERE c.outcome = 'review')::numeric / count(*), 4) AS review_rate,
       round(count(*) FILTER (WHERE c.outcome = 'unavailable')::numeric / count(*), 4) AS unavailable_rate
FROM check_results c
GROUP BY 1, 2;

COMMENT ON VIEW reporting.check_outcomes IS
    'Check results per UTC day the check finished (check_results.finished_at) and check kind: counts of pass, fail, review and unavailable, and each as a rate of checks. Every recorded result counts: one per subject (applicant 1, applicant 2, ...) and per run.';

-- Applications waiting for an underwriter: current decision REFER.
-- TODO(reviews): when the reviews table lands, add
--     AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.application_id = a.id)
-- in a new migration (CREATE OR REPLACE VIEW, same columns in the same order).
-- security_barrier: the role's own WHERE clauses (even with a leaky function) run only
-- on the rows this view returns.
CREATE VIEW reporting.review_queue WITH (security_barrier) AS
SELECT a.id                                                       AS application_id,
       a.source,
       a.rails_application_id,
       a.created_at,
       cd.decided_at,
       date_trunc('second', now() - cd.decided_at)                AS age,
       cd.reason_codes,
       cd.policy_version,
       a.application -> 'property' -> 'address' ->> 'city'        AS property_city,
       a.application -> 'property' -> 'address' ->> 'state'       AS property_state,
       (a.application -> 'financing' ->> 'amount_cents')::bigint  AS amount_cents,
       (a.application -> 'financing' ->> 'term_years')::int       AS term_years,
       ARRAY(SELECT m ->> 'kind'
             FROM jsonb_array_elements(coalesce(a.application -> 'measures', '[]'::jsonb)) AS m)
                                                                  AS measures,
       jsonb_array_length(coalesce(a.application -> 'applicants', '[]'::jsonb))
                                                                  AS applicants
FROM applications a
JOIN LATERAL (
    SELECT d.decision, d.reason_codes, d.policy_version, d.decided_at
    FROM decisions d
    WHERE d.application_id = a.id
    ORDER BY d.decided_at DESC, d.run_id DESC
    LIMIT 1
) cd ON true
WHERE cd.decision = 'refer'
ORDER BY cd.decided_at, a.created_at, a.id;

COMMENT ON VIEW reporting.review_queue IS
    'Applications whose current decision is refer, oldest referral first. age = time since that decision (whole seconds). The summary has no PII: property city and state, financing amount (cents) and term (years), measure kinds and the number of applicants. Until the reviews table exists this lists every referred application, reviewed or not.';

-- Time from submission to first decision, by submission day.
CREATE VIEW reporting.turnaround AS
WITH firsts AS (
    SELECT a.id,
           (a.created_at AT TIME ZONE 'UTC')::date                      AS day,
           extract(epoch FROM min(d.decided_at) - a.created_at)::float8 AS seconds
    FROM applications a
    JOIN decisions d ON d.application_id = a.id
    GROUP BY a.id, a.created_at
)
SELECT day,
       count(*)                                                                    AS decided,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds)::numeric, 3)     AS p50_seconds,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds)::numeric, 3)    AS p95_seconds,
       round(max(seconds)::numeric, 3)                                             AS max_seconds
FROM firsts
GROUP BY day;

COMMENT ON VIEW reporting.turnaround IS
    'Per UTC day of submission: decided applications and the 50th and 95th percentiles (percentile_cont, interpolated) and maximum of the seconds from submission (applications.created_at) to the first decision. Re-evaluations do not move an application''s turnaround.';

-- Upstream requests (audited) and answers served from cache (from check results).
CREATE VIEW reporting.upstream_usage AS
WITH calls AS (
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
)
SELECT coalesce(k.day, h.day)                                  AS day,
       coalesce(k.upstream, h.upstream)                        AS upstream,
       coalesce(k.requests, 0)                                 AS requests,
       coalesce(k.errors, 0)                                   AS errors,
       coalesce(k.cost_cents, 0)                               AS cost_cents,
       round(k.mean_latency_ms, 1)                             AS mean_latency_ms,
       round(k.p95_latency_ms::numeric, 1)                     AS p95_latency_ms,
       coalesce(h.answers, 0)                                  AS answers,
       coalesce(h.cache_hits, 0)                               AS cache_hits,
       CASE WHEN coalesce(h.answers, 0) > 0
            THEN round(h.cache_hits::numeric / h.answers, 4) END AS cache_hit_rate,
       round(coalesce(k.unit_cost_cents, 0), 2)                AS unit_cost_cents,
       round(coalesce(h.cache_hits, 0) * coalesce(k.unit_cost_cents, 0), 2) AS cost_saved_cents
FROM calls k
FULL JOIN cache h ON h.day = k.day AND h.upstream = k.upstream;

COMMENT ON VIEW reporting.upstream_usage IS
    'Per UTC day and upstream. From the audit trail (upstream_calls, every real request, DataService look-ups included): requests, errors (outcome other than ok or not_found), cost_cents (sum), mean and p95 latency (ms). From check results (underwriting runs only): answers = distinct upstream answers the runs used (fetched or from cache), cache_hits = those served by L1, L2, coalescing or stale cache, cache_hit_rate = cache_hits / answers. unit_cost_cents = mean cost_cents of that day''s audited calls to the upstream (0 without calls); cost_saved_cents = cache_hits x unit_cost_cents, an estimate. See docs/reporting.md.';

-- The reporting role: USAGE on the schema, SELECT on its views, nothing else.
-- Roles are cluster-wide and many databases may be migrated at once (tests), so
-- creating it is idempotent and tolerates losing the race; grants are per database.
-- Creating a role needs CREATEROLE: a migrating user without it only gets a warning,
-- and a DBA creates the role and reruns the grants (docs/reporting.md).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dossier_reporting') THEN
        BEGIN
            CREATE ROLE dossier_reporting NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN
                NULL; -- another database's migration created it just now
            WHEN insufficient_privilege THEN
                RAISE WARNING 'role dossier_reporting does not exist and % may not create it; reporting views are not granted to anyone (see docs/reporting.md)', current_user;
                RETURN;
        END;
    END IF;
    -- Nothing in public (PostgreSQL 15 already took CREATE on public from PUBLIC; the
    -- tables there grant nothing to PUBLIC).
    REVOKE ALL ON SCHEMA public FROM dossier_reporting;
    GRANT USAGE ON SCHEMA reporting TO dossier_reporting;
    GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO dossier_reporting;
    -- Views later migrations add to reporting (as this same user) are readable too.
    ALTER DEFAULT PRIVILEGES IN SCHEMA reporting GRANT SELECT ON TABLES TO dossier_reporting;
END
$$;
