-- no-transaction
-- One delivery per sanctions alert. CONCURRENTLY, one statement per file: see
-- 20261125000011.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS jobs_deliver_sanctions_alert_idx
    ON jobs (sanctions_alert_id) WHERE kind = 'deliver_sanctions_alert';
