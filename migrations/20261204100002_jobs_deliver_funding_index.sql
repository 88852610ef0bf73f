-- no-transaction
-- One delivery per funding check, whatever happens to the statement that writes it.
-- CONCURRENTLY, one statement per file: see 20261125000011.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS jobs_deliver_funding_idx
    ON jobs (funding_check_id) WHERE kind = 'deliver_funding';
