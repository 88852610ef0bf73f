-- no-transaction
-- Retention (20261208100002): every pod deletes, now and then, the done jobs that
-- finished before the retention period, oldest first in batches. Done jobs are nearly
-- every row of jobs, so the purge finds them through this partial index rather than a
-- scan. CONCURRENTLY, one statement per file: see 20261125000011.
CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_done_finished_idx
    ON jobs (finished_at) WHERE state = 'done';
