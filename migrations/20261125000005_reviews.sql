-- Underwriter reviews of REFER decisions: kept beside the automated decision, never
-- instead of it. One review per application; rows are never updated or deleted (the
-- table is the audit trail of overrides).
CREATE TABLE reviews (
    application_id uuid PRIMARY KEY REFERENCES applications (id) ON DELETE CASCADE,
    -- The run whose REFER decision was reviewed.
    run_id         uuid NOT NULL REFERENCES evaluation_runs (id),
    outcome        text NOT NULL CHECK (outcome IN ('approve', 'decline')),
    note           text NOT NULL,
    reviewer       text NOT NULL,
    reviewed_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX reviews_reviewed_idx ON reviews (reviewed_at);
