-- Validates the outcome constraint 20261207100001 added NOT VALID. VALIDATE CONSTRAINT
-- takes a SHARE UPDATE EXCLUSIVE lock: check results go on being written meanwhile.
ALTER TABLE check_results VALIDATE CONSTRAINT check_results_outcome_check;
