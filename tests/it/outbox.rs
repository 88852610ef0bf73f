//! Decision delivery to Rails (the outbox): every decision reaches the Rails backend's
//! callback exactly once per idempotency key, through failures, and dead letters can be
//! re-run. Real server, real PostgreSQL, the real Rails simulator.

use std::time::Duration;

use dossier_devkit::harness::{TestApp, count_jobs, evaluate_request, eventually};
use dossier_devkit::sim::{Behaviour, Fault, Upstream};
use dossier_store::jobs::Retried;
use dossier_upstream::rails::DecidedBy;

const WITHIN: Duration = Duration::from_secs(30);

async fn decided_application(app: &TestApp, example: &str, key: &str) -> uuid::Uuid {
    let report = app
        .client()
        .await
        .evaluate_application(evaluate_request(example, key))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    report.application_id.parse().unwrap()
}

#[tokio::test]
async fn every_decision_is_delivered_once_with_its_id_as_idempotency_key() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for (example, key) in [
        ("approve", "d-1"),
        ("decline", "d-2"),
        ("refer", "d-3"),
        ("rails", "d-4"),
    ] {
        ids.push(decided_application(&app, example, key).await);
    }
    eventually("four deliveries acknowledged", WITHIN, || async {
        (count_jobs(&app.pool, "deliver", "done").await == 4).then_some(())
    })
    .await;

    let delivered = app.sims.deliveries();
    assert_eq!(delivered.decisions.len(), 4, "{delivered:#?}");
    assert_eq!(delivered.received(), 4, "each delivered once");
    for id in ids {
        let stored: (uuid::Uuid, String, String) = sqlx::query_as(
            "SELECT d.run_id, d.decision, a.idempotency_key FROM decisions d
             JOIN applications a ON a.id = d.application_id WHERE d.application_id = $1",
        )
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        let got = app.sims.deliveries();
        let mine = got.for_application(id);
        assert_eq!(mine.len(), 1, "one decision delivered for {id}");
        assert_eq!(mine[0].decision.decision_id, stored.0);
        assert_eq!(mine[0].decision.decision, stored.1);
        assert_eq!(mine[0].decision.submission_key, stored.2);
    }
    // The Rails-sourced application names its Rails id.
    assert!(
        delivered
            .decisions
            .values()
            .any(|d| d.decision.rails_application_id.is_some())
    );
}

#[tokio::test]
async fn a_delivery_rails_refuses_is_retried_until_acknowledged() {
    let app = TestApp::spawn().await;
    // Rails answers 200 with an error body: not an acknowledgement.
    app.sims
        .set_behaviour(Upstream::Rails, Behaviour::with_fault(Fault::ErrorIn200));
    let id = decided_application(&app, "approve", "retry-1").await;
    let error: String = eventually("the first delivery attempt to fail", WITHIN, || async {
        sqlx::query_scalar::<_, Option<String>>(
            "SELECT last_error FROM jobs WHERE kind = 'deliver' AND application_id = $1",
        )
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
    })
    .await;
    assert!(error.contains("Rails"), "{error}");
    assert!(app.sims.deliveries().decisions.is_empty());

    app.sims
        .set_behaviour(Upstream::Rails, Behaviour::default());
    // The retry comes after the job's back-off (2 s after the first failure).
    eventually(
        "the delivery to succeed on a later attempt",
        WITHIN,
        || async { (count_jobs(&app.pool, "deliver", "done").await == 1).then_some(()) },
    )
    .await;
    let delivered = app.sims.deliveries();
    assert_eq!(delivered.for_application(id).len(), 1);
    assert_eq!(delivered.received(), 1);
}

#[tokio::test]
async fn a_dead_delivery_is_reported_and_re_run_by_dossier_jobs_retry() {
    let app = TestApp::spawn().await;
    app.sims.set_behaviour(
        Upstream::Rails,
        Behaviour {
            error_rate: 1.0,
            ..Behaviour::default()
        },
    );
    // One attempt per job in this database, so the first failure dead-letters it.
    sqlx::query(
        "CREATE FUNCTION one_attempt() RETURNS trigger LANGUAGE plpgsql AS
         $$ BEGIN NEW.max_attempts := 1; RETURN NEW; END $$;
         ",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query("CREATE TRIGGER one_attempt BEFORE INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION one_attempt()")
        .execute(&app.pool)
        .await
        .unwrap();
    let id = decided_application(&app, "decline", "dead-1").await;
    let (job_id, error): (i64, String) =
        eventually("the delivery to be dead-lettered", WITHIN, || async {
            sqlx::query_as(
                "SELECT job_id, last_error FROM reporting.dead_letters
                 WHERE kind = 'deliver' AND application_id = $1",
            )
            .bind(id)
            .fetch_optional(&app.pool)
            .await
            .unwrap()
        })
        .await;
    assert!(error.contains("Rails") && error.contains("503"), "{error}");

    // Rails is back; an operator re-runs the dead letter with the real command.
    app.sims
        .set_behaviour(Upstream::Rails, Behaviour::default());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dossier"))
        .args(["jobs", "retry", &job_id.to_string()])
        .env("DATABASE_URL", &app.db.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("queued again"));
    eventually("the re-run delivery to be acknowledged", WITHIN, || async {
        (count_jobs(&app.pool, "deliver", "done").await == 1).then_some(())
    })
    .await;
    assert_eq!(app.sims.deliveries().for_application(id).len(), 1);

    // Only dead jobs are re-run, and unknown ids are named.
    assert_eq!(app.store.retry_job(job_id).await.unwrap(), Retried::NotDead);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dossier"))
        .args(["jobs", "retry", "999999"])
        .env("DATABASE_URL", &app.db.url)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("job 999999 does not exist"));
}

