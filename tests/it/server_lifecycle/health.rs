//! Health checks follow the database.

use std::time::Duration;

use dossier_devkit::harness::TestApp;
use sqlx::{Connection, Executor, PgConnection};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::watch_until;

const SERVICES: [&str; 3] = [
    "",
    "dossier.v1.UnderwritingService",
    "dossier.v1.DataService",
];

/// Kubernetes probes see SERVING while the database answers, NOT_SERVING once it is
/// gone, and SERVING again when it is back.
#[tokio::test]
async fn health_follows_the_database() {
    let app = TestApp::spawn().await;
    let mut health = HealthClient::new(app.channel().await);
    for service in SERVICES {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "service {service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    watch_until(&mut watch, ServingStatus::Serving, Duration::from_secs(5)).await;

    app.db.drop_now().await;
    watch_until(
        &mut watch,
        ServingStatus::NotServing,
        Duration::from_secs(20),
    )
    .await;
    for service in SERVICES {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::NotServing, "service {service:?}");
    }
    // Calls that reach the pod meanwhile are refused at once, pointed elsewhere, rather
    // than waiting for the pool to give up.
    let refused = app
        .client()
        .await
        .get_report(dossier_service::proto::GetReportRequest {
            application_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(
        refused.message().contains("cannot reach its database"),
        "{refused:?}"
    );
    assert!(
        tonic_types::StatusExt::get_details_retry_info(&refused).is_some(),
        "{refused:?}"
    );

    // The database comes back (empty, but it answers): the pod is ready again.
    let mut maintenance = url::Url::parse(&app.db.url).unwrap();
    maintenance.set_path("/template1");
    let mut conn = PgConnection::connect(maintenance.as_str()).await.unwrap();
    conn.execute(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {} TEMPLATE template0",
        app.db.name
    )))
    .await
    .unwrap();
    let _ = conn.close().await;
    watch_until(&mut watch, ServingStatus::Serving, Duration::from_secs(20)).await;
}

/// A pooled connection left inside a failed transaction (a caller cancelled at the
/// wrong moment) takes the pod out of rotation until the health reporter has rolled it
/// back; then the pool serves again.
#[tokio::test]
async fn a_pool_connection_left_in_a_transaction_is_not_serving_until_mended() {
    // Two connections: one is the LISTEN connection, so the other is the one poisoned.
    let app = TestApp::spawn_with(|a| {
        a.db_max_connections = 2;
        a.workers = 0;
    })
    .await;
    let mut health = HealthClient::new(app.channel().await);
    let mut watch = health
        .watch(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    watch_until(&mut watch, ServingStatus::Serving, Duration::from_secs(5)).await;

    // BEGIN by hand, then an error: the connection goes back to the pool aborted.
    let mut conn = app.pool.acquire().await.unwrap();
    conn.execute("BEGIN").await.unwrap();
    conn.execute("SELECT 1/0").await.unwrap_err();
    drop(conn);

    watch_until(
        &mut watch,
        ServingStatus::NotServing,
        Duration::from_secs(20),
    )
    .await;
    watch_until(&mut watch, ServingStatus::Serving, Duration::from_secs(20)).await;
    let aborted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(aborted, 0, "the poisoned connection was rolled back");
    app.client()
        .await
        .list_reports(dossier_service::proto::ListReportsRequest::default())
        .await
        .expect("the mended pool serves calls");
}

/// `dossier health`, the probe of images without a shell (`helm test`): success while
/// the server serves, a failure that says why once it does not, or cannot be reached.
#[tokio::test]
async fn the_health_command_succeeds_only_while_serving() {
    use dossier_service::cli::health;
    let app = TestApp::spawn().await;
    let args = |service: &str| health::Args {
        addr: app.endpoint(),
        service: service.into(),
        timeout: Duration::from_secs(10),
    };
    for service in SERVICES {
        health::run(args(service))
            .await
            .unwrap_or_else(|e| panic!("service {service:?}: {e:#}"));
    }
    let unknown = health::run(args("no.such.Service")).await.unwrap_err();
    assert!(
        format!("{unknown:#}").contains("no health service named \"no.such.Service\""),
        "{unknown:#}"
    );

    app.db.drop_now().await;
    let refused = dossier_devkit::harness::eventually(
        "dossier health to report the lost database",
        Duration::from_secs(20),
        || async { health::run(args("")).await.err() },
    )
    .await;
    assert!(
        format!("{refused:#}").contains("NOT_SERVING"),
        "{refused:#}"
    );

    let nobody = health::run(health::Args {
        // Port 1 on loopback: nothing listens there.
        addr: "http://127.0.0.1:1".into(),
        service: String::new(),
        timeout: Duration::from_secs(10),
    })
    .await
    .unwrap_err();
    assert!(
        format!("{nobody:#}").contains("cannot connect to Dossier at http://127.0.0.1:1"),
        "{nobody:#}"
    );
}
