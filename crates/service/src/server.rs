//! Wiring: build every component from settings, serve gRPC, shut down gracefully.
//! Shaped like zero2prod's `Application::build` / `run_until_stopped` so tests start
//! the real server on port 0.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::api::RpcLogLayer;
use crate::api::data::DataApi;
use crate::api::underwriting::UnderwritingApi;
use crate::config::ServeConfig;
use crate::identity::AuthorizeLayer;
use crate::proto::data_service_server::DataServiceServer;
use crate::proto::underwriting_service_server::UnderwritingServiceServer;
use crate::underwriting::Underwriter;
use dossier_store::audit::{AuditSink, AuditWriter};
use dossier_store::notify::Notifications;
use dossier_store::{self as store, Store};
use dossier_upstream::Upstreams;

/// Services reported by grpc.health.v1 ("" is the whole server).
const HEALTH_SERVICES: [&str; 3] = [
    "",
    "dossier.v1.UnderwritingService",
    "dossier.v1.DataService",
];
/// Largest request message a service decodes. Dossier's requests are a few KB (an
/// application with two applicants is under 4 KB), so tonic's 4 MB default would only
/// let a caller make the server buffer and parse megabytes per stream.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Streams one client connection may have open at once (HTTP/2
/// SETTINGS_MAX_CONCURRENT_STREAMS). Without it h2 accepts any number, and hung streams
/// hold memory; a well-behaved channel multiplexes far fewer.
const MAX_CONCURRENT_STREAMS: u32 = 256;
/// How long an HTTP/2 keepalive ping may go unanswered before the connection is closed.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// How often the health reporter pings the database.
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);

/// A built, bound, not yet serving Dossier.
pub struct Server {
    listener: TcpListener,
    admin_listener: TcpListener,
    health_listener: Option<TcpListener>,
    security: crate::config::Security,
    underwriter: Underwriter,
    notifications: Notifications,
    audit_writer: AuditWriter,
    database_url: String,
    run: RunSettings,
}

/// The settings the running server still needs once everything is built.
struct RunSettings {
    watch_limits: std::sync::Arc<crate::api::watch_limits::WatchLimits>,
    max_calls_in_flight: usize,
    workers: usize,
    delivery_workers: usize,
    job_lease: Duration,
    shutdown_grace: Duration,
    shutdown_delay: Duration,
    max_connection_age: Duration,
    fleet_metrics_interval: Duration,
    retention: crate::config::RetentionSettings,
}

/// How often each pod checks for a newly loaded sanctions list.
const SANCTIONS_REFRESH: Duration = Duration::from_secs(60);
/// How often each pod deletes expired cache answers and spent fetch leases.
const CACHE_PURGE: Duration = Duration::from_secs(600);