#[tokio::test]
async fn an_underwriters_review_is_delivered_as_the_final_decision() {
    let app = TestApp::spawn().await;
    let id = decided_application(&app, "refer", "review-1").await;
    app.client()
        .await
        .review_application(dossier_devkit::harness::as_reviewer(
            dossier_service::proto::ReviewApplicationRequest {
                application_id: id.to_string(),
                outcome: dossier_service::proto::ReviewOutcome::Approve as i32,
                note: "Trust documents show the applicant is the sole trustee.".into(),
                ..Default::default()
            },
            "uw.alice@example.com",
        ))
        .await
        .unwrap();
    eventually("both deliveries acknowledged", WITHIN, || async {
        (count_jobs(&app.pool, "deliver", "done").await == 1
            && count_jobs(&app.pool, "deliver_review", "done").await == 1)
            .then_some(())
    })
    .await;
    let delivered = app.sims.deliveries();
    let mine = delivered.for_application(id);
    assert_eq!(mine.len(), 2, "{delivered:#?}");
    let refer = mine
        .iter()
        .find(|d| d.decision.decided_by == DecidedBy::Policy)
        .unwrap();
    let review = mine
        .iter()
        .find(|d| d.decision.decided_by == DecidedBy::Underwriter)
        .unwrap();
    assert_eq!(refer.decision.decision, "refer");
    assert_eq!(review.decision.decision, "approved");
    assert_eq!(review.decision.replaces, Some(refer.decision.decision_id));
    // The underwriter the verified ID token named, not a name the request asserted.
    assert_eq!(
        review.decision.reviewer.as_deref(),
        Some("uw.alice@example.com")
    );
    assert_eq!(refer.decision.reviewer, None);
    assert_ne!(review.decision.decision_id, refer.decision.decision_id);
    assert_eq!(review.decision.reason_codes, refer.decision.reason_codes);
}

#[tokio::test]
async fn a_decision_reaches_rails_while_every_other_worker_is_busy_evaluating() {
    let app = TestApp::spawn_with(|a| {
        a.workers = 1;
        a.delivery_workers = 1;
    })
    .await;
    let mut client = app.client().await;
    // Decided once, so that every vendor answer about it is cached.
    decided_application(&app, "approve", "cached-1").await;

    // The identity vendor now hangs for a minute, and a submitted application about a
    // new applicant holds the only general worker for that long.
    app.sims.set_behaviour(
        Upstream::Identity,
        Behaviour {
            latency_ms: 60_000,
            ..Behaviour::default()
        },
    );
    let mut stuck = dossier_devkit::harness::example_application("approve");
    stuck.applicants[0].last_name = "Backlogged".into();
    let submitted = client
        .submit_application(tonic::Request::new(
            dossier_service::proto::SubmitApplicationRequest {
                idempotency_key: "stuck-1".into(),
                source: Some(
                    dossier_service::proto::submit_application_request::Source::Application(stuck),
                ),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let stuck_id: uuid::Uuid = submitted.application_id.parse().unwrap();
    eventually("the general worker to be evaluating", WITHIN, || async {
        (count_jobs(&app.pool, "evaluate", "running").await == 1).then_some(())
    })
    .await;

    // The cached application again, under a new key: decided at once from the caches.
    // Its delivery does not wait for the hung evaluation.
    let id = decided_application(&app, "approve", "cached-2").await;
    eventually("the decision delivered to Rails", WITHIN, || async {
        (app.sims.deliveries().for_application(id).len() == 1).then_some(())
    })
    .await;
    let state: String = sqlx::query_scalar(
        "SELECT state FROM jobs WHERE kind = 'evaluate' AND application_id = $1",
    )
    .bind(stuck_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        state, "running",
        "delivered while the evaluation still runs"
    );
}

#[tokio::test]
async fn workers_claim_deliveries_before_older_evaluations_and_delivery_workers_nothing_else() {
    use dossier_store::jobs::{JobKind, Lane};
    let db = dossier_devkit::harness::TestDb::migrated().await;
    let pool = dossier_store::connect(&db.url, 2).await.unwrap();
    let store = dossier_store::Store::new(pool.clone(), dossier_store::Vault::ephemeral());
    // Two evaluations queued a minute ago, a delivery queued now (no rows they point at:
    // claiming does not read them).
    sqlx::query(
        "INSERT INTO jobs (kind, run_at) VALUES ('evaluate', now() - interval '1 minute'),
                                                ('evaluate', now() - interval '1 minute'),
                                                ('deliver', now())",
    )
    .execute(&pool)
    .await
    .unwrap();
    let lease = Duration::from_secs(30);
    let claim = |lane| {
        let store = store.clone();
        async move {
            store
                .claim_job("test:1/0", lease, lane)
                .await
                .unwrap()
                .map(|j| j.kind)
        }
    };
    assert_eq!(
        claim(Lane::All).await,
        Some(JobKind::Deliver),
        "the delivery first"
    );
    assert_eq!(
        claim(Lane::Deliveries).await,
        None,
        "no evaluation for a delivery worker"
    );
    assert_eq!(claim(Lane::All).await, Some(JobKind::Evaluate));
    assert_eq!(claim(Lane::All).await, Some(JobKind::Evaluate));
    assert_eq!(claim(Lane::All).await, None);
}
