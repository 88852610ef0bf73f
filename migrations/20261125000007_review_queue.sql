-- The review queue leaves out applications an underwriter has reviewed (the reviews
-- table arrived in 20261125000005). Same columns as before: the previous release's
-- readers keep working. Only the existence of a review reaches `reporting`: review
-- notes are free text and reviewers are staff, so neither is exposed.
CREATE OR REPLACE VIEW reporting.review_queue WITH (security_barrier) AS
SELECT a.id                                                       AS application_id,
       a.source,
       a.rails_application_id,
       a.created_at,
       cd.decided_at,
       date_trunc('second', now() - cd.decided_at)                AS age,
       cd.reason_codes,
       cd.policy_version,
       a.application -> 'property' -> 'address' ->> 'city'        AS property_city,
       a.application -> 'property' -> 'address' ->> 'state'       AS property_state,
       (a.application -> 'financing' ->> 'amount_cents')::bigint  AS amount_cents,
       (a.application -> 'financing' ->> 'term_years')::int       AS term_years,
       ARRAY(SELECT m ->> 'kind'
             FROM jsonb_array_elements(coalesce(a.application -> 'measures', '[]'::jsonb)) AS m)
                                                                  AS measures,
       jsonb_array_length(coalesce(a.application -> 'applicants', '[]'::jsonb))
                                                                  AS applicants
FROM applications a
JOIN LATERAL (
    SELECT d.decision, d.reason_codes, d.policy_version, d.decided_at
    FROM decisions d
    WHERE d.application_id = a.id
    ORDER BY d.decided_at DESC, d.run_id DESC
    LIMIT 1
) cd ON true
WHERE cd.decision = 'refer'
  AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.application_id = a.id)
ORDER BY cd.decided_at, a.created_at, a.id;

COMMENT ON VIEW reporting.review_queue IS
    'Applications whose current decision is refer and that no underwriter has reviewed yet, oldest referral first. age = time since that decision (whole seconds). The summary has no PII: property city and state, financing amount (cents) and term (years), measure kinds and the number of applicants.';

-- CREATE OR REPLACE VIEW keeps the grants made in 20261125000004.
