-- The foreign key added NOT VALID in 20261125000010: validating it takes a SHARE UPDATE
-- EXCLUSIVE lock, which lets writers go on while it scans.
ALTER TABLE jobs VALIDATE CONSTRAINT jobs_run_id_fkey;
