-- no-transaction
-- One delivery of an underwriter's resolution per funding check. CONCURRENTLY, one
-- statement per file: see 20261125000011.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS jobs_deliver_funding_review_idx
    ON jobs (funding_check_id) WHERE kind = 'deliver_funding_review';
