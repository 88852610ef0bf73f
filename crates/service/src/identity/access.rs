//! The access policy: which workloads (SPIFFE IDs) may call which methods. Pure: parsed
//! from the operator's TOML once at start, asked on every call.
//!
//! ```toml
//! [[caller]]
//! name = "origination"                       # shown in logs and the audit
//! ids = ["spiffe://lender.example/ns/origination/sa/api"]
//! methods = [
//!   "dossier.v1.UnderwritingService/SubmitApplication",
//!   "dossier.v1.UnderwritingService/GetReport",
//! ]
//!
//! [[caller]]
//! name = "reporting"
//! ids = ["spiffe://lender.example/ns/reporting/*"]  # every ID under that path
//! methods = ["dossier.v1.UnderwritingService/ListReports"]
//! ```
//!
//! `reads = "all"` lets a caller read every application (GetReport, ListReports,
//! WatchReport, ReviewApplication, RefreshApplication); without it, `reads = "own"`, a
//! caller sees only the applications it submitted itself, and any other is NOT_FOUND.
//!
//! `purposes = ["underwriting", "pre_funding"]` limits the purposes the caller may state
//! for a person look-up (GetPersonProfile); without it, any.
//!
//! A method is `package.Service/Method`, `package.Service/*` or `*`. Submitting an
//! application by `rails_application_id` also needs `rails_application_ids = true` on
//! an entry of the caller: Dossier fetches it from Rails with its own token, so
//! whoever may name Rails ids may read the applicants they name. Health
//! (`grpc.health.v1.Health`) answers every authenticated caller: it says nothing about
//! anyone's data, and clients check it before they send work.

use std::collections::HashSet;

use serde::Deserialize;

use super::{Caller, SpiffeId};

/// The parsed policy. Entries are few (one per calling system), so a call is decided by
/// a scan, in the order the file lists them.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    callers: Vec<Grant>,
}

#[derive(Debug, Clone)]
struct Grant {
    name: String,
    ids: Vec<IdPattern>,
    methods: Vec<MethodPattern>,
    rails_application_ids: bool,
    reads: Reads,
    /// The purposes it may state for a person look-up; None: any.
    purposes: Option<Vec<String>>,
}

/// Which applications a caller may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reads {
    /// Only those it submitted (the default: a caller sees nobody else's applicants).
    #[default]
    Own,
    /// Every application (the underwriting console, reporting, operators).
    All,
}

#[derive(Debug, Clone)]
enum IdPattern {
    Exact(SpiffeId),
    /// `spiffe://td/ns/reporting/*`: stored as `spiffe://td/ns/reporting/`.
    Under(String),
}

#[derive(Debug, Clone)]
enum MethodPattern {
    Any,
    /// `/package.Service/`
    Service(String),
    /// `/package.Service/Method`
    Method(String),
}

