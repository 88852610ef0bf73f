-- Cost-aware evaluation: a frugal evaluation leaves the checks it did not need NOT_RUN;
-- every decision records how it asked its vendors and what it spent; a check records
-- the waterfall vendors passed over before the one that answered.

-- A named constraint, so a later release can change it without guessing the name.
ALTER TABLE check_results DROP CONSTRAINT check_results_outcome_check;
-- NOT VALID here, validated by the next migration in its own transaction: the scan
-- of existing rows then holds no lock that blocks writes.
ALTER TABLE check_results ADD CONSTRAINT check_results_outcome_check
    CHECK (outcome IN ('pass', 'fail', 'review', 'unavailable', 'not_run')) NOT VALID;

-- [{"upstream": "valuation", "reason": "low_confidence"}, ...]; NULL when the first
-- vendor answered.
ALTER TABLE check_results ADD COLUMN passed_over jsonb;

-- NULL on decisions recorded before spending was kept (all of them parallel).
ALTER TABLE decisions
    ADD COLUMN evaluation_mode text CHECK (evaluation_mode IN ('parallel', 'frugal')),
    ADD COLUMN vendor_cost_cents bigint,
    ADD COLUMN vendor_cost_avoided_cents bigint;

-- Not-run checks get their own column; the other columns keep their names and order
-- (CREATE OR REPLACE VIEW may only add columns at the end).
CREATE OR REPLACE VIEW reporting.check_outcomes AS
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
       round(count(*) FILTER (WHERE c.outcome = 'unavailable')::numeric / count(*), 4) AS unavailable_rate,
       count(*) FILTER (WHERE c.outcome = 'not_run')                             AS not_run
FROM check_results c
GROUP BY 1, 2;

COMMENT ON VIEW reporting.check_outcomes IS
    'Check results per UTC day the check finished (check_results.finished_at) and check kind: counts of pass, fail, review, unavailable and not_run (skipped by a frugal evaluation that had already declined), and the first four as a rate of checks. Every recorded result counts: one per subject (applicant 1, applicant 2, ...) and per run.';

-- What vendors cost, per UTC day of decision and evaluation mode.
CREATE VIEW reporting.vendor_cost AS
SELECT (d.decided_at AT TIME ZONE 'UTC')::date                              AS day,
       d.evaluation_mode                                                    AS mode,
       count(*)                                                             AS decisions,
       count(*) FILTER (WHERE d.decision = 'approved')                      AS approved,
       sum(d.vendor_cost_cents)::bigint                                     AS spent_cents,
       sum(d.vendor_cost_avoided_cents)::bigint                             AS avoided_cents,
       round(avg(d.vendor_cost_cents), 1)                                   AS spent_per_decision_cents,
       round(sum(d.vendor_cost_cents)::numeric
             / nullif(count(*) FILTER (WHERE d.decision = 'approved'), 0), 1) AS spent_per_approval_cents
FROM decisions d
WHERE d.vendor_cost_cents IS NOT NULL
GROUP BY 1, 2;

COMMENT ON VIEW reporting.vendor_cost IS
    'Vendor spending per UTC day of decision and evaluation mode (parallel or frugal), every run counted (refreshes too): decisions, approved, spent_cents = answers fetched from vendors at their cost_cents (cache hits, not-found answers and failures cost nothing), avoided_cents = the requests frugal evaluations did not make at their first vendor''s price, and spent per decision and per approval. Decisions recorded before spending was kept are left out. No PII.';

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dossier_reporting') THEN
        GRANT SELECT ON reporting.vendor_cost TO dossier_reporting;
    END IF;
END
$$;
