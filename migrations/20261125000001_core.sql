-- Core schema: applications, their encrypted PII, evaluation runs, check results,
-- decisions, the work queue and the audit trail of upstream calls.
--
-- Rules for every migration in this directory (see docs/operations.md):
-- additive only (expand, then contract in a later release), so the previous release
-- keeps working while and after a migration runs.

CREATE TABLE applications (
    id                   uuid PRIMARY KEY,
    idempotency_key      text NOT NULL UNIQUE,
    -- HMAC of the canonical request, to tell a replay from a conflicting reuse of a key
    -- without storing or exposing the payload's PII.
    payload_hmac         bytea NOT NULL,
    source               text NOT NULL CHECK (source IN ('inline', 'rails')),
    rails_application_id text,
    status               text NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'running', 'decided')),
    -- The application without SSNs or dates of birth (those live in applicant_secrets).
    -- NULL until fetched, for applications submitted by Rails id.
    application          jsonb,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    decided_at           timestamptz
);

CREATE INDEX applications_created_idx ON applications (created_at DESC, id DESC);
CREATE INDEX applications_status_idx ON applications (status, created_at DESC);

-- One row per applicant: sealed SSN and date of birth (AES-256-GCM, nonce || ciphertext),
-- the id of the key that sealed them, and a keyed hash of the SSN for look-ups.
CREATE TABLE applicant_secrets (
    application_id uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    position       int  NOT NULL,
    key_id         text NOT NULL,
    ssn_sealed     bytea NOT NULL,
    dob_sealed     bytea NOT NULL,
    ssn_lookup     bytea NOT NULL,
    PRIMARY KEY (application_id, position)
);

CREATE INDEX applicant_secrets_ssn_lookup_idx ON applicant_secrets (ssn_lookup);

-- Each time the checks run for an application (first evaluation, refreshes).
CREATE TABLE evaluation_runs (
    id             uuid PRIMARY KEY,
    application_id uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    reason         text NOT NULL DEFAULT 'initial',
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    -- False when the caller's deadline cut the run short.
    complete       boolean
);

CREATE INDEX evaluation_runs_application_idx ON evaluation_runs (application_id, started_at DESC);

CREATE TABLE check_results (
    run_id         uuid NOT NULL REFERENCES evaluation_runs (id) ON DELETE CASCADE,
    application_id uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    kind           text NOT NULL,
    subject        text NOT NULL,
    outcome        text NOT NULL CHECK (outcome IN ('pass', 'fail', 'review', 'unavailable')),
    reason_codes   text[] NOT NULL DEFAULT '{}',
    message        text NOT NULL,
    upstream       text,
    fetched_at     timestamptz,
    cached         boolean NOT NULL DEFAULT false,
    stale          boolean NOT NULL DEFAULT false,
    evidence       jsonb NOT NULL DEFAULT '{}',
    finished_at    timestamptz NOT NULL,
    -- A check written twice (a retried run) keeps its first result: results are idempotent.
    PRIMARY KEY (run_id, kind, subject)
);

CREATE INDEX check_results_application_idx ON check_results (application_id, finished_at);

-- One decision per run; the application's current decision is its latest run's.
CREATE TABLE decisions (
    run_id         uuid PRIMARY KEY REFERENCES evaluation_runs (id) ON DELETE CASCADE,
    application_id uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    decision       text NOT NULL CHECK (decision IN ('approved', 'declined', 'refer')),
    reason_codes   text[] NOT NULL DEFAULT '{}',
    policy_version text NOT NULL,
    policy_hash    text NOT NULL,
    figures        jsonb NOT NULL DEFAULT '{}',
    decided_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX decisions_application_idx ON decisions (application_id, decided_at DESC);

-- Durable background work. Claimed with FOR UPDATE SKIP LOCKED under a lease.
CREATE TABLE jobs (
    id             bigserial PRIMARY KEY,
    kind           text NOT NULL,
    application_id uuid REFERENCES applications (id) ON DELETE CASCADE,
    state          text NOT NULL DEFAULT 'queued'
                   CHECK (state IN ('queued', 'running', 'done', 'dead')),
    attempts       int NOT NULL DEFAULT 0,
    max_attempts   int NOT NULL DEFAULT 10,
    run_at         timestamptz NOT NULL DEFAULT now(),
    lease_until    timestamptz,
    locked_by      text,
    last_error     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz
);

CREATE INDEX jobs_ready_idx ON jobs (run_at) WHERE state = 'queued';
CREATE INDEX jobs_lease_idx ON jobs (lease_until) WHERE state = 'running';

-- Every real request to an upstream (cache hits are counted in metrics, not audited).
CREATE TABLE upstream_calls (
    id             bigserial PRIMARY KEY,
    upstream       text NOT NULL,
    endpoint       text NOT NULL,
    http_status    int,
    outcome        text NOT NULL,
    error          text,
    latency_ms     int NOT NULL,
    application_id uuid,
    cache          text NOT NULL DEFAULT 'miss',
    cost_cents     int NOT NULL DEFAULT 0,
    called_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX upstream_calls_called_idx ON upstream_calls (called_at);
CREATE INDEX upstream_calls_application_idx ON upstream_calls (application_id) WHERE application_id IS NOT NULL;
