-- no-transaction
-- One delivery per decision, whatever happens to the statement that writes it.
--
-- Built CONCURRENTLY so writes to jobs go on while pods serve. That cannot run in a
-- transaction, and PostgreSQL runs a multi-statement query as one, hence one statement
-- per file (this one, ..._12, ..._13). If the build is cut short, PostgreSQL keeps an
-- INVALID index that IF NOT EXISTS would skip: drop it (DROP INDEX CONCURRENTLY
-- jobs_deliver_run_idx) before running `dossier migrate` again (docs/operations.md,
-- "Migrations").
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS jobs_deliver_run_idx
    ON jobs (run_id) WHERE kind = 'deliver';