impl Server {
    pub async fn build(config: ServeConfig) -> anyhow::Result<Server> {
        // Before anything records a metric (the breakers export their state at birth).
        crate::telemetry::metrics_handle();
        crate::metric_catalogue::describe();
        let ServeConfig {
            database_url,
            grpc_addr,
            admin_addr,
            migrate,
            db_max_connections,
            vault,
            policy,
            notices,
            sanctions_monitor_funded_days,
            upstreams,
            watch_streams_max,
            watch_streams_per_caller,
            max_calls_in_flight,
            workers,
            delivery_workers,
            job_lease,
            shutdown_grace,
            shutdown_delay,
            max_connection_age,
            fleet_metrics_interval,
            retention,
            security,
            seed_sanctions,
        } = config;
        if migrate {
            let applied = store::migrate(&database_url).await?;
            if !applied.is_empty() {
                tracing::info!(?applied, "migrations applied");
            }
        }
        let pool = store::connect(&database_url, db_max_connections).await?;
        let pending = store::pending_migrations(&pool).await?;
        if !pending.is_empty() {
            let list: Vec<String> = pending.iter().map(|(v, d)| format!("{v} {d}")).collect();
            anyhow::bail!(
                "the database schema is older than this binary: {} migration(s) pending ({}). Run `dossier migrate` first, or start with --migrate",
                pending.len(),
                list.join(", ")
            );
        }
        let (audit, audit_writer) = AuditSink::start(pool.clone());
        let store = Store::new(pool.clone(), vault);
        let notifications = Notifications::start(pool.clone());
        let upstreams = Upstreams::new(
            &upstreams,
            &store.shared_state(audit, Some(notifications.clone())),
        );
        let listener = TcpListener::bind(grpc_addr).await.with_context(|| {
            format!(
                "cannot listen on {grpc_addr} (DOSSIER_GRPC_ADDR); is another process using it?"
            )
        })?;
        let admin_listener = TcpListener::bind(admin_addr).await.with_context(|| {
            format!(
                "cannot listen on {admin_addr} (DOSSIER_ADMIN_ADDR); is another process using it?"
            )
        })?;
        let health_listener = match security.health_addr {
            Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| {
                format!(
                    "cannot listen on {addr} (DOSSIER_HEALTH_ADDR); is another process using it?"
                )
            })?),
            None => None,
        };
        tracing::info!(policy_version = %policy.policy.version, policy_hash = %policy.hash, "policy loaded");
        // Every policy a decision names is kept by hash, so decisions can be replayed.
        store
            .save_policy(&policy.hash, &policy.policy.version, &policy.source)
            .await?;
        if let Some(seed) = &seed_sanctions
            && store.active_sanctions_version().await?.is_none()
        {
            let loaded = store
                .replace_sanctions_list(&seed.list, &seed.source)
                .await?;
            tracing::info!(%loaded, source = %seed.source, "loaded a seed sanctions list");
        }
        let sanctions = Arc::new(dossier_upstream::sanctions::SanctionsList::empty());
        if let Err(e) = sanctions.refresh_from(&store).await {
            tracing::warn!(error = %e, "could not read the sanctions list; sanctions checks are UNAVAILABLE until it loads");
        }
        if notices.lender.is_none() || notices.consumer_reporting.is_empty() {
            tracing::warn!(
                "the notices file does not name the lender and every consumer reporting agency: adverse-action notices of declines list what is missing and must not be sent as they are (set --notices-file / DOSSIER_NOTICES_FILE, docs/configuration.md)"
            );
        }
        if sanctions.version().is_none() {
            tracing::warn!(
                "no sanctions list is loaded: sanctions checks are UNAVAILABLE (REFER) until `dossier sanctions load DIR` runs"
            );
        }
        Ok(Server {
            listener,
            admin_listener,
            health_listener,
            security,
            underwriter: Underwriter {
                store,
                upstreams,
                policy: Arc::new(policy),
                notices: Arc::new(notices),
                sanctions,
                funding_flights: Default::default(),
                monitor_funded_days: i32::try_from(sanctions_monitor_funded_days)
                    .unwrap_or(i32::MAX),
            },
            notifications,
            audit_writer,
            database_url,
            run: RunSettings {
                watch_limits: crate::api::watch_limits::WatchLimits::new(
                    watch_streams_max,
                    watch_streams_per_caller,
                ),
                max_calls_in_flight,
                workers,
                delivery_workers,
                job_lease,
                shutdown_grace,
                shutdown_delay,
                max_connection_age,
                fleet_metrics_interval,
                retention,
            },
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Where the plaintext grpc.health.v1 port listens, when there is one.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health_listener
            .as_ref()
            .map(|l| l.local_addr().expect("a bound listener has an address"))
    }

    /// Where `GET /metrics` is served.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn store(&self) -> &Store {
        &self.underwriter.store
    }

    /// Serves until `shutdown` resolves, then: health NOT_SERVING, optional delay, stop
    /// accepting (GOAWAY), let in-flight calls finish within the grace period, hand
    /// back jobs, flush the audit trail.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let Server {
            listener,
            admin_listener,
            health_listener,
            security,
            underwriter,
            notifications,
            audit_writer,
            database_url,
            run,
        } = self;
        let addr = listener.local_addr()?;
        let (reporter, health_service) = tonic_health::server::health_reporter();
        set_health(&reporter, ServingStatus::Serving).await;

        let stopping = CancellationToken::new();
        let admin_stop = stopping.clone();
        let admin_addr = admin_listener.local_addr()?;
        let admin = tokio::spawn(crate::telemetry::serve_admin(admin_listener, async move {
            admin_stop.cancelled().await
        }));
        tracing::info!(%admin_addr, "admin HTTP (GET /metrics)");
        let sanctions_task = tokio::spawn(refresh_sanctions(
            underwriter.sanctions.clone(),
            underwriter.store.clone(),
            stopping.clone(),
        ));
        let purge_task = tokio::spawn(purge_cache(underwriter.store.clone(), stopping.clone()));
        let retention_task = tokio::spawn(crate::retention::run(
            underwriter.store.clone(),
            run.retention,
            stopping.clone(),
        ));
        let metrics_task = tokio::spawn(crate::fleet_metrics::run(
            crate::fleet_metrics::Sampled::of(&underwriter),
            run.fleet_metrics_interval,
            stopping.clone(),
        ));
        let database_up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let health_task = tokio::spawn(watch_database(
            database_url,
            underwriter.store.pool.clone(),
            reporter.clone(),
            database_up.clone(),
            stopping.clone(),
        ));

        let workers_stop = CancellationToken::new();
        let worker_prefix = format!("{}:{}", hostname(), std::process::id());
        let mut workers = crate::jobs::start(
            underwriter.clone(),
            notifications.clone(),
            crate::jobs::WorkerCounts {
                all: run.workers,
                deliveries: run.delivery_workers,
            },
            run.job_lease,
            &worker_prefix,
            workers_stop.clone(),
        );

        // Handlers wait for their accesses to be written before answering, so the
        // writer needs no flush: it ends when the last handler is dropped.
        let (access_log, _access_writer) =
            dossier_store::access_log::AccessLog::start(underwriter.store.pool.clone());
        let streams_stop = CancellationToken::new();
        let underwriting = UnderwritingServiceServer::new(UnderwritingApi {
            underwriter: underwriter.clone(),
            notifications,
            stopping: streams_stop.clone(),
            reviewers: security.reviewers.clone(),
            access: security.access.clone(),
            watch_limits: run.watch_limits.clone(),
            access_log: access_log.clone(),
        })
        .max_decoding_message_size(MAX_REQUEST_BYTES);
        let data = DataServiceServer::new(DataApi {
            access: security.access.clone(),
            access_log,
            store: underwriter.store.clone(),
            upstreams: underwriter.upstreams.clone(),
            sanctions: underwriter.sanctions.clone(),
            sanctions_threshold: underwriter.policy.policy.sanctions.review_threshold,
        })
        .max_decoding_message_size(MAX_REQUEST_BYTES);
        drop(underwriter);

        if security.reviewers.is_none() {
            tracing::warn!(
                "no reviewer identity provider (DOSSIER_REVIEWER_JWKS_FILE): ReviewApplication refuses every review"
            );
        }
        let accept_stop = CancellationToken::new();
        if let Some(tls) = &security.tls {
            tokio::spawn(
                tls.clone()
                    .watch(security.tls_reload_interval, accept_stop.clone()),
            );
            tracing::info!(
                "mutual TLS on the gRPC port: client certificates required, calls authorised by the access policy"
            );
        } else {
            tracing::warn!(
                "CLIENT AUTHENTICATION IS OFF: plaintext gRPC, every caller may call every method and read every application. Configure DOSSIER_TLS_* and DOSSIER_ACCESS_POLICY_FILE for production"
            );
        }
        let (stop_accepting, accepting_stopped) = tokio::sync::oneshot::channel::<()>();
        let mut routes = tonic::service::Routes::new(health_service.clone())
            .add_service(underwriting)
            .add_service(data);
        if security.reflection {
            routes = routes
                .add_service(
                    tonic_reflection::server::Builder::configure()
                        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
                        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                        .build_v1()?,
                )
                .add_service(
                    tonic_reflection::server::Builder::configure()
                        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
                        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                        .build_v1alpha()?,
                );
        }
        let server = tonic::transport::Server::builder()
            // Deliberately no max_connection_age_grace: in tonic 0.14.9 setting it turns
            // the graceful GOAWAY at max age into a hard close at age + grace
            // (transport/server/mod.rs, connection_timeout_future). Without it, the
            // connection is drained with GOAWAY at max age and in-flight calls finish.
            .max_connection_age(run.max_connection_age)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
            // grpc-timeout is honoured up to this (tonic takes the shorter of the two);
            // it bounds the call's response, so WatchReport streams are not cut.
            .timeout(crate::api::MAX_CALL_DURATION)
            // Outermost first: every call is logged with its caller, denied ones too.
            .layer(RpcLogLayer)
            .layer(AuthorizeLayer::new(security.access.clone()))
            .layer(crate::api::ShedLayer::new(
                run.max_calls_in_flight,
                database_up,
            ))
            .add_routes(routes)
            .serve_with_incoming_shutdown(
                crate::identity::incoming(listener, security.tls.clone(), accept_stop.clone()),
                async {
                    let _ = accepting_stopped.await;
                },
            );
        // The kubelet's gRPC probe speaks plaintext only: this port serves health and
        // nothing else, so it needs no client certificate.
        let (stop_health, health_stopped) = tokio::sync::oneshot::channel::<()>();
        let health_server = health_listener.map(|listener| {
            let addr = listener.local_addr().ok();
            tracing::info!(?addr, "plaintext grpc.health.v1 for probes");
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(health_service)
                    .serve_with_incoming_shutdown(
                        crate::identity::incoming(listener, None, accept_stop.clone()),
                        async {
                            let _ = health_stopped.await;
                        },
                    ),
            )
        });
        let mut server = tokio::spawn(server);
        tracing::info!(%addr, "dossier serving gRPC");

        tokio::select! {
            _ = shutdown => {}
            result = &mut server => {
                stopping.cancel();
                workers_stop.cancel();
                return result.context("gRPC server task panicked")?.context("gRPC server failed");
            }
        }
        let grace_ends = Instant::now() + run.shutdown_grace;
        tracing::info!(grace = ?run.shutdown_grace, delay = ?run.shutdown_delay, "shutdown requested: reporting NOT_SERVING");
        stopping.cancel();
        let _ = health_task.await;
        let _ = sanctions_task.await;
        let _ = purge_task.await;
        let _ = retention_task.await;
        let _ = metrics_task.await;
        set_health(&reporter, ServingStatus::NotServing).await;
        tokio::time::sleep(run.shutdown_delay).await;

        // Long-lived streams would hold the drain for the whole grace period: end them.
        // Health watchers get NOT_SERVING, then their stream ends; report watchers are
        // told to watch again (on another pod).
        let mut reporter = reporter;
        for service in HEALTH_SERVICES {
            reporter.clear_service_status(service).await;
        }
        streams_stop.cancel();

        // Stop accepting; tonic sends GOAWAY and waits for in-flight calls.
        let _ = stop_accepting.send(());
        let _ = stop_health.send(());
        accept_stop.cancel();
        workers_stop.cancel();
        match tokio::time::timeout_at(grace_ends.into(), &mut server).await {
            Ok(result) => result
                .context("gRPC server task panicked")?
                .context("gRPC server failed")?,
            Err(_) => {
                tracing::warn!("grace period over with calls still in flight; closing them");
                server.abort();
            }
        }
        while let Ok(Some(_)) =
            tokio::time::timeout_at(grace_ends.into(), workers.join_next()).await
        {}
        workers.abort_all();
        if let Some(health_server) = health_server {
            health_server.abort();
        }
        drop(reporter);
        let _ = admin.await;
        // Audit sinks live in handlers and workers; after an abort tonic's connection tasks
        // may hold handlers a moment longer, so the flush is bounded.
        if tokio::time::timeout(Duration::from_secs(5), audit_writer.flush())
            .await
            .is_err()
        {
            tracing::warn!("audit trail flush timed out; some upstream calls were not audited");
        }
        tracing::info!("dossier stopped");
        Ok(())
    }
}

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    for service in HEALTH_SERVICES {
        reporter.set_service_status(service, status).await;
    }
}

