//! Test harness: a fresh database per test on a real PostgreSQL, the real simulators,
//! and the real server on port 0, called over a real socket.
//!
//! PostgreSQL: `DATABASE_URL` when set (any database on the server; each test creates
//! its own), otherwise one private server per test binary, started like `dossier dev`
//! does and removed by its watchdog when the binary exits.

#![allow(dead_code)]

use std::sync::OnceLock;
use std::time::Duration;

use crate::devdb::PrivatePostgres;
use crate::sim::{SimConfig, Simulators, Upstream};
use dossier_service::config::{ServeArgs, ServeConfig};
use dossier_service::proto::underwriting_service_client::UnderwritingServiceClient;
use dossier_service::server::Server;
use dossier_store::{Store, Vault};
use dossier_upstream::UpstreamSettings;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use tokio::sync::oneshot;
use tonic::transport::Channel;

static PRIVATE_PG: OnceLock<PrivatePostgres> = OnceLock::new();

/// URL of a database the tests may create databases from.
fn admin_url() -> String {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return url;
    }
    PRIVATE_PG
        .get_or_init(|| {
            PrivatePostgres::start()
                .expect("start a private PostgreSQL for the tests (or set DATABASE_URL)")
        })
        .url()
}

fn with_database(url: &str, db: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("DATABASE_URL is a URL");
    parsed.set_path(&format!("/{db}"));
    parsed.to_string()
}

/// A database of its own for one test, dropped when the test ends.
pub struct TestDb {
    pub name: String,
    pub url: String,
    admin: String,
}

impl TestDb {
    /// An empty database (no migrations).
    pub async fn empty() -> TestDb {
        let admin = admin_url();
        let name = format!("dossier_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&admin)
            .await
            .expect("connect to the test PostgreSQL");
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create test database");
        let _ = conn.close().await;
        TestDb {
            url: with_database(&admin, &name),
            name,
            admin,
        }
    }

    /// A migrated database.
    pub async fn migrated() -> TestDb {
        let db = TestDb::empty().await;
        dossier_store::migrate(&db.url)
            .await
            .expect("migrate test database");
        db
    }

    /// Drops the database now, disconnecting everyone (simulates losing it).
    pub async fn drop_now(&self) {
        let mut conn = PgConnection::connect(&self.admin).await.expect("connect");
        conn.execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .await
        .expect("drop database");
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop runs outside async context; a short-lived runtime on its own thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    let _ = conn
                        .execute(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A running Dossier with its own database and simulators.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    /// The admin HTTP address (GET /metrics).
    pub admin: std::net::SocketAddr,
    /// The plaintext grpc.health.v1 port, when the settings asked for one.
    pub health: Option<std::net::SocketAddr>,
    pub db: TestDb,
    pub pool: PgPool,
    pub store: Store,
    pub sims: Simulators,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub fn serve_args(database_url: &str) -> ServeArgs {
    ServeArgs::loopback(database_url)
}

/// The configuration the developer tools serve with: throw-away keys, the sample
/// sanctions list, the tests' reviewer identity provider, and `upstreams` instead of the flags' when given.
pub fn dev_config(
    args: ServeArgs,
    upstreams: Option<UpstreamSettings>,
) -> anyhow::Result<ServeConfig> {
    dev_config_with_vault(args, upstreams, Vault::ephemeral())
}

/// The same, with the given keys.
pub fn dev_config_with_vault(
    args: ServeArgs,
    upstreams: Option<UpstreamSettings>,
    vault: Vault,
) -> anyhow::Result<ServeConfig> {
    let mut config = args.into_config_with(vault, upstreams)?;
    config.seed_sanctions = Some(crate::sample_sanctions::seed());
    if config.security.reviewers.is_none() {
        let provider = crate::dev_idp::DevIdentityProvider::for_tests();
        config.security.reviewers = Some(std::sync::Arc::new(provider.verifier()));
    }
    Ok(config)
}

/// `request` carrying an ID token for underwriter `subject` from the provider the
/// harness's servers trust.
pub fn as_reviewer<T>(request: T, subject: &str) -> tonic::Request<T> {
    let token =
        crate::dev_idp::DevIdentityProvider::for_tests().token(subject, Duration::from_secs(3600));
    let mut request = tonic::Request::new(request);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("a token is ASCII"),
    );
    request
}

pub fn point_at_sims(args: &mut ServeArgs, sims: &Simulators) {
    let u = &mut args.upstreams;
    u.rails_url = Some(sims.base_url(Upstream::Rails));
    u.rails_token =
        dossier_service::config::Secret::value("DOSSIER_RAILS_TOKEN", sims.rails_token());
    u.property_records_url = Some(sims.base_url(Upstream::PropertyRecords));
    u.valuation_url = Some(sims.base_url(Upstream::Valuation));
    u.identity_url = Some(sims.base_url(Upstream::Identity));
    u.licensing_url = Some(sims.base_url(Upstream::Licensing));
    u.registry_url = Some(sims.base_url(Upstream::Registry));
    u.alt_valuation_url = Some(sims.base_url(Upstream::AltValuation));
    u.alt_identity_url = Some(sims.base_url(Upstream::AltIdentity));
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(|_| {}).await
    }

    /// Spawns with settings adjusted by `tweak`.
    pub async fn spawn_with(tweak: impl FnOnce(&mut ServeArgs)) -> TestApp {
        TestApp::spawn_with_vault(Vault::ephemeral(), tweak).await
    }

    /// Spawns with these encryption keys, on a database of its own.
    pub async fn spawn_with_vault(vault: Vault, tweak: impl FnOnce(&mut ServeArgs)) -> TestApp {
        TestApp::spawn_configured(vault, tweak, |_, _| {}).await
    }

    /// Spawns with the settings adjusted by `tweak`, then the resolved configuration
    /// by `configure` (e.g. upstream settings a file and secrets would give).
    pub async fn spawn_configured(
        vault: Vault,
        tweak: impl FnOnce(&mut ServeArgs),
        configure: impl FnOnce(&mut ServeConfig, &Simulators),
    ) -> TestApp {
        let db = TestDb::migrated().await;
        let sims = Simulators::start(SimConfig::default())
            .await
            .expect("start simulators");
        let mut args = serve_args(&db.url);
        point_at_sims(&mut args, &sims);
        tweak(&mut args);
        let mut config = dev_config_with_vault(args, None, vault).expect("test settings are valid");
        configure(&mut config, &sims);
        let server = Server::build(config).await.expect("build server");
        let addr = server.local_addr();
        let admin = server.admin_addr();
        let health = server.health_addr();
        let store = server.store().clone();
        let pool = store.pool.clone();
        let (tx, rx) = oneshot::channel();
        let handle = tokio::spawn(server.run_until_stopped(async {
            let _ = rx.await;
        }));
        TestApp {
            addr,
            admin,
            health,
            db,
            pool,
            store,
            sims,
            shutdown: Some(tx),
            server: Some(handle),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.endpoint())
            .unwrap()
            .connect()
            .await
            .expect("connect to the test server")
    }

    /// The admin port's `GET /metrics`, as text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.admin))
            .await
            .expect("the admin port answers")
            .text()
            .await
            .expect("metrics are text")
    }

    pub async fn client(&self) -> UnderwritingServiceClient<Channel> {
        UnderwritingServiceClient::new(self.channel().await)
    }

    /// Sends SIGTERM-equivalent shutdown and waits for the server to stop.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.server.take() {
            Some(h) => h.await.expect("server task"),
            None => Ok(()),
        }
    }

    /// Begins shutdown without waiting.
    pub fn begin_stop(&mut self) -> Option<tokio::task::JoinHandle<anyhow::Result<()>>> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.server.take()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The repository's root (examples/, migrations/, tests/fixtures/).
