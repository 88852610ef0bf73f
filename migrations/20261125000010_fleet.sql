-- Many pods, one truth: the decision outbox, fleet-wide fetch leases, dead letters in
-- reporting. Additive only, and written to take no lock that blocks writers for longer
-- than a catalogue update (pods keep serving while it runs): no table rewrite, no
-- validating scan, no index build here (indexes: 20261125000011 and _12, CONCURRENTLY).

-- The outbox: a decision's delivery to the Rails backend is a job of kind 'deliver'
-- written in the same statement as the decision (store/reports.rs). `run_id` names the
-- decision (one per run); it is also the delivery's idempotency key. Workers of this
-- release on claim only the kinds they know (store/jobs.rs KNOWN_KINDS). The foreign
-- key is added NOT VALID (no scan under lock) and validated in 20261125000013.
ALTER TABLE jobs ADD COLUMN run_id uuid;
ALTER TABLE jobs ADD CONSTRAINT jobs_run_id_fkey
    FOREIGN KEY (run_id) REFERENCES evaluation_runs (id) ON DELETE CASCADE NOT VALID;

-- An underwriter's review is a decision too: delivered as a job of kind
-- 'deliver_review' (one per application, as reviews are), under the review's own id.
-- Column first, default second: a volatile default in ADD COLUMN would rewrite the
-- table. Reviews made before this release have no id and are not delivered.
ALTER TABLE reviews ADD COLUMN id uuid;
ALTER TABLE reviews ALTER COLUMN id SET DEFAULT gen_random_uuid();

-- When a worker first claimed the job: queue pickup latency (first_claimed_at -
-- created_at) for operators and `dossier bench`.
ALTER TABLE jobs ADD COLUMN first_claimed_at timestamptz;

-- Fleet-wide coalescing: the pod that misses the shared cache first takes a lease on the
-- question and fetches; other pods wait for its fill (NOTIFY dossier_cache_fill) or for
-- the lease to lapse. UNLOGGED: a lease is worth nothing after a crash, and writing one
-- must not wait for a WAL flush on the cold path.
CREATE UNLOGGED TABLE upstream_fetch_leases (
    upstream   text NOT NULL,
    kind       text NOT NULL,
    key        bytea NOT NULL,
    holder     text NOT NULL,
    until      timestamptz NOT NULL,
    -- Set by the fill: the answer is in upstream_cache and fresh until then. The row is
    -- kept (not deleted) so that a pod whose read missed the fill (its snapshot was
    -- taken just before it committed) conflicts with it instead of taking a new lease.
    fresh_until timestamptz,
    PRIMARY KEY (upstream, kind, key)
);

-- Fleet rate-limit state needs no crash safety either (a crash forgets the TATs: at
-- worst one extra burst), and a permit must not wait for a WAL flush.
ALTER TABLE rate_limits SET UNLOGGED;

-- Work that exhausted its attempts, for operators and underwriters. No PII: the error
-- text of a job is written by Dossier (upstream errors mask digit runs).
CREATE VIEW reporting.dead_letters AS
SELECT j.id                AS job_id,
       j.kind,
       j.application_id,
       j.run_id,
       j.attempts,
       j.max_attempts,
       j.last_error,
       j.created_at,
       j.finished_at       AS dead_since
FROM jobs j
WHERE j.state = 'dead';

COMMENT ON VIEW reporting.dead_letters IS
    'Jobs that exhausted their attempts (state dead): kind (evaluate = run the checks and decide; deliver = send a decision to the Rails backend; deliver_review = send an underwriter''s review to the Rails backend), the application and decision run, attempts, the last error and since when. Re-run one with `dossier jobs retry JOB_ID` (docs/operations.md).';
