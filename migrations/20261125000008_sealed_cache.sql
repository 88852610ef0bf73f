-- Answers from the Rails backend (applications, with SSNs and dates of birth) and the
-- identity vendor are personal data: the L2 cache keeps them sealed (AES-256-GCM, as
-- applicant_secrets), never as plain jsonb. `body` stays NULL for them.
ALTER TABLE upstream_cache ADD COLUMN sealed bytea, ADD COLUMN key_id text;

-- Anything cached in the clear before this migration is dropped: it is only a cache.
DELETE FROM upstream_cache WHERE upstream IN ('rails', 'identity');