/// SERVING only while the database answers, on the probe's own connection and on the
/// application pool. The own connection tells an outage from a busy pool (all
/// connections in use is not an outage and must not take the pod out of rotation); the
/// pool's answer catches connections that answer the server but fail every statement.
async fn watch_database(
    database_url: String,
    pool: sqlx::PgPool,
    reporter: HealthReporter,
    database_up: Arc<std::sync::atomic::AtomicBool>,
    stopping: CancellationToken,
) {
    let mut probe: Option<sqlx::PgConnection> = None;
    let mut serving = true;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(HEALTH_INTERVAL) => {}
            _ = stopping.cancelled() => return,
        }
        let up = database_answers(&database_url, &mut probe).await && pool_answers(&pool).await;
        if up != serving {
            serving = up;
            database_up.store(up, std::sync::atomic::Ordering::Relaxed);
            if up {
                tracing::info!("database reachable again: SERVING");
            } else {
                tracing::warn!("database unreachable: NOT_SERVING");
            }
            set_health(
                &reporter,
                if up {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                },
            )
            .await;
        }
    }
}

async fn database_answers(url: &str, probe: &mut Option<sqlx::PgConnection>) -> bool {
    use sqlx::Connection;
    const LIMIT: Duration = Duration::from_secs(1);
    if probe.is_none() {
        *probe = match tokio::time::timeout(LIMIT, sqlx::PgConnection::connect(url)).await {
            Ok(Ok(conn)) => Some(conn),
            _ => return false,
        };
    }
    let conn = probe.as_mut().expect("connected above");
    let ok = matches!(tokio::time::timeout(LIMIT, conn.ping()).await, Ok(Ok(())));
    if !ok {
        *probe = None; // reconnect next time
    }
    ok
}

