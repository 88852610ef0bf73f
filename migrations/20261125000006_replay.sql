-- What each run's decision was computed from, so that `dossier replay` can recompute it:
-- the upstream answers as used (no SSN or date of birth), the date look-backs were
-- counted from, and the exact policy text by hash.
ALTER TABLE evaluation_runs ADD COLUMN inputs jsonb;

CREATE TABLE policies (
    hash        text PRIMARY KEY,
    version     text NOT NULL,
    source      text NOT NULL,
    first_seen  timestamptz NOT NULL DEFAULT now()
);
