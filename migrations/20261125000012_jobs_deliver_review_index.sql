-- no-transaction
-- One delivery per review (reviews are one per application). CONCURRENTLY, one
-- statement per file: see 20261125000011.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS jobs_deliver_review_idx
    ON jobs (application_id) WHERE kind = 'deliver_review';
