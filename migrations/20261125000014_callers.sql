-- Callers named where they act (issue 11).
--
-- Who submitted each application: the access policy's name for the caller
-- ("anonymous" when client authentication is off) and the SPIFFE ID its connection
-- proved. Idempotency keys belong to the caller that used them, so one caller can
-- neither replay nor block another's key. The global UNIQUE (idempotency_key) of
-- earlier releases stays until a later, contracting migration drops it: releases
-- before this one insert with ON CONFLICT (idempotency_key) and must keep working
-- during a rolling upgrade. Until then keys remain unique across callers too, and a key
-- another caller used is refused as already used, naming nothing.
ALTER TABLE applications
    ADD COLUMN submitted_by    text NOT NULL DEFAULT 'anonymous',
    ADD COLUMN submitted_by_id text;
ALTER TABLE applications
    ADD CONSTRAINT applications_caller_idempotency_key UNIQUE (submitted_by, idempotency_key);
-- ListReports for a caller that may read only its own applications.
CREATE INDEX applications_submitted_by_idx ON applications (submitted_by, created_at DESC, id DESC);

-- Every access to an application or a person, by whom, through which method and, for
-- person look-ups, for what stated purpose. Written before the answer leaves, so an
-- access the caller received is never missing. Person look-ups are recorded by a keyed
-- hash of the SSN (person_ref), never the SSN: an auditor holding the key can ask who
-- looked up a given person, nobody else can learn who it was.
CREATE TABLE access_log (
    id             bigserial PRIMARY KEY,
    accessed_at    timestamptz NOT NULL DEFAULT now(),
    caller         text NOT NULL,
    caller_id      text,
    method         text NOT NULL,
    application_id uuid,
    person_ref     bytea,
    purpose        text,
    CHECK (application_id IS NOT NULL OR person_ref IS NOT NULL)
);
CREATE INDEX access_log_accessed_idx ON access_log (accessed_at);
CREATE INDEX access_log_application_idx ON access_log (application_id) WHERE application_id IS NOT NULL;
CREATE INDEX access_log_person_idx ON access_log (person_ref) WHERE person_ref IS NOT NULL;

CREATE VIEW reporting.access_log AS
SELECT l.accessed_at,
       l.caller,
       l.caller_id,
       l.method,
       l.application_id,
       encode(l.person_ref, 'hex') AS person_ref,
       l.purpose
FROM access_log l;

COMMENT ON VIEW reporting.access_log IS
    'Every access to an application (submit, evaluate, report, list, watch, review, refresh) or a person look-up (DataService.GetPersonProfile), one row per application or person: when, the caller (the access policy''s name; anonymous without client authentication), the SPIFFE ID its connection proved, the method, the application, person_ref (hex of a keyed hash of the SSN, never the SSN; equal for the same person) and the purpose the caller stated for a person look-up. See docs/security.md.';

-- The reporting role reads every view of the schema (default privileges of migration
-- 4); grant explicitly too, for databases migrated by a user without those defaults.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dossier_reporting') THEN
        GRANT SELECT ON reporting.access_log TO dossier_reporting;
    END IF;
END
$$;
