//! The amount that would pass: a decline on amount alone names the largest amount that
//! every amount-dependent check accepts, computed from the simulators' real answers.

use std::time::Duration;

use dossier_devkit::harness::{TestApp, assert_every_decision_replays, example_application};
use dossier_service::proto::{self, Decision};

const AMOUNT_DEPENDENT: [&str; 5] = [
    "ASSESSMENT_LIMIT_EXCEEDED",
    "COMBINED_DEBT_LIMIT_EXCEEDED",
    "ANNUAL_TAX_BURDEN_EXCEEDED",
    "DEBT_TO_INCOME_EXCEEDED",
    "RESIDUAL_INCOME_INSUFFICIENT",
];

async fn evaluate(
    client: &mut dossier_service::proto::underwriting_service_client::UnderwritingServiceClient<
        tonic::transport::Channel,
    >,
    key: &str,
    amount_cents: i64,
) -> proto::Report {
    let mut a = example_application("approve");
    a.financing.as_mut().unwrap().amount_cents = amount_cents;
    let mut request = tonic::Request::new(proto::EvaluateApplicationRequest {
        idempotency_key: key.into(),
        source: Some(proto::evaluate_application_request::Source::Application(a)),
    });
    request.set_timeout(Duration::from_secs(30));
    client
        .evaluate_application(request)
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap()
}

/// The approvable example asking for the program's maximum is declined on amount; the
/// amount the report names is approved, and one cent more is declined again.
#[tokio::test]
async fn the_amount_that_would_pass_passes_and_one_cent_more_fails() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let too_much = evaluate(&mut client, "rescope-max", 30_000_000).await;
    assert_eq!(too_much.decision(), Decision::Declined, "{too_much:#?}");
    assert!(
        too_much
            .reason_codes
            .iter()
            .all(|c| AMOUNT_DEPENDENT.contains(&c.as_str())),
        "{:?}",
        too_much.reason_codes
    );
    let amount = too_much
        .amount_that_would_pass_cents
        .expect("a decline on amount alone names the amount that would pass");
    assert!((500_000..30_000_000).contains(&amount), "{amount}");
    // The figure is stored with the decision: GetReport shows it too.
    let fetched = client
        .get_report(proto::GetReportRequest {
            application_id: too_much.application_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(fetched.amount_that_would_pass_cents, Some(amount));

    let rescoped = evaluate(&mut client, "rescope-exact", amount).await;
    assert_eq!(rescoped.decision(), Decision::Approved, "{rescoped:#?}");
    assert_eq!(rescoped.amount_that_would_pass_cents, None);

    let one_cent_more = evaluate(&mut client, "rescope-plus-one", amount + 1).await;
    assert_eq!(one_cent_more.decision(), Decision::Declined);
    assert_eq!(one_cent_more.amount_that_would_pass_cents, Some(amount));
    assert_every_decision_replays(&app).await;
}

/// A decline that a smaller amount cannot cure (delinquent taxes) names no amount.
#[tokio::test]
async fn a_decline_on_other_grounds_names_no_amount() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let report = client
        .evaluate_application(dossier_devkit::harness::evaluate_request(
            "decline",
            "rescope-decline",
        ))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(report.decision(), Decision::Declined);
    assert_eq!(report.amount_that_would_pass_cents, None);
}
