//! Reason codes: the stable identifiers of why a check did not pass, shown to
//! underwriters and used in adverse-action notices. A closed set: checks name codes by
//! variant, never by string, and a test checks docs/reason-codes.md against this list
//! both ways. The string forms are stored with every check result and sent to callers:
//! never change one (add a new code instead).

/// Defines [`ReasonCode`] with its string forms and consumer statements, so that the
/// list exists once.
macro_rules! reason_codes {
    ($($(#[$doc:meta])* $variant:ident = $code:literal => $consumer:literal,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ReasonCode {
            $($(#[$doc])* $variant,)*
        }

        impl ReasonCode {
            /// Every code, in the order of docs/reason-codes.md.
            pub const ALL: &'static [ReasonCode] = &[$(ReasonCode::$variant,)*];

            /// The stable string form, e.g. `PROPERTY_NOT_FOUND`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ReasonCode::$variant => $code,)*
                }
            }

            /// What the applicant reads in an adverse-action notice for this code:
            /// plain language, no figures, no internal names (docs/reason-codes.md,
            /// "Adverse-action notices", lists the same text; a test compares them).
            pub const fn consumer_statement(self) -> &'static str {
                match self {
                    $(ReasonCode::$variant => $consumer,)*
                }
            }

            pub fn parse(code: &str) -> Option<ReasonCode> {
                match code {
                    $($code => Some(ReasonCode::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

reason_codes! {
    /// FAIL: The property records vendor has no parcel for this address or APN.
    PropertyNotFound = "PROPERTY_NOT_FOUND" => "We could not find public records for the property.",
    /// FAIL: A person on title is not among the applicants.
    OwnerNotApplicant = "OWNER_NOT_APPLICANT" => "Not every owner of record of the property applied.",
    /// REVIEW: Title is held by a trust, company, estate or other entity (the owner string contains a word such as TRUST, LLC, INC or ESTATE, or is a single word).
    OwnerIsEntity = "OWNER_IS_ENTITY" => "The property is held by a trust, company or estate, which we could not accept.",
    /// REVIEW: The county record lists no owner.
    OwnerUnknown = "OWNER_UNKNOWN" => "We could not verify the ownership of the property.",
    /// FAIL: The property's ZIP code is outside the program's area in its state (`program.boundaries`).
    OutsideProgramBoundary = "OUTSIDE_PROGRAM_BOUNDARY" => "The property is outside the area the program serves.",
    /// FAIL: The property's state, as given in the application address, is not one where the program operates (default CA, FL, MO).
    StateNotParticipating = "STATE_NOT_PARTICIPATING" => "The program does not operate in the property's state.",
    /// FAIL: The county's property type is not financed (default: single family, condominium, multi-family, manufactured).
    PropertyTypeIneligible = "PROPERTY_TYPE_INELIGIBLE" => "The type of property is not eligible for the program.",
    /// FAIL: More units than the program allows (default 4).
    PropertyTooManyUnits = "PROPERTY_TOO_MANY_UNITS" => "The property has more units than the program allows.",
    /// FAIL: Property taxes are delinquent now.
    PropertyTaxDelinquent = "PROPERTY_TAX_DELINQUENT" => "Property taxes on the property are delinquent.",
    /// FAIL: More late tax payments in the look-back than allowed (default: more than 1 in 3 years; a payment exactly 3 years ago counts).
    PropertyTaxLatePayments = "PROPERTY_TAX_LATE_PAYMENTS" => "Property taxes on the property were paid late too often.",
    /// FAIL: A notice of default is recorded on a mortgage.
    MortgageNoticeOfDefault = "MORTGAGE_NOTICE_OF_DEFAULT" => "A notice of default is recorded on a mortgage on the property.",
    /// FAIL: A mortgage is more days late than allowed (default 30).
    MortgageDelinquent = "MORTGAGE_DELINQUENT" => "A mortgage on the property is delinquent.",
    /// FAIL: More late payments on a mortgage in the last 12 months than allowed (default 1). The count is the vendor's 12-month figure.
    MortgageLatePayments = "MORTGAGE_LATE_PAYMENTS" => "Mortgage payments on the property were late too often.",
    /// FAIL: A lien reported by the vendor is above the limit (default $1,000). Every lien in the vendor's lien list counts.
    InvoluntaryLien = "INVOLUNTARY_LIEN" => "An involuntary lien is recorded against the property.",
    /// REVIEW (despite the name): The AVM vendor answered that it has no estimate for this property.
    ValuationUnavailable = "VALUATION_UNAVAILABLE" => "We could not determine the value of the property.",
    /// REVIEW: The AVM's confidence is below the minimum (default 70).
    ValuationLowConfidence = "VALUATION_LOW_CONFIDENCE" => "We could not determine the value of the property with enough confidence.",
    /// FAIL: Existing PACE assessments plus the requested amount exceed the limit: 15 % of the first $700,000 of value plus 10 % of the value above that (default).
    AssessmentLimitExceeded = "ASSESSMENT_LIMIT_EXCEEDED" => "The amount requested is more than the property's value allows.",
    /// FAIL: Mortgage balances plus all assessments would exceed 97 % of the value (default).
    CombinedDebtLimitExceeded = "COMBINED_DEBT_LIMIT_EXCEEDED" => "Debts secured by the property would be too high in relation to its value.",
    /// FAIL: Annual property tax plus every assessment's annual payment, the new one included, would exceed 5 % of the value (default `assessment_limit.max_annual_tax_ratio`).
    AnnualTaxBurdenExceeded = "ANNUAL_TAX_BURDEN_EXCEEDED" => "Property taxes and assessments would be too high in relation to the property's value.",
    /// REVIEW: The AVM vendor had no estimate, so the limits cannot be computed.
    AssessmentLimitUnverified = "ASSESSMENT_LIMIT_UNVERIFIED" => "We could not determine the value of the property.",
    /// FAIL: The term is longer than the cost-weighted useful life of the financed measures, rounded down to whole years.
    TermExceedsUsefulLife = "TERM_EXCEEDS_USEFUL_LIFE" => "The term requested is longer than the useful life of the improvements.",
    /// FAIL: The vendor raised a flag the policy treats as disqualifying (default: `SSN_DECEASED`), whatever the score. Other flags are shown in `evidence.flags` but do not change the outcome.
    IdentityFlagged = "IDENTITY_FLAGGED" => "We were unable to verify your identity.",
    /// FAIL: The identity match score is below the minimum (default 80).
    IdentityNotVerified = "IDENTITY_NOT_VERIFIED" => "We were unable to verify your identity.",
    /// FAIL: A bankruptcy is open: disposition `OPEN`, or neither discharged nor dismissed and with no closing date.
    BankruptcyOpen = "BANKRUPTCY_OPEN" => "Bankruptcy.",
    /// FAIL: A bankruptcy in the look-back was closed long enough ago to be allowed, but a mortgage on the property is now more than `mortgage.max_days_late` (30) days late, which the exception does not allow.
    BankruptcyLatePayments = "BANKRUPTCY_LATE_PAYMENTS" => "Bankruptcy, with recent late payments.",
    /// REVIEW: As above, but the property record could not be read to check the payment record.
    BankruptcyPaymentHistoryUnknown = "BANKRUPTCY_PAYMENT_HISTORY_UNKNOWN" => "Bankruptcy, and we could not verify your recent payment history.",
    /// FAIL: A bankruptcy filed within the look-back (default 7 years) was closed less than the required time ago (default 2 years), or has no closing date.
    BankruptcyRecent = "BANKRUPTCY_RECENT" => "Bankruptcy.",
    /// FAIL: The licence board has no licence with this number in this state.
    LicenseNotFound = "LICENSE_NOT_FOUND" => "The contractor you chose does not hold a licence we could verify.",
    /// FAIL: The licence status is not `ACTIVE` (for example `SUSPENDED`).
    LicenseNotActive = "LICENSE_NOT_ACTIVE" => "The contractor you chose does not hold an active licence.",
    /// FAIL: The licence is active but its expiry date has passed.
    LicenseExpired = "LICENSE_EXPIRED" => "The contractor you chose does not hold a current licence.",
    /// FAIL: No contractor's bond is on file.
    LicenseNotBonded = "LICENSE_NOT_BONDED" => "The contractor you chose is not bonded.",
    /// FAIL: No classification on the licence covers a financed measure (one code per uncovered measure). The message lists the accepted classifications.
    LicenseClassificationMissing = "LICENSE_CLASSIFICATION_MISSING" => "The contractor you chose is not licensed for the work to be financed.",
    /// FAIL: The registry has no business of this name in the licence state.
    BusinessNotRegistered = "BUSINESS_NOT_REGISTERED" => "The contractor you chose is not a registered business.",
    /// FAIL: The registry status is not `ACTIVE` (for example dissolved or suspended).
    BusinessNotInGoodStanding = "BUSINESS_NOT_IN_GOOD_STANDING" => "The contractor you chose is not a business in good standing.",
    /// FAIL: The best candidate scores at least `match_threshold` (default 0.95): to the matcher, the name is that of a listed person or company. Financing is prohibited unless compliance clears it.
    SanctionsMatch = "SANCTIONS_MATCH" => "We could not complete the screening federal law requires.",
    /// REVIEW: The best candidate scores at least `review_threshold` (default 0.85) but under `match_threshold`: a similar name.
    SanctionsNearMatch = "SANCTIONS_NEAR_MATCH" => "We could not complete the screening federal law requires.",
    /// UNAVAILABLE: No sanctions list has been loaded into this database, so the name could not be screened. It is never treated as "no match".
    SanctionsListUnavailable = "SANCTIONS_LIST_UNAVAILABLE" => "We could not complete the screening federal law requires.",
    /// UNAVAILABLE: The upstream did not answer within its per-try timeout (the upstream's `timeout` setting, default 5 s, or `DOSSIER_UPSTREAM_TIMEOUT`), and retries did not help in time.
    UpstreamTimeout = "UPSTREAM_TIMEOUT" => "We could not obtain information needed to complete your application.",
    /// UNAVAILABLE: The caller's `EvaluateApplication` deadline passed before this upstream answered, or before Dossier could send the request (for example while waiting for a free connection slot). The report's `complete` is false.
    DeadlineExceeded = "DEADLINE_EXCEEDED" => "We could not obtain information needed to complete your application.",
    /// UNAVAILABLE: Either the upstream refused the request over its quota (HTTP 429) and the retry after its `Retry-After` did not fit in the deadline, or Dossier's own rate limit for that upstream could not admit the request before the deadline (the upstream was not called).
    UpstreamRateLimited = "UPSTREAM_RATE_LIMITED" => "We could not obtain information needed to complete your application.",
    /// UNAVAILABLE: The upstream could not be reached, or answered with an HTTP error (5xx, or a 4xx other than 401, 403, 404 and 429), or Dossier failed internally while asking it.
    UpstreamError = "UPSTREAM_ERROR" => "We could not obtain information needed to complete your application.",
    /// UNAVAILABLE: The upstream rejected Dossier's credential (HTTP 401 or 403).
    UpstreamAuthFailed = "UPSTREAM_AUTH_FAILED" => "We could not obtain information needed to complete your application.",
    /// UNAVAILABLE: Dossier did not call the upstream because its circuit breaker is open: the upstream failed repeatedly (timeouts, connection errors, 5xx) just before, and Dossier gives it time to recover (10 s by default) before probing it again.
    UpstreamCircuitOpen = "UPSTREAM_CIRCUIT_OPEN" => "We could not obtain information needed to complete your application.",
    /// UNAVAILABLE: The upstream answered 200 with an error body, sent something that is not the expected JSON (or JSON of the wrong shape), or broke off the response.
    UpstreamBadResponse = "UPSTREAM_BAD_RESPONSE" => "We could not obtain information needed to complete your application.",
    /// FAIL: the income vendor verified no income for any applicant
    IncomeNotVerified = "INCOME_NOT_VERIFIED" => "We were unable to verify your income.",
    /// FAIL: obligations with the new payment exceed `max_debt_to_income` of verified income
    DebtToIncomeExceeded = "DEBT_TO_INCOME_EXCEEDED" => "Your obligations would be too high in relation to your income.",
    /// FAIL: less than `min_residual_monthly_cents` would remain each month
    ResidualIncomeInsufficient = "RESIDUAL_INCOME_INSUFFICIENT" => "Your income would be insufficient for the payment after your obligations.",
}

impl std::fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// So a code can be compared with a stored or received string form.
impl PartialEq<&str> for ReasonCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<ReasonCode> for String {
    fn eq(&self, other: &ReasonCode) -> bool {
        self == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::ReasonCode;

    #[test]
    fn string_forms_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for &code in ReasonCode::ALL {
            assert_eq!(ReasonCode::parse(code.as_str()), Some(code));
            assert!(seen.insert(code.as_str()), "{code} listed twice");
            assert!(
                code.as_str()
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                "{code} is not SCREAMING_SNAKE_CASE"
            );
        }
        assert_eq!(ReasonCode::parse("NO_SUCH_CODE"), None);
    }

    /// docs/reason-codes.md is what underwriters read: every code has a row there, and
    /// every row names a code that exists.
    #[test]
    fn docs_list_exactly_the_codes() {
        let doc = include_str!("../../../docs/reason-codes.md");
        let documented: std::collections::BTreeSet<&str> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .collect();
        let known: std::collections::BTreeSet<&str> =
            ReasonCode::ALL.iter().map(|c| c.as_str()).collect();
        let undocumented: Vec<_> = known.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(&known).collect();
        assert!(
            undocumented.is_empty(),
            "codes missing from docs/reason-codes.md: {undocumented:?}"
        );
        assert!(
            unknown.is_empty(),
            "docs/reason-codes.md names codes that do not exist: {unknown:?}"
        );
    }
}
