//! ReviewApplication: an underwriter settles a REFER.

use dossier_devkit::harness::{TestApp, assert_every_decision_replays, evaluate_request};
use dossier_service::proto::{self, Decision};
use tonic::Code;
use tonic_types::StatusExt;

/// An underwriter settles a REFER once; the override sits beside the rules' decision.
#[tokio::test]
async fn review_settles_a_refer_once_and_is_kept_beside_the_decision() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let referred = client
        .evaluate_application(evaluate_request("refer", "rev-1"))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(referred.decision(), Decision::Refer);
    let queued = |id: String| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM reporting.review_queue WHERE application_id = $1::uuid",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(
        queued(referred.application_id.clone()).await,
        1,
        "a REFER waits in the review queue"
    );
    let review =
        |id: &str, outcome: proto::ReviewOutcome, reviewer: &str| proto::ReviewApplicationRequest {
            application_id: id.to_owned(),
            outcome: outcome as i32,
            note: "Trust documents show the applicant is the sole trustee.".into(),
            reviewer: reviewer.to_owned(),
        };
    let bad = client
        .review_application(review(
            &referred.application_id,
            proto::ReviewOutcome::Unspecified,
            "",
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let fields: Vec<String> = bad
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, vec!["outcome", "reviewer"]);

    let reviewed = client
        .review_application(review(
            &referred.application_id,
            proto::ReviewOutcome::Approve,
            "uw.alice@example.com",
        ))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(
        reviewed.decision(),
        Decision::Refer,
        "the automated decision is kept"
    );
    assert_eq!(reviewed.final_decision(), Decision::Approved);
    assert_eq!(
        queued(referred.application_id.clone()).await,
        0,
        "a reviewed application leaves the queue"
    );
    let r = reviewed.review.as_ref().unwrap();
    assert_eq!(
        (r.outcome(), r.reviewer.as_str()),
        (proto::ReviewOutcome::Approve, "uw.alice@example.com")
    );

    let again = client
        .review_application(review(
            &referred.application_id,
            proto::ReviewOutcome::Decline,
            "uw.bob@example.com",
        ))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");

    let approved = client
        .evaluate_application(evaluate_request("approve", "rev-2"))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    let err = client
        .review_application(review(
            &approved.application_id,
            proto::ReviewOutcome::Decline,
            "uw.bob@example.com",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("APPROVED"), "{}", err.message());

    let missing = client
        .review_application(review(
            &uuid::Uuid::new_v4().to_string(),
            proto::ReviewOutcome::Approve,
            "uw",
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_every_decision_replays(&app).await;
}
