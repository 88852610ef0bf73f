-- no-transaction
-- The review-queue metrics (crates/store/src/stats.rs) read the REFER decisions of
-- every pod every few seconds; approvals and declines are most rows and never matter
-- to them. CONCURRENTLY, one statement per file: see 20261125000011.
CREATE INDEX CONCURRENTLY IF NOT EXISTS decisions_refer_idx
    ON decisions (application_id) WHERE decision = 'refer';