/// The answer to one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'p> {
    /// Allowed, by the entry of this name (the caller's name in logs).
    Allowed(&'p str),
    /// The caller is in the policy, but no entry of it grants this method.
    NotGranted(&'p str),
    /// No entry names this caller.
    UnknownCaller,
}

const HEALTH: &str = "/grpc.health.v1.Health/";

/// The purposes a person look-up can state (`dossier.v1.LookupPurpose`, lower case,
/// without its prefix), as a policy entry's `purposes` names them.
pub const PURPOSES: [&str; 5] = [
    "underwriting",
    "pre_funding",
    "account_review",
    "fraud_investigation",
    "compliance",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    caller: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    ids: Vec<String>,
    methods: Vec<String>,
    #[serde(default)]
    rails_application_ids: bool,
    #[serde(default)]
    reads: Reads,
    #[serde(default)]
    purposes: Option<Vec<String>>,
}

impl AccessPolicy {
    /// Parses and checks a policy against the methods the server serves (paths
    /// `/package.Service/Method`): a misspelt method or ID is refused at start, naming
    /// the entry, instead of silently granting nothing.
    pub fn parse(text: &str, served: &HashSet<&str>) -> Result<AccessPolicy, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        if file.caller.is_empty() {
            return Err("no [[caller]] entry: every call would be refused".into());
        }
        let services: HashSet<&str> = served
            .iter()
            .filter_map(|m| m.rsplit_once('/').map(|(service, _)| service))
            .collect();
        let mut names = HashSet::new();
        let mut callers = Vec::new();
        for entry in file.caller {
            let name = entry.name;
            if name.is_empty() || !names.insert(name.clone()) {
                return Err(format!(
                    "caller name {name:?} is empty or used twice; names identify callers in logs"
                ));
            }
            if entry.ids.is_empty() || entry.methods.is_empty() {
                return Err(format!(
                    "caller {name:?} needs at least one id and one method"
                ));
            }
            let mut ids = Vec::new();
            for id in &entry.ids {
                let pattern = match id.strip_suffix("/*") {
                    Some(prefix) => {
                        SpiffeId::parse(prefix).map(|_| IdPattern::Under(format!("{prefix}/")))
                    }
                    None => SpiffeId::parse(id).map(IdPattern::Exact),
                };
                ids.push(pattern.map_err(|e| format!("caller {name:?}: id {id:?}: {e}"))?);
            }
            let mut methods = Vec::new();
            for method in &entry.methods {
                let pattern = if method == "*" {
                    MethodPattern::Any
                } else if let Some(service) = method.strip_suffix("/*") {
                    let service = format!("/{service}");
                    if !services.contains(service.as_str()) {
                        return Err(format!(
                            "caller {name:?}: no service {method:?} is served (write package.Service/*)"
                        ));
                    }
                    MethodPattern::Service(format!("{service}/"))
                } else {
                    let path = format!("/{method}");
                    if !served.contains(path.as_str()) {
                        return Err(format!(
                            "caller {name:?}: no method {method:?} is served (write package.Service/Method)"
                        ));
                    }
                    MethodPattern::Method(path)
                };
                methods.push(pattern);
            }
            if let Some(purposes) = &entry.purposes {
                for purpose in purposes {
                    if !PURPOSES.contains(&purpose.as_str()) {
                        return Err(format!(
                            "caller {name:?}: purpose {purpose:?} is not one of {}",
                            PURPOSES.join(", ")
                        ));
                    }
                }
            }
            let purposes = entry.purposes;
            callers.push(Grant {
                name,
                ids,
                methods,
                rails_application_ids: entry.rails_application_ids,
                reads: entry.reads,
                purposes,
            });
        }
        Ok(AccessPolicy { callers })
    }

    /// May `caller` call `path` (`/package.Service/Method`)? Callers without a SPIFFE ID
    /// are unknown; health is open to every known or unknown authenticated caller.
    pub fn decide(&self, caller: &Caller, path: &str) -> Decision<'_> {
        let id = match caller {
            Caller::Workload(id) => Some(id),
            Caller::Anonymous | Caller::Unnamed => None,
        };
        let mut known: Option<&str> = None;
        for grant in &self.callers {
            if !id.is_some_and(|id| grant.matches_id(id)) {
                continue;
            }
            if grant.methods.iter().any(|m| m.matches(path)) {
                return Decision::Allowed(&grant.name);
            }
            known.get_or_insert(&grant.name);
        }
        if path.starts_with(HEALTH) {
            return Decision::Allowed(known.unwrap_or("health"));
        }
        match known {
            Some(name) => Decision::NotGranted(name),
            None => Decision::UnknownCaller,
        }
    }
}

impl AccessPolicy {
    /// May the caller the policy calls `name` look a person up for `purpose` (one of
    /// [`PURPOSES`])? Entries without `purposes` may state any.
    pub fn may_state_purpose(&self, name: &str, purpose: &str) -> bool {
        self.callers
            .iter()
            .find(|grant| grant.name == name)
            .is_none_or(|grant| {
                grant
                    .purposes
                    .as_ref()
                    .is_none_or(|allowed| allowed.iter().any(|p| p == purpose))
            })
    }

