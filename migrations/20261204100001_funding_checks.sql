-- Pre-funding re-verification (PrepareFunding): before an approved application is
-- funded, the changeable facts are asked again and the checks re-run with the final
-- amount and measures. Each such check is kept here, beside the decisions, never
-- replacing one: the approval stays what it was, and the funding check says whether it
-- still holds (CLEAR) or needs an underwriter (HOLD).
CREATE TABLE funding_checks (
    id              uuid PRIMARY KEY,
    application_id  uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    -- The approved run whose evidence this check was compared against.
    approval_run_id uuid NOT NULL REFERENCES evaluation_runs (id) ON DELETE CASCADE,
    verdict         text NOT NULL CHECK (verdict IN ('clear', 'hold')),
    -- For a HOLD, the codes of the checks that drove it (as a decision lists them).
    reason_codes    text[] NOT NULL DEFAULT '{}',
    -- For an approval an underwriter gave to a REFER: that REFER's codes, which the
    -- underwriter accepted (referring again for them alone is CLEAR). NULL otherwise.
    accepted_codes  text[],
    -- core::funding::EvidenceChange, in order: what differs from the approval.
    changes         jsonb NOT NULL DEFAULT '[]',
    -- Every check result of the re-run.
    checks          jsonb NOT NULL DEFAULT '[]',
    -- The final amount and term the checks were run with.
    financing       jsonb NOT NULL,
    -- The inputs, for replay: the clear part here, the applicants' part sealed under
    -- the key named (crates/store/src/run_inputs.rs, bound to this row's id).
    inputs          jsonb NOT NULL,
    inputs_sealed   bytea,
    inputs_key_id   text,
    policy_version  text NOT NULL,
    policy_hash     text NOT NULL,
    checked_at      timestamptz NOT NULL DEFAULT now(),
    -- An underwriter's resolution of a HOLD: fund after all, or decline.
    resolution      text CHECK (resolution IN ('clear', 'decline')),
    resolved_by     text,
    resolution_note text,
    resolved_at     timestamptz,
    CONSTRAINT funding_checks_inputs_sealed_key
        CHECK ((inputs_sealed IS NULL) = (inputs_key_id IS NULL)),
    CONSTRAINT funding_checks_resolution_of_a_hold
        CHECK (resolution IS NULL OR verdict = 'hold'),
    CONSTRAINT funding_checks_resolution_complete
        CHECK ((resolution IS NULL) = (resolved_by IS NULL) AND (resolution IS NULL) = (resolved_at IS NULL))
);

CREATE INDEX funding_checks_application_idx ON funding_checks (application_id, checked_at DESC);
-- The holds awaiting an underwriter, oldest first (reporting.funding_holds).
CREATE INDEX funding_checks_open_holds_idx ON funding_checks (checked_at)
    WHERE verdict = 'hold' AND resolution IS NULL;

-- A funding check's delivery to Rails is a job like a decision's. All existing rows are
-- NULL, so NOT VALID loses nothing and skips the scan under lock.
ALTER TABLE jobs ADD COLUMN funding_check_id uuid;
-- A job's arguments that are no row of their own: the final terms of a funding check
-- Rails queued (PrepareFunding with queue = true).
ALTER TABLE jobs ADD COLUMN payload jsonb;
ALTER TABLE jobs ADD CONSTRAINT jobs_funding_check_id_fkey
    FOREIGN KEY (funding_check_id) REFERENCES funding_checks (id) ON DELETE CASCADE NOT VALID;

-- HOLDs no underwriter has resolved and no later funding check of the application has
-- superseded, oldest first. No PII: the property's city and state, the final amount
-- and the changes' kinds.
CREATE VIEW reporting.funding_holds WITH (security_barrier) AS
SELECT f.id                                                       AS funding_check_id,
       f.application_id,
       a.rails_application_id,
       f.checked_at,
       date_trunc('second', now() - f.checked_at)                 AS age,
       f.reason_codes,
       ARRAY(SELECT c ->> 'kind' FROM jsonb_array_elements(f.changes) AS c)
                                                                  AS changes,
       (f.financing ->> 'amount_cents')::bigint                   AS amount_cents,
       a.application -> 'property' -> 'address' ->> 'city'        AS property_city,
       a.application -> 'property' -> 'address' ->> 'state'       AS property_state,
       f.policy_version
FROM funding_checks f
JOIN applications a ON a.id = f.application_id
WHERE f.verdict = 'hold' AND f.resolution IS NULL
  AND NOT EXISTS (SELECT 1 FROM funding_checks later
                  WHERE later.application_id = f.application_id
                    AND (later.checked_at, later.id) > (f.checked_at, f.id));

COMMENT ON VIEW reporting.funding_holds IS
    'Funding checks that found a HOLD no underwriter has resolved yet and that are their application''s latest, oldest first. age = time since the check (whole seconds); changes = the kinds of evidence changes since the approval. No PII.';

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dossier_service') THEN
        GRANT SELECT, INSERT, UPDATE ON funding_checks TO dossier_service;
    END IF;
    -- Explicitly, for databases migrated by a user without the default privileges of
    -- 20261125000004 (as 20261125000014 does).
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dossier_reporting') THEN
        GRANT SELECT ON reporting.funding_holds TO dossier_reporting;
    END IF;
END
$$;
