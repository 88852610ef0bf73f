-- Ongoing sanctions monitoring: when a new SDN list version is loaded, the applicants
-- and companies of approved applications not yet funded (and, configurably, funded
-- recently) are screened again against it, once for the fleet per list version (a
-- `monitor_sanctions` job queued with the list). Every new match or near match is an
-- alert, kept here and delivered to Rails.

-- One row per list version screened: claimed by the job that screens it, so another
-- job for the same version does nothing, and completed with the figures. Only the job
-- that claimed it (retried after its worker died) may claim it again.
CREATE TABLE sanctions_monitoring_runs (
    -- sanctions_lists.id (no foreign key: old lists may be purged, the record stays).
    list_id      bigint PRIMARY KEY,
    job_id       bigint NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    applications int,
    names        int,
    alerts       int
);

CREATE TABLE sanctions_alerts (
    id             uuid PRIMARY KEY,
    application_id uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    -- The list version that raised it.
    list_id        bigint NOT NULL,
    -- "applicant N" or "contractor".
    subject        text NOT NULL,
    -- The SDN entry (ent_num) and how it matched.
    entry_id       bigint NOT NULL,
    list_name      text NOT NULL,
    matched_name   text NOT NULL,
    program        text NOT NULL,
    score          double precision NOT NULL,
    severity       text NOT NULL CHECK (severity IN ('match', 'near_match')),
    raised_at      timestamptz NOT NULL DEFAULT now(),
    -- An entry is alerted once per subject, whichever list version names it again.
    CONSTRAINT sanctions_alerts_once UNIQUE (application_id, subject, entry_id)
);

CREATE INDEX sanctions_alerts_raised_idx ON sanctions_alerts (raised_at);

-- The list version a monitor_sanctions job screens (queued with the list), and the
-- alert a deliver_sanctions_alert job delivers (like a decision's delivery).
ALTER TABLE jobs ADD COLUMN sanctions_list_id bigint;
ALTER TABLE jobs ADD COLUMN sanctions_alert_id uuid;
ALTER TABLE jobs ADD CONSTRAINT jobs_sanctions_alert_id_fkey
    FOREIGN KEY (sanctions_alert_id) REFERENCES sanctions_alerts (id) ON DELETE CASCADE NOT VALID;

-- Every monitoring alert, newest first. Nobody is named: the application and subject
-- say who, the candidate is the list entry's number (its name would be the applicant's
-- when they match).
CREATE VIEW reporting.sanctions_alerts WITH (security_barrier) AS
SELECT s.id               AS alert_id,
       s.raised_at,
       s.application_id,
       a.rails_application_id,
       s.subject,
       s.severity,
       s.entry_id         AS candidate_entry,
       s.program,
       round(s.score::numeric, 3) AS score,
       s.list_id
FROM sanctions_alerts s
JOIN applications a ON a.id = s.application_id;

COMMENT ON VIEW reporting.sanctions_alerts IS
    'Sanctions monitoring alerts: a new match or near match of an approved applicant or contractor on a newly loaded SDN list version, with the candidate entry (its ent_num) and score. Nobody is named: a matching entry''s name is the applicant''s. Newest first.';

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dossier_service') THEN
        GRANT SELECT, INSERT, UPDATE ON sanctions_monitoring_runs TO dossier_service;
        GRANT SELECT, INSERT ON sanctions_alerts TO dossier_service;
    END IF;
    -- Explicitly, for databases migrated by a user without the default privileges of
    -- 20261125000004 (as 20261125000014 does).
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dossier_reporting') THEN
        GRANT SELECT ON reporting.sanctions_alerts TO dossier_reporting;
    END IF;
END
$$;
