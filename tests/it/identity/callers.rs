//! Callers named where they act: applications belong to the caller that submitted
//! them (its idempotency keys, what it may read), and every access to an application
//! or a person is in the access log, with the caller's identity, before it is answered.

use std::collections::BTreeSet;

use dossier_service::proto::data_service_client::DataServiceClient;
use dossier_service::proto::underwriting_service_client::UnderwritingServiceClient;
use dossier_service::proto::{self, GetReportRequest, ListReportsRequest};
use tonic::Code;
use tonic::transport::Channel;

use super::MtlsApp;

const ORIGINATION: &str = "spiffe://dossier.test/ns/origination/sa/api";
const PARTNER: &str = "spiffe://dossier.test/ns/partner/sa/api";
const CONSOLE: &str = "spiffe://dossier.test/ns/console/sa/web";
const RISK: &str = "spiffe://dossier.test/ns/risk/sa/investigations";

const POLICY: &str = r#"
[[caller]]
name = "origination"
ids = ["spiffe://dossier.test/ns/origination/sa/api"]
methods = [
  "dossier.v1.UnderwritingService/SubmitApplication",
  "dossier.v1.UnderwritingService/GetReport",
  "dossier.v1.UnderwritingService/ListReports",
]

[[caller]]
name = "partner"
ids = ["spiffe://dossier.test/ns/partner/*"]
methods = [
  "dossier.v1.UnderwritingService/SubmitApplication",
  "dossier.v1.UnderwritingService/GetReport",
  "dossier.v1.UnderwritingService/ListReports",
]

[[caller]]
name = "console"
ids = ["spiffe://dossier.test/ns/console/sa/web"]
methods = ["dossier.v1.UnderwritingService/GetReport", "dossier.v1.UnderwritingService/ListReports"]
reads = "all"

[[caller]]
name = "risk"
ids = ["spiffe://dossier.test/ns/risk/sa/investigations"]
methods = ["dossier.v1.DataService/GetPersonProfile"]
purposes = ["fraud_investigation", "compliance"]
"#;

fn submission(key: &str, example: &str) -> proto::SubmitApplicationRequest {
    proto::SubmitApplicationRequest {
        idempotency_key: key.into(),
        source: Some(proto::submit_application_request::Source::Application(
            dossier_devkit::harness::example_application(example),
        )),
    }
}

async fn submit(channel: &Channel, key: &str, example: &str) -> Result<String, tonic::Status> {
    UnderwritingServiceClient::new(channel.clone())
        .submit_application(submission(key, example))
        .await
        .map(|r| r.into_inner().application_id)
}

async fn listed(channel: &Channel) -> BTreeSet<String> {
    UnderwritingServiceClient::new(channel.clone())
        .list_reports(ListReportsRequest::default())
        .await
        .expect("listing")
        .into_inner()
        .reports
        .into_iter()
        .map(|r| r.application_id)
        .collect()
}

async fn get(channel: &Channel, id: &str) -> Result<(), tonic::Status> {
    UnderwritingServiceClient::new(channel.clone())
        .get_report(GetReportRequest {
            application_id: id.into(),
        })
        .await
        .map(drop)
}