/// Whether the application pool answers; busy counts as answering. What is wrong is
/// logged, and mended where it can be (dossier_store::health).
async fn pool_answers(pool: &sqlx::PgPool) -> bool {
    use dossier_store::health::PoolHealth;
    match dossier_store::health::check_pool(pool).await {
        PoolHealth::Answering | PoolHealth::Busy => true,
        PoolHealth::Mended(what) => {
            // Never expected: a count above zero is a bug in how transactions end.
            metrics::counter!("dossier_db_connections_mended_total", "what" => what).increment(1);
            tracing::warn!(
                what,
                "a pooled database connection was left inside a transaction; rolled back: NOT_SERVING until the pool answers cleanly"
            );
            false
        }
        PoolHealth::Failing(error) => {
            tracing::warn!(%error, "a pooled database connection fails statements; closed: NOT_SERVING until the pool answers again");
            false
        }
    }
}

/// Picks up a newly loaded sanctions list (loaded by `dossier sanctions load` from any
/// machine) within a minute.
async fn refresh_sanctions(
    list: Arc<dossier_upstream::sanctions::SanctionsList>,
    store: Store,
    stopping: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SANCTIONS_REFRESH) => {}
            _ = stopping.cancelled() => return,
        }
        if let Err(e) = list.refresh_from(&store).await {
            tracing::warn!(error = %e, "sanctions list refresh failed; keeping the current list");
        }
    }
}

/// Deletes expired shared-cache answers and spent fetch leases every so often, so the
/// tables stay the size of what is fresh. Each pod starts at a random point of the
/// interval, so a fleet spreads the work.
async fn purge_cache(store: Store, stopping: CancellationToken) {
    use rand::Rng as _;
    let first = CACHE_PURGE.mul_f64(rand::thread_rng().gen_range(0.1..1.0));
    let mut wait = first;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopping.cancelled() => return,
        }
        wait = CACHE_PURGE;
        match store.cache_purge().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                rows = n,
                "purged expired cache answers and spent fetch leases"
            ),
            Err(e) => tracing::warn!(error = %e, "cache purge failed; trying again later"),
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "dossier".to_owned())
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C). The handlers are installed by this call, not
/// when the future is first polled: a signal sent in between (say, by a script as soon as
/// `dossier simulate` has printed its addresses) still stops the process gracefully
/// instead of killing it.
#[cfg(unix)]
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut interrupt = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    }
}

/// Resolves on Ctrl-C.
#[cfg(not(unix))]
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
