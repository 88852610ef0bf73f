//! ReviewApplication: an underwriter settles a REFER.

use dossier_devkit::harness::{
    TestApp, as_reviewer, assert_every_decision_replays, evaluate_request,
};
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
    let review = |id: &str, outcome: proto::ReviewOutcome, reviewer: &str| {
        as_reviewer(
            proto::ReviewApplicationRequest {
                application_id: id.to_owned(),
                outcome: outcome as i32,
                note: "Trust documents show the applicant is the sole trustee.".into(),
                ..Default::default()
            },
            reviewer,
        )
    };
    let bad = client
        .review_application(review(
            &referred.application_id,
            proto::ReviewOutcome::Unspecified,
            "uw.alice@example.com",
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
    assert_eq!(fields, vec!["outcome"]);

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

/// The reviewer is who the identity provider says, never what the request claims: a
/// review without a valid ID token is refused and records nothing.
#[tokio::test]
async fn a_review_needs_the_underwriters_verified_token_and_records_its_subject() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let referred = client
        .evaluate_application(evaluate_request("refer", "rev-token-1"))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    #[allow(deprecated)] // the field a forger fills in
    let request = || proto::ReviewApplicationRequest {
        application_id: referred.application_id.clone(),
        outcome: proto::ReviewOutcome::Approve as i32,
        note: "Looks fine.".into(),
        // What an unauthenticated caller once got recorded and delivered to Rails.
        reviewer: "Chief Credit Officer".into(),
    };
    let foreign = {
        // A well-formed token from a provider the server does not trust.
        let key = dossier_devkit::dev_idp::DevIdentityProvider::load_or_create(
            &tempfile::tempdir().unwrap().path().join("k.pem"),
        )
        .unwrap();
        key.token(
            "uw.mallory@example.com",
            std::time::Duration::from_secs(600),
        )
    };
    for (what, token) in [
        ("no token", None),
        ("a token of another provider", Some(foreign)),
        ("not a JWT", Some("not-a-jwt".to_owned())),
    ] {
        let mut r = tonic::Request::new(request());
        if let Some(token) = token {
            r.metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        let err = client.review_application(r).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{what}: {err:?}");
        assert!(!err.message().contains("Chief"), "{what}: {err:?}");
    }
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM reviews")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(recorded, 0, "a refused review records nothing");

    let reviewed = client
        .review_application(as_reviewer(request(), "uw.alice@example.com"))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    let review = reviewed.review.unwrap();
    assert_eq!(review.reviewer, "uw.alice@example.com");
}