    /// Which applications the caller the policy calls `name` may read.
    pub fn reads_of(&self, name: &str) -> Reads {
        self.callers
            .iter()
            .find(|grant| grant.name == name)
            .map_or(Reads::Own, |grant| grant.reads)
    }

    /// May `caller` submit applications by `rails_application_id`?
    pub fn may_name_rails_applications(&self, caller: &Caller) -> bool {
        let Caller::Workload(id) = caller else {
            return false;
        };
        self.callers
            .iter()
            .any(|grant| grant.rails_application_ids && grant.matches_id(id))
    }
}

impl Grant {
    fn matches_id(&self, id: &SpiffeId) -> bool {
        self.ids.iter().any(|pattern| match pattern {
            IdPattern::Exact(exact) => exact == id,
            IdPattern::Under(prefix) => id.as_str().starts_with(prefix.as_str()),
        })
    }
}

impl MethodPattern {
    fn matches(&self, path: &str) -> bool {
        match self {
            MethodPattern::Any => true,
            MethodPattern::Service(prefix) => path.starts_with(prefix.as_str()),
            MethodPattern::Method(exact) => exact == path,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBMIT: &str = "/dossier.v1.UnderwritingService/SubmitApplication";
    const REVIEW: &str = "/dossier.v1.UnderwritingService/ReviewApplication";
    const LIST: &str = "/dossier.v1.UnderwritingService/ListReports";
    const PERSON: &str = "/dossier.v1.DataService/GetPersonProfile";
    const PROPERTY: &str = "/dossier.v1.DataService/GetPropertyProfile";
    const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";

    fn served() -> HashSet<&'static str> {
        [SUBMIT, REVIEW, LIST, PERSON, PROPERTY, HEALTH_CHECK]
            .into_iter()
            .collect()
    }

    const POLICY: &str = r#"
        [[caller]]
        name = "origination"
        ids = ["spiffe://lender.example/ns/origination/sa/api"]
        methods = ["dossier.v1.UnderwritingService/SubmitApplication"]
        rails_application_ids = true

        [[caller]]
        name = "console"
        ids = ["spiffe://lender.example/ns/console/sa/web"]
        methods = ["dossier.v1.UnderwritingService/*"]

        [[caller]]
        name = "reporting"
        ids = ["spiffe://lender.example/ns/reporting/*"]
        methods = ["dossier.v1.UnderwritingService/ListReports"]

        [[caller]]
        name = "operators"
        ids = ["spiffe://lender.example/ns/ops/sa/toolbox"]
        methods = ["*"]
    "#;

    fn workload(id: &str) -> Caller {
        Caller::Workload(SpiffeId::parse(id).unwrap())
    }

    #[test]
    fn each_caller_may_call_what_its_entries_grant() {
        let policy = AccessPolicy::parse(POLICY, &served()).unwrap();
        let origination = workload("spiffe://lender.example/ns/origination/sa/api");
        let console = workload("spiffe://lender.example/ns/console/sa/web");
        let reporting = workload("spiffe://lender.example/ns/reporting/sa/metabase");
        let ops = workload("spiffe://lender.example/ns/ops/sa/toolbox");
        let stranger = workload("spiffe://lender.example/ns/origination/sa/api2");
        let other_domain = workload("spiffe://attacker.example/ns/origination/sa/api");
        let not_under = workload("spiffe://lender.example/ns/reportingx/sa/a");
        use Decision::*;
        let cases: &[(&Caller, &str, Decision)] = &[
            (&origination, SUBMIT, Allowed("origination")),
            (&origination, REVIEW, NotGranted("origination")),
            (&origination, PERSON, NotGranted("origination")),
            (&origination, HEALTH_CHECK, Allowed("origination")),
            (&console, REVIEW, Allowed("console")),
            (&console, SUBMIT, Allowed("console")),
            (&console, PROPERTY, NotGranted("console")),
            (&reporting, LIST, Allowed("reporting")),
            (&reporting, SUBMIT, NotGranted("reporting")),
            (&ops, PERSON, Allowed("operators")),
            (&stranger, SUBMIT, UnknownCaller),
            (&other_domain, SUBMIT, UnknownCaller),
            (&not_under, LIST, UnknownCaller),
            (&stranger, HEALTH_CHECK, Allowed("health")),
            (&Caller::Unnamed, SUBMIT, UnknownCaller),
            (&Caller::Anonymous, SUBMIT, UnknownCaller),
            (
                &origination,
                "/dossier.v1.Bogus/Call",
                NotGranted("origination"),
            ),
        ];
        for (caller, path, expected) in cases {
            assert_eq!(policy.decide(caller, path), *expected, "{caller} {path}");
        }
        // Only entries that say so may have Dossier fetch Rails applications.
        assert!(policy.may_name_rails_applications(&origination));
        for other in [
            &console,
            &ops,
            &stranger,
            &Caller::Unnamed,
            &Caller::Anonymous,
        ] {
            assert!(!policy.may_name_rails_applications(other), "{other}");
        }
    }

    #[test]
    fn a_policy_that_names_what_is_not_there_is_refused() {
        let entry = |ids: &str, methods: &str| {
            format!("[[caller]]\nname = \"a\"\nids = [{ids}]\nmethods = [{methods}]\n")
        };
        let good_id = "\"spiffe://lender.example/ns/a\"";
        let cases = [
            ("", "no [[caller]] entry"),
            (
                &entry(good_id, "\"dossier.v1.UnderwritingService/Submit\"") as &str,
                "no method",
            ),
            (&entry(good_id, "\"dossier.v1.Bogus/*\""), "no service"),
            (
                &entry(
                    good_id,
                    "\"/dossier.v1.UnderwritingService/SubmitApplication\"",
                ),
                "no method",
            ),
            (
                &entry("\"https://lender.example/a\"", "\"*\""),
                "starts with spiffe://",
            ),
            (&entry("\"spiffe://lender.example/a//b\"", "\"*\""), "empty"),
            (&entry("", "\"*\""), "at least one id"),
            (&entry(good_id, ""), "at least one id and one method"),
            (
                &format!("{}{}", entry(good_id, "\"*\""), entry(good_id, "\"*\"")),
                "used twice",
            ),
            (
                &format!("{}role = \"admin\"\n", entry(good_id, "\"*\"")),
                "unknown field",
            ),
            (
                &format!("{}purposes = [\"curiosity\"]\n", entry(good_id, "\"*\"")),
                "purpose \"curiosity\" is not one of",
            ),
            (
                &format!("{}reads = \"some\"\n", entry(good_id, "\"*\"")),
                "unknown variant",
            ),
        ];
        for (text, expected) in cases {
            let Err(e) = AccessPolicy::parse(text, &served()) else {
                panic!("accepted: {text}")
            };
            assert!(e.contains(expected), "{expected:?} not in {e:?} for {text}");
        }
    }

    #[test]
    fn reads_and_purposes_are_per_entry() {
        let policy = AccessPolicy::parse(
            r#"
            [[caller]]
            name = "risk"
            ids = ["spiffe://lender.example/ns/risk/sa/api"]
            methods = ["dossier.v1.DataService/GetPersonProfile"]
            purposes = ["fraud_investigation", "compliance"]

            [[caller]]
            name = "console"
            ids = ["spiffe://lender.example/ns/console/sa/web"]
            methods = ["dossier.v1.UnderwritingService/*"]
            reads = "all"
            "#,
            &served(),
        )
        .unwrap();
        let cases = [
            ("risk", "fraud_investigation", true),
            ("risk", "compliance", true),
            ("risk", "underwriting", false),
            ("console", "underwriting", true),
            ("console", "compliance", true),
        ];
        for (name, purpose, allowed) in cases {
            assert_eq!(
                policy.may_state_purpose(name, purpose),
                allowed,
                "{name} {purpose}"
            );
        }
        assert_eq!(policy.reads_of("risk"), Reads::Own);
        assert_eq!(policy.reads_of("console"), Reads::All);
        assert_eq!(policy.reads_of("nobody"), Reads::Own);
    }
}