#[tokio::test]
async fn each_caller_has_its_own_keys_and_reads_and_every_access_is_logged() {
    let m = MtlsApp::spawn_with_policy(POLICY).await;
    let channel = |id: &str| {
        let svid = m.domain.issue(id, &[]);
        let m = &m;
        async move { m.channel(Some(&svid)).await.unwrap() }
    };
    let (origination, partner, console, risk) = (
        channel(ORIGINATION).await,
        channel(PARTNER).await,
        channel(CONSOLE).await,
        channel(RISK).await,
    );

    let ours = submit(&origination, "shared-key", "approve").await.unwrap();
    // Another caller's key is refused, whatever the payload, and names nothing of it.
    for example in ["approve", "decline"] {
        let err = submit(&partner, "shared-key", example).await.unwrap_err();
        assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
        assert!(!err.message().contains(&ours), "{err:?}");
    }
    // The same caller replaying its own key gets its own application back.
    assert_eq!(
        submit(&origination, "shared-key", "approve").await.unwrap(),
        ours
    );
    let theirs = submit(&partner, "partner-key", "approve").await.unwrap();

    // A caller that reads only its own does not see the other's: not even that it exists.
    let err = get(&origination, &theirs).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    get(&origination, &ours).await.unwrap();
    assert_eq!(listed(&origination).await, BTreeSet::from([ours.clone()]));
    assert_eq!(listed(&partner).await, BTreeSet::from([theirs.clone()]));
    // The console reads everything.
    assert_eq!(
        listed(&console).await,
        BTreeSet::from([ours.clone(), theirs.clone()])
    );
    get(&console, &theirs).await.unwrap();

    // A person look-up needs a stated purpose...
    let applicant = &dossier_devkit::harness::example_application("approve").applicants[0];
    let look_up = |purpose| dossier_devkit::harness::person_request("approve", purpose);
    let mut data = DataServiceClient::new(risk.clone());
    let err = data
        .get_person_profile(look_up(proto::LookupPurpose::Unspecified))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("purpose"), "{err:?}");
    // ...one its policy allows it: refused before any vendor is asked, and not logged.
    let err = data
        .get_person_profile(look_up(proto::LookupPurpose::Underwriting))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("underwriting"), "{err:?}");
    assert!(!err.message().contains("risk"), "{err:?}");
    data.get_person_profile(look_up(proto::LookupPurpose::FraudInvestigation))
        .await
        .expect("a look-up with an allowed purpose");

    // ...and every access answered is in the log, by caller, method and application.
    let rows: Vec<(String, Option<String>, String, Option<String>)> = sqlx::query_as(
        "SELECT caller, caller_id, method, application_id::text FROM access_log
          WHERE application_id IS NOT NULL ORDER BY id",
    )
    .fetch_all(&m.app.pool)
    .await
    .unwrap();
    let row = |caller: &str, id: &str, method: &str, app: &str| {
        (
            caller.to_owned(),
            Some(id.to_owned()),
            format!("dossier.v1.UnderwritingService/{method}"),
            Some(app.to_owned()),
        )
    };
    let expected = [
        row("origination", ORIGINATION, "SubmitApplication", &ours),
        row("origination", ORIGINATION, "SubmitApplication", &ours),
        row("partner", PARTNER, "SubmitApplication", &theirs),
        row("origination", ORIGINATION, "GetReport", &ours),
        row("origination", ORIGINATION, "ListReports", &ours),
        row("partner", PARTNER, "ListReports", &theirs),
        row("console", CONSOLE, "GetReport", &theirs),
    ];
    for e in &expected {
        assert!(rows.contains(e), "missing access {e:?} in {rows:#?}");
    }
    let console_listed: BTreeSet<_> = rows
        .iter()
        .filter(|r| r.0 == "console" && r.2.ends_with("/ListReports"))
        .filter_map(|r| r.3.clone())
        .collect();
    assert_eq!(
        console_listed,
        BTreeSet::from([ours.clone(), theirs.clone()])
    );
    // Refused and not-found calls handed nothing out, so they are not accesses.
    assert!(
        !rows
            .iter()
            .any(|r| r.0 == "origination" && r.3.as_deref() == Some(theirs.as_str())),
        "{rows:#?}"
    );
    assert_eq!(rows.len(), expected.len() + 2, "{rows:#?}");

    // The look-up is logged by a keyed hash of the SSN: the same as the applicant's
    // look-up hash, so an auditor can join it to the applications of that person, and
    // the SSN itself appears nowhere.
    let (caller, purpose, joins): (String, String, bool) = sqlx::query_as(
        "SELECT l.caller, l.purpose,
                EXISTS (SELECT 1 FROM applicant_secrets s
                         WHERE s.ssn_lookup = l.person_ref AND s.application_id = $1::uuid)
           FROM access_log l WHERE l.method = 'dossier.v1.DataService/GetPersonProfile'",
    )
    .bind(&ours)
    .fetch_one(&m.app.pool)
    .await
    .unwrap();
    assert_eq!(
        (caller.as_str(), purpose.as_str(), joins),
        ("risk", "fraud_investigation", true)
    );
    let dump: String =
        sqlx::query_scalar("SELECT coalesce(string_agg(t::text, '|'), '') FROM access_log t")
            .fetch_one(&m.app.pool)
            .await
            .unwrap();
    let digits = applicant.ssn.replace('-', "");
    assert!(!dump.contains(&digits), "the SSN is in the access log");
}
