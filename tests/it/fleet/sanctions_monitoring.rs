//! Ongoing sanctions monitoring across a fleet: loading a list version that names an
//! approved applicant raises exactly one alert, however many replicas serve.

use std::time::Duration;

use dossier_devkit::harness::{TestDb, evaluate_request, eventually};
use dossier_devkit::sim::{SimConfig, Simulators};
use dossier_service::proto::{self, Decision};

use super::{BINARY, Logs, bounded, load_sanctions, start_fleet};

const WITHIN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_naming_an_approved_applicant_raises_one_alert_for_the_fleet() {
    bounded(
        "a_list_naming_an_approved_applicant_raises_one_alert_for_the_fleet",
        monitoring(),
    )
    .await;
}

async fn monitoring() {
    let logs = Logs::new("monitoring");
    let db = TestDb::migrated().await;
    load_sanctions(&db.url).await;
    let sims = Simulators::start(SimConfig::default()).await.unwrap();
    let fleet = start_fleet(&db.url, &sims, 3, &logs).await;
    let pool = dossier_store::connect(&db.url, 2).await.unwrap();

    let channel = tonic::transport::Endpoint::from_shared(fleet.endpoints()[0].clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = proto::underwriting_service_client::UnderwritingServiceClient::new(channel);
    let report = client
        .evaluate_application(evaluate_request("approve", "monitor-1"))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(report.decision(), Decision::Approved);
    let declined = client
        .evaluate_application(evaluate_request("decline", "monitor-2"))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(declined.decision(), Decision::Declined);

    // A new list version names the first applicant of the approved application.
    let dir = tempfile::tempdir().unwrap();
    dossier_devkit::sample_sanctions::write_with_individual(
        dir.path(),
        49_001,
        "ADAMS, Elizabeth G",
    )
    .unwrap();
    let out = std::process::Command::new(BINARY)
        .args(["sanctions", "load"])
        .arg(dir.path())
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list_id: i64 = sqlx::query_scalar("SELECT id FROM sanctions_lists WHERE active")
        .fetch_one(&pool)
        .await
        .unwrap();

    // One job for the fleet screens the new version; its alert reaches Rails.
    eventually("the new list screened", WITHIN, || async {
        let finished: Option<bool> = sqlx::query_scalar(
            "SELECT finished_at IS NOT NULL FROM sanctions_monitoring_runs WHERE list_id = $1",
        )
        .bind(list_id)
        .fetch_optional(&pool)
        .await
        .unwrap();
        finished.filter(|f| *f)
    })
    .await;
    eventually("the alert delivered", WITHIN, || async {
        (sims.deliveries().sanctions_alerts.len() == 1).then_some(())
    })
    .await;
    let alerts: Vec<(String, String, i64, String)> = sqlx::query_as(
        "SELECT application_id::text, subject, entry_id, severity FROM sanctions_alerts",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        alerts,
        vec![(
            report.application_id.clone(),
            "applicant 1".to_owned(),
            49_001,
            "match".to_owned()
        )]
    );
    let (alert, received) = sims
        .deliveries()
        .sanctions_alerts
        .into_values()
        .next()
        .unwrap();
    assert_eq!(received, 1);
    assert_eq!(alert.candidate, "ADAMS, Elizabeth G");
    assert_eq!(alert.list_version, list_id);
    // Every replica took part in the queue, yet the version was screened once.
    let runs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sanctions_monitoring_runs WHERE list_id = $1")
            .bind(list_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(runs, 1);
    fleet.shutdown().await;
}
