-- Sealed values bound to their row (issue 11).
--
-- applicant_secrets.seal_version: 1 = the associated data is the column name only
-- ("ssn", "dob"), as sealed by earlier releases, which keep inserting such rows during
-- a rolling upgrade (the default); 2 = it also names the row (application id and
-- position), so a value copied into another row fails to open. `dossier keys rotate`
-- re-seals version 1 rows as version 2 under the active key.
ALTER TABLE applicant_secrets
    ADD COLUMN seal_version smallint NOT NULL DEFAULT 1 CHECK (seal_version IN (1, 2));

-- The personal part of a run's inputs (identity, bankruptcy, income and sanctions
-- screening of each applicant) sealed apart from the rest, bound to the run;
-- inputs->'applicants' is then NULL. Runs of earlier releases keep them in `inputs`
-- until `dossier keys rotate` seals them.
ALTER TABLE evaluation_runs
    ADD COLUMN inputs_sealed bytea,
    ADD COLUMN inputs_key_id text,
    ADD CONSTRAINT evaluation_runs_inputs_sealed_key
        CHECK ((inputs_sealed IS NULL) = (inputs_key_id IS NULL));

-- `dossier keys rotate` re-seals rows in place, as the service role.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dossier_service') THEN
        GRANT UPDATE ON applicant_secrets TO dossier_service;
    END IF;
END
$$;
