-- The service role: what `dossier serve` (and the operator commands beside it) may do,
-- which is data manipulation on the tables it uses and nothing else. The migrating
-- user owns the schema; dossier_reporting reads the reporting views (migration 4).
-- Operators log the service in as a user that is a member of dossier_service
-- (docs/deploy.md, "Database roles"); it cannot alter the schema, read the reporting
-- views through their owner's rights, or rewrite the audit.
--
-- Idempotent and tolerant of a lost race like dossier_reporting's: roles are
-- cluster-wide and many databases may be migrated at once. Every later migration that
-- adds a table grants dossier_service what it needs on it.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dossier_service') THEN
        BEGIN
            CREATE ROLE dossier_service NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN
                NULL;
            WHEN insufficient_privilege THEN
                RAISE WARNING 'role dossier_service does not exist and % may not create it; a DBA must create it and rerun these grants (docs/deploy.md)', current_user;
                RETURN;
        END;
    END IF;
    GRANT USAGE ON SCHEMA public TO dossier_service;
    GRANT SELECT ON _sqlx_migrations TO dossier_service;
    GRANT SELECT, INSERT, UPDATE ON applications, evaluation_runs, jobs, rate_limits, sanctions_lists TO dossier_service;
    GRANT SELECT, INSERT ON applicant_secrets, decisions, check_results, reviews, policies TO dossier_service;
    GRANT SELECT, INSERT, DELETE ON sanctions_entries, sanctions_addresses TO dossier_service;
    GRANT SELECT, INSERT, UPDATE, DELETE ON upstream_cache, upstream_fetch_leases TO dossier_service;
    -- The audit is append-only for the service: a request's row is completed once, and
    -- nothing it wrote can be deleted by it.
    GRANT SELECT, INSERT, UPDATE ON upstream_calls TO dossier_service;
    GRANT INSERT ON access_log TO dossier_service;
    GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO dossier_service;
    -- Never the reporting schema: its views run with their owner's rights.
    REVOKE ALL ON SCHEMA reporting FROM dossier_service;
END
$$;
