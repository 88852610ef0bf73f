//! Refusing to serve on an old schema.

use dossier_devkit::harness::TestDb;
use dossier_devkit::sim::{SimConfig, Simulators};
use dossier_service::config::ServeArgs;
use dossier_service::server::Server;
use sqlx::{Connection, PgConnection};

/// A new binary never runs against an old schema by accident: it names what is pending
/// and how to fix it, and `--migrate` fixes it.
#[tokio::test]
async fn build_refuses_an_unmigrated_database_unless_asked_to_migrate() {
    let db = TestDb::empty().await;
    let sims = Simulators::start(SimConfig::default()).await.unwrap();
    let mut args = dossier_devkit::harness::serve_args(&db.url);
    dossier_devkit::harness::point_at_sims(&mut args, &sims);
    let config =
        |args: &ServeArgs| dossier_devkit::harness::dev_config(args.clone(), None).unwrap();

    let err = match Server::build(config(&args)).await {
        Ok(_) => panic!("a server was built on an unmigrated database"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("pending"), "{err}");
    assert!(err.contains("dossier migrate"), "{err}");
    let migrations: Vec<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .split('_')
                    .next()
                    .unwrap()
                    .to_owned()
            })
            .collect();
    assert!(!migrations.is_empty());
    for version in &migrations {
        assert!(
            err.contains(version.as_str()),
            "the message names pending migration {version}: {err}"
        );
    }
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'applications'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(tables, 0, "refusing to start changes nothing");
    let _ = conn.close().await;

    args.migrate = true;
    let server = Server::build(config(&args))
        .await
        .expect("with --migrate the server builds");
    let pending = dossier_store::pending_migrations(&server.store().pool)
        .await
        .unwrap();
    assert!(pending.is_empty(), "{pending:?}");
}
