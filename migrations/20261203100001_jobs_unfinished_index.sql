-- no-transaction
-- The metrics sampler of every pod counts the unfinished jobs (queue depth, oldest
-- ready job, delivery lag, dead letters: crates/store/src/stats.rs) every few seconds.
-- Finished jobs are nearly every row and only grow, so the count reads this partial
-- index rather than the table. CONCURRENTLY, one statement per file: see
-- 20261125000011.
CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_unfinished_idx
    ON jobs (kind, state) WHERE state <> 'done';