pub fn repository_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// An example application file as a request source.
pub fn example(name: &str) -> dossier_service::proto::evaluate_application_request::Source {
    let path = repository_root()
        .join("examples")
        .join(format!("{name}.json"));
    dossier_service::cli::evaluate::read_file(&path).expect("example parses")
}

/// The example as an inline Application message.
pub fn example_application(name: &str) -> dossier_service::proto::Application {
    match example(name) {
        dossier_service::proto::evaluate_application_request::Source::Application(a) => a,
        _ => panic!("{name} is not an inline application"),
    }
}

/// A person look-up of the first applicant of an example application (its name, SSN,
/// date of birth and the property's address), for `purpose`.
pub fn person_request(
    example: &str,
    purpose: dossier_service::proto::LookupPurpose,
) -> dossier_service::proto::GetPersonProfileRequest {
    let application = example_application(example);
    let applicant = &application.applicants[0];
    dossier_service::proto::GetPersonProfileRequest {
        first_name: applicant.first_name.clone(),
        last_name: applicant.last_name.clone(),
        ssn: applicant.ssn.clone(),
        date_of_birth: applicant.date_of_birth,
        address: application
            .property
            .as_ref()
            .and_then(|p| p.address.clone()),
        purpose: purpose as i32,
        ..Default::default()
    }
}

pub fn evaluate_request(
    name: &str,
    key: &str,
) -> tonic::Request<dossier_service::proto::EvaluateApplicationRequest> {
    let mut r = tonic::Request::new(dossier_service::proto::EvaluateApplicationRequest {
        idempotency_key: key.to_owned(),
        source: Some(example(name)),
    });
    r.set_timeout(Duration::from_secs(30));
    r
}

/// Replays every decision in the test's database from its stored inputs and policy, and
/// fails the test if one does not come out the same: decisions are reproducible.
pub async fn assert_every_decision_replays(app: &TestApp) {
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT DISTINCT application_id FROM decisions")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert!(!ids.is_empty(), "nothing to replay");
    for id in ids {
        for r in dossier_service::underwriting::replay(&app.store, id)
            .await
            .unwrap()
        {
            assert!(r.matches(), "replay of {id} differs: {r:?}");
        }
    }
}

/// Re-checks `check` until it yields a value, failing the test with `what` if it has not
/// within `within`. For state another task or process reaches on its own (a job done, a
/// delivery acknowledged); each look is a real query, never a guess at how long to wait.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let give_up = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "gave up after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Jobs of one kind in one state.
pub async fn count_jobs(pool: &PgPool, kind: &str, state: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = $1 AND state = $2")
        .bind(kind)
        .bind(state)
        .fetch_one(pool)
        .await
        .unwrap()
}
