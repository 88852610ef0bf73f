//! `dossier serve` as the service role (migration 15): a login that is only a member of
//! dossier_service serves the whole flow, and cannot rewrite the audit, change the
//! schema or read the reporting views.

use std::time::Duration;

use dossier_devkit::harness::{TestApp, TestDb, count_jobs, evaluate_request, eventually};
use dossier_service::proto::{self, Decision, GetReportRequest, ListReportsRequest};
use sqlx::Connection as _;

pub(crate) const LOGIN: &str = "dossier_service_test_login";

/// Creates [`LOGIN`], a login in the `dossier_service` role. Roles are cluster-wide:
/// created once, whatever runs beside the caller.
pub(crate) async fn create_service_login(admin: &mut sqlx::PgConnection) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DO $$ BEGIN
           CREATE ROLE {LOGIN} LOGIN IN ROLE dossier_service;
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
         END $$"
    )))
    .execute(&mut *admin)
    .await
    .unwrap();
}

/// The URL of the same database, logged in as `user`.
fn as_user(url: &str, user: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let host = rest.split_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}@{host}")
}

#[tokio::test]
async fn serve_runs_as_the_service_role_which_cannot_rewrite_the_audit() {
    // Any migrated database creates the cluster-wide dossier_service role; the login
    // is cluster-wide too, created once whatever runs beside this test.
    let first = TestDb::migrated().await;
    let mut admin = sqlx::PgConnection::connect(&first.url).await.unwrap();
    create_service_login(&mut admin).await;
    admin.close().await.unwrap();

    let app = TestApp::spawn_with(|a| {
        let url = a.database.database_url.clone().unwrap();
        a.database.database_url = Some(as_user(&url, LOGIN));
    })
    .await;
    let owner: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(owner, LOGIN, "the server's own pool logs in as the service");

    // The whole flow: evaluate (upstreams, audit, checks, decision, outbox), submit
    // (a worker evaluates and delivers), read, list, look a person up.
    let mut client = app.client().await;
    let report = client
        .evaluate_application(evaluate_request("approve", "service-role-1"))
        .await
        .expect("an evaluation as the service role")
        .into_inner()
        .report
        .unwrap();
    assert_eq!(report.decision, Decision::Approved as i32);
    client
        .submit_application(proto::SubmitApplicationRequest {
            idempotency_key: "service-role-2".into(),
            source: Some(proto::submit_application_request::Source::Application(
                dossier_devkit::harness::example_application("decline"),
            )),
        })
        .await
        .expect("a submission as the service role");
    client
        .get_report(GetReportRequest {
            application_id: report.application_id.clone(),
        })
        .await
        .expect("a report read as the service role");
    client
        .list_reports(ListReportsRequest::default())
        .await
        .expect("a listing as the service role");
    eventually(
        "both decisions evaluated and delivered by the workers",
        Duration::from_secs(60),
        || async {
            let open = count_jobs(&app.pool, "evaluate", "queued").await
                + count_jobs(&app.pool, "evaluate", "running").await
                + count_jobs(&app.pool, "deliver", "queued").await
                + count_jobs(&app.pool, "deliver", "running").await;
            let done = count_jobs(&app.pool, "deliver", "done").await;
            (open == 0 && done == 2).then_some(())
        },
    )
    .await;
    let failed: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state <> 'done'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(failed, 0, "a job failed as the service role");

    // What the service role may not do, each refused by PostgreSQL (42501).
    for statement in [
        "DELETE FROM access_log",
        "UPDATE access_log SET caller = 'someone else'",
        "DELETE FROM upstream_calls",
        "TRUNCATE upstream_calls",
        "DELETE FROM decisions",
        "UPDATE decisions SET decision = 'approve'",
        "ALTER TABLE applications ADD COLUMN x int",
        "DROP TABLE reviews",
        "CREATE TABLE public.scratch (x int)",
        "SELECT count(*) FROM reporting.decisions",
        "DELETE FROM _sqlx_migrations",
    ] {
        let err = sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&app.pool)
            .await
            .expect_err(statement);
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.into_owned());
        assert!(
            matches!(code.as_deref(), Some("42501")),
            "{statement}: expected insufficient_privilege, got {err}"
        );
    }
}
