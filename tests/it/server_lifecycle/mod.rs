//! The server's life: health, reflection, graceful shutdown, refusing an old schema, and
//! the real `dossier dev` binary started, used and stopped with SIGTERM.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use dossier_devkit::harness::{TestApp, TestDb, evaluate_request};
use dossier_devkit::sim::{Behaviour, SimConfig, Simulators, Upstream};
use dossier_service::proto::data_service_client::DataServiceClient;
use dossier_service::proto::underwriting_service_client::UnderwritingServiceClient;
use dossier_service::proto::{
    ApplicationStatus, CheckKind, CheckOutcome, Decision, GetPersonProfileRequest, GetReportRequest,
};
use dossier_service::server::{Resolved, Server};
use dossier_store::Vault;
use prost::Message;
use sqlx::{Connection, Executor, PgConnection};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::time::timeout;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const SERVICES: [&str; 3] = [
    "",
    "dossier.v1.UnderwritingService",
    "dossier.v1.DataService",
];

/// Polls `condition` every 20 ms until it holds; panics with `what` after `limit`.
async fn eventually(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    timeout(limit, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out after {limit:?} waiting until {what}"));
}

/// Reads the Watch stream until it reports `want`; panics after `limit`.
async fn watch_until(
    stream: &mut tonic::Streaming<tonic_health::pb::HealthCheckResponse>,
    want: ServingStatus,
    limit: Duration,
) {
    timeout(limit, async {
        loop {
            let update = stream
                .message()
                .await
                .expect("the Watch stream stays open")
                .expect("the Watch stream does not end");
            if update.status() == want {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("health did not become {want:?} within {limit:?}"));
}

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

/// Asks a reflection service (v1 or v1alpha) for its service list and for the file
/// defining dossier.v1.UnderwritingService; yields (service names, decoded file).
macro_rules! reflect {
    ($version:ident, $channel:expr) => {{
        use tonic_reflection::pb::$version::ServerReflectionRequest;
        use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;
        let mut client = ServerReflectionClient::new($channel);
        let ask = |m| ServerReflectionRequest {
            host: String::new(),
            message_request: Some(m),
        };
        let requests = vec![
            ask(MessageRequest::ListServices(String::new())),
            ask(MessageRequest::FileContainingSymbol(
                "dossier.v1.UnderwritingService".into(),
            )),
        ];
        let mut answers = client
            .server_reflection_info(tokio_stream::iter(requests))
            .await
            .unwrap()
            .into_inner();
        let services: BTreeSet<String> =
            match answers.message().await.unwrap().unwrap().message_response {
                Some(MessageResponse::ListServicesResponse(list)) => {
                    list.service.into_iter().map(|s| s.name).collect()
                }
                other => panic!("expected a service list, got {other:?}"),
            };
        let file = match answers.message().await.unwrap().unwrap().message_response {
            Some(MessageResponse::FileDescriptorResponse(files)) => {
                assert!(
                    !files.file_descriptor_proto.is_empty(),
                    "at least one file comes back"
                );
                prost_types::FileDescriptorProto::decode(files.file_descriptor_proto[0].as_slice())
                    .unwrap()
            }
            other => panic!("expected a file descriptor, got {other:?}"),
        };
        (services, file)
    }};
}

/// grpcurl and Postman can discover every service through reflection, v1 and v1alpha.
#[tokio::test]
async fn reflection_lists_every_service_and_describes_them() {
    let app = TestApp::spawn().await;
    let (v1_services, v1_file) = reflect!(v1, app.channel().await);
    let (v1alpha_services, v1alpha_file) = reflect!(v1alpha, app.channel().await);
    for (version, services, file) in [
        ("v1", v1_services, v1_file),
        ("v1alpha", v1alpha_services, v1alpha_file),
    ] {
        for want in [
            "dossier.v1.UnderwritingService",
            "dossier.v1.DataService",
            "grpc.health.v1.Health",
        ] {
            assert!(
                services.contains(want),
                "{version}: {want} missing from {services:?}"
            );
        }
        assert_eq!(file.package(), "dossier.v1", "{version}");
        let service = file
            .service
            .iter()
            .find(|s| s.name() == "UnderwritingService")
            .unwrap_or_else(|| panic!("{version}: {file:?}"));
        let methods: Vec<&str> = service.method.iter().map(|m| m.name()).collect();
        assert!(
            methods.contains(&"EvaluateApplication"),
            "{version}: {methods:?}"
        );
    }
}

/// A deploy (SIGTERM) lets a call already in flight finish with its decision, then
/// the server stops and accepts nothing new.
#[tokio::test]
async fn shutdown_finishes_in_flight_calls_then_refuses_new_connections() {
    let mut app = TestApp::spawn().await;
    app.sims.set_behaviour(
        Upstream::Identity,
        Behaviour {
            latency_ms: 1500,
            ..Behaviour::default()
        },
    );
    let mut client = app.client().await;
    let call = tokio::spawn(async move {
        client
            .evaluate_application(evaluate_request("approve", "in-flight-1"))
            .await
    });

    // The call is in flight once it has reached the (slow) identity vendor.
    eventually(
        Duration::from_secs(20),
        "the evaluation reaches the identity simulator",
        || app.sims.stats(Upstream::Identity).total() > 0,
    )
    .await;
    let server = app.begin_stop().expect("the server is running");

    let report = timeout(Duration::from_secs(30), call)
        .await
        .expect("the in-flight call ends")
        .expect("the call task does not panic")
        .expect("the in-flight call succeeds despite the shutdown")
        .into_inner()
        .report
        .unwrap();
    assert_eq!(report.status(), ApplicationStatus::Decided);
    assert_eq!(report.decision(), Decision::Approved, "{report:#?}");
    assert!(report.complete);
    let identity: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.kind() == CheckKind::Identity)
        .collect();
    assert_eq!(identity.len(), 2);
    assert!(
        identity.iter().all(|c| c.outcome() == CheckOutcome::Pass),
        "the slow answers were waited for: {identity:#?}"
    );

    timeout(Duration::from_secs(30), server)
        .await
        .expect("the server stops within its grace period")
        .expect("the server task does not panic")
        .expect("the server stops cleanly");

    let fresh = Channel::from_shared(app.endpoint())
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await;
    if let Ok(channel) = fresh {
        let err = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            tonic::Code::Unavailable,
            "a stopped server answers nothing: {err:?}"
        );
    }
}

/// A new binary never runs against an old schema by accident: it names what is pending
/// and how to fix it, and `--migrate` fixes it.
#[tokio::test]
async fn build_refuses_an_unmigrated_database_unless_asked_to_migrate() {
    let db = TestDb::empty().await;
    let sims = Simulators::start(SimConfig::default()).await.unwrap();
    let mut args = dossier_devkit::harness::serve_args(&db.url);
    dossier_devkit::harness::point_at_sims(&mut args, &sims);
    let resolved = |args: &dossier_service::config::ServeArgs| Resolved {
        database_url: db.url.clone(),
        vault: Vault::ephemeral(),
        upstreams: args.upstreams.settings().unwrap(),
        seed_sanctions: Some(dossier_devkit::sample_sanctions::seed()),
    };

    let err = match Server::build(args.clone(), resolved(&args)).await {
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
    let server = Server::build(args.clone(), resolved(&args))
        .await
        .expect("with --migrate the server builds");
    let pending = dossier_store::pending_migrations(&server.store().pool)
        .await
        .unwrap();
    assert!(pending.is_empty(), "{pending:?}");
}

// ---------------------------------------------------------------------------------
// The real binary.

/// PII of examples/approve.json that must never reach a log line.
const PII: [&str; 6] = [
    "123456789",
    "123-45-6789",
    "1972-03-14",
    "234567890",
    "234-56-7890",
    "1970-11-02",
];

/// Lines of the human-readable banner `dossier dev` prints to stdout between log lines:
/// its title, blank lines and indented lines (a JSON log line starts with `{`).
fn is_dev_banner(line: &str) -> bool {
    line.trim().is_empty()
        || line.starts_with("Dossier dev is up on")
        || line.starts_with(char::is_whitespace)
}

/// Process ids (other than ours) whose command line contains `needle`.
fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(raw) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            if cmdline.contains(needle) {
                found.push((pid, cmdline));
            }
        }
    }
    found
}

/// A running `dossier dev` child process and what it wrote.
struct DevProcess {
    child: tokio::process::Child,
    pid: u32,
    port: u16,
    stdout: tokio::sync::mpsc::UnboundedReceiver<String>,
    stdout_lines: Vec<String>,
    stderr: tokio::task::JoinHandle<String>,
}

impl DevProcess {
    /// Starts `dossier dev` on a free loopback port with no DATABASE_URL and no other
    /// DOSSIER_* settings than `env`, and waits for its "dossier serving gRPC" line.
    async fn start(env: &[(&str, &str)]) -> DevProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_dossier"));
        cmd.arg("dev").env_remove("DATABASE_URL");
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("DOSSIER_") {
                cmd.env_remove(name);
            }
        }
        cmd.envs(env.iter().copied())
            .env("DOSSIER_GRPC_ADDR", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("start dossier dev");
        let pid = child.id().unwrap();
        let (tx, stdout) = tokio::sync::mpsc::unbounded_channel();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send(line);
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = tokio::spawn(async move {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s).await;
            s
        });
        let mut dev = DevProcess {
            child,
            pid,
            port,
            stdout,
            stdout_lines: Vec::new(),
            stderr,
        };
        let serving = timeout(Duration::from_secs(120), async {
            loop {
                let line = dev.stdout.recv().await?;
                dev.stdout_lines.push(line.clone());
                if line.contains("dossier serving gRPC") {
                    return Some(line);
                }
            }
        })
        .await;
        let Ok(Some(serving)) = serving else {
            let _ = dev.child.start_kill();
            panic!(
                "dossier dev did not report serving; stdout so far:\n{}",
                dev.stdout_lines.join("\n")
            );
        };
        let serving: serde_json::Value =
            serde_json::from_str(&serving).expect("the serving line is JSON");
        assert_eq!(serving["addr"], format!("127.0.0.1:{port}"), "{serving}");
        dev
    }

    /// The private PostgreSQL's directories (`dossier-pg-<pid>-<uuid>` in the temp dir).
    fn pg_dirs(&self) -> Vec<PathBuf> {
        let prefix = self.pg_marker();
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .collect()
    }

    fn pg_marker(&self) -> String {
        format!("dossier-pg-{}-", self.pid)
    }

    /// SIGTERM, then the exit status and every stdout and stderr line it wrote.
    async fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>, String) {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM {}", self.pid);
        let status = timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("dossier dev exits after SIGTERM")
            .unwrap();
        timeout(Duration::from_secs(10), async {
            while let Some(line) = self.stdout.recv().await {
                self.stdout_lines.push(line);
            }
        })
        .await
        .expect("stdout closes when the process exits");
        let stderr = timeout(Duration::from_secs(10), self.stderr)
            .await
            .expect("stderr closes")
            .unwrap();
        (status, self.stdout_lines, stderr)
    }
}

/// What one `dossier dev` run must do: start its own PostgreSQL, underwrite over gRPC,
/// log one JSON line per RPC without PII, exit 0 on SIGTERM and leave nothing behind.
async fn exercise(dev: DevProcess) {
    let pid = dev.pid;
    let marker = dev.pg_marker();
    let dirs = dev.pg_dirs();
    assert_eq!(
        dirs.len(),
        1,
        "dossier dev {pid} started one private PostgreSQL: {dirs:?}"
    );
    assert!(
        !processes_mentioning(&marker).is_empty(),
        "the private PostgreSQL of {pid} runs from {}",
        dirs[0].display()
    );

    let mut client = UnderwritingServiceClient::connect(format!("http://127.0.0.1:{}", dev.port))
        .await
        .unwrap();
    let report = client
        .evaluate_application(evaluate_request("approve", &format!("dev-{pid}")))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(report.decision(), Decision::Approved, "{report:#?}");
    // A failing call, and a person look-up that carries an SSN and a date of birth.
    let missing = uuid::Uuid::new_v4().to_string();
    let err = client
        .get_report(GetReportRequest {
            application_id: missing.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let mut data = DataServiceClient::connect(format!("http://127.0.0.1:{}", dev.port))
        .await
        .unwrap();
    let applicant = &dossier_devkit::harness::example_application("approve").applicants[0];
    let person = GetPersonProfileRequest {
        first_name: applicant.first_name.clone(),
        last_name: applicant.last_name.clone(),
        ssn: applicant.ssn.clone(),
        date_of_birth: applicant.date_of_birth,
        address: dossier_devkit::harness::example_application("approve")
            .property
            .unwrap()
            .address,
        ..Default::default()
    };
    data.get_person_profile(person).await.unwrap();

    let (status, stdout, stderr) = dev.terminate().await;
    let context = format!("stdout:\n{}\nstderr:\n{stderr}", stdout.join("\n"));
    assert!(
        status.success(),
        "dossier dev {pid} exits 0 on SIGTERM, got {status}\n{context}"
    );

    // Everything it started is gone (the watchdog may need a second to notice the exit).
    let gone = timeout(Duration::from_secs(20), async {
        loop {
            if processes_mentioning(&marker).is_empty() && !dirs[0].exists() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        gone.is_ok(),
        "left behind by {pid}: {:?}, directory exists: {}",
        processes_mentioning(&marker),
        dirs[0].exists()
    );

    // Logs: JSON, one line per RPC with the agreed fields, no PII anywhere.
    let logs: Vec<serde_json::Value> = stdout
        .iter()
        .filter(|l| !is_dev_banner(l))
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}"))
        })
        .collect();
    let rpc: Vec<&serde_json::Value> = logs
        .iter()
        .filter(|l| l["method"] == "/dossier.v1.UnderwritingService/EvaluateApplication")
        .collect();
    assert_eq!(rpc.len(), 1, "one log line for the one RPC\n{context}");
    let rpc = rpc[0];
    assert_eq!(rpc["code"], "Ok", "{rpc}");
    assert!(
        rpc["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{rpc}"
    );
    assert_eq!(
        rpc["application_id"],
        report.application_id.as_str(),
        "{rpc}"
    );
    let failed: Vec<&serde_json::Value> = logs
        .iter()
        .filter(|l| l["method"] == "/dossier.v1.UnderwritingService/GetReport")
        .collect();
    assert_eq!(
        failed.len(),
        1,
        "one log line for the failed RPC\n{context}"
    );
    assert_eq!(failed[0]["code"], "NotFound", "{}", failed[0]);
    assert_eq!(
        failed[0]["application_id"],
        missing.as_str(),
        "{}",
        failed[0]
    );
    let lookups = logs
        .iter()
        .filter(|l| l["method"] == "/dossier.v1.DataService/GetPersonProfile" && l["code"] == "Ok")
        .count();
    assert_eq!(lookups, 1, "one log line for the person look-up\n{context}");
    for secret in PII {
        assert!(
            !stdout.iter().any(|l| l.contains(secret)),
            "{secret} in stdout\n{context}"
        );
        assert!(!stderr.contains(secret), "{secret} in stderr\n{context}");
    }
}

/// `dossier dev` works out of the box: its own database and simulators, JSON logs
/// without PII, exit 0 on SIGTERM, and no process or file left behind.
#[tokio::test]
async fn dossier_dev_serves_and_stops_cleanly_on_sigterm() {
    // The admin port is moved off its fixed default so that nothing else on this machine
    // can make this test fail; the side-by-side test below covers the default.
    exercise(DevProcess::start(&[("DOSSIER_ADMIN_ADDR", "127.0.0.1:0")]).await).await;
}

/// Two `dossier dev` runs on different DOSSIER_GRPC_ADDR work side by side: each gets
/// its own database, simulators and ports, and neither disturbs the other.
#[tokio::test]
async fn two_dossier_dev_runs_do_not_collide() {
    let (a, b) = tokio::join!(DevProcess::start(&[]), DevProcess::start(&[]));
    assert_ne!(a.port, b.port);
    tokio::join!(exercise(a), exercise(b));
}

/// A client watching health (gRPC client-side health checking) hears NOT_SERVING when
/// the server begins to stop, and its open stream does not hold the shutdown up.
#[tokio::test]
async fn health_watchers_hear_not_serving_and_do_not_hold_up_shutdown() {
    // A grace period far longer than the test's bound: waiting it out would fail the test.
    let mut app = TestApp::spawn_with(|a| a.shutdown_grace = Duration::from_secs(600)).await;
    let mut health = HealthClient::new(app.channel().await);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    watch_until(&mut watch, ServingStatus::Serving, Duration::from_secs(5)).await;

    let server = app.begin_stop().expect("the server is running");
    watch_until(
        &mut watch,
        ServingStatus::NotServing,
        Duration::from_secs(10),
    )
    .await;
    timeout(Duration::from_secs(30), server)
        .await
        .expect("the server stops although a health Watch stream is open")
        .expect("the server task does not panic")
        .expect("the server stops cleanly");
}

/// A client watching an undecided report during a deploy is told to reconnect
/// (UNAVAILABLE) instead of holding the stopping server up for its whole grace period.
#[tokio::test]
async fn report_watchers_are_told_to_reconnect_and_do_not_hold_up_shutdown() {
    // No workers: the application stays undecided, so its WatchReport stream stays open.
    let mut app = TestApp::spawn_with(|a| {
        a.workers = 0;
        a.shutdown_grace = Duration::from_secs(600);
    })
    .await;
    let mut client = app.client().await;
    let accepted = client
        .submit_application(dossier_service::proto::SubmitApplicationRequest {
            idempotency_key: "watched-1".into(),
            source: Some(
                dossier_service::proto::submit_application_request::Source::Application(
                    dossier_devkit::harness::example_application("approve"),
                ),
            ),
        })
        .await
        .unwrap()
        .into_inner();
    let mut stream = client
        .watch_report(dossier_service::proto::WatchReportRequest {
            application_id: accepted.application_id,
        })
        .await
        .unwrap()
        .into_inner();

    let server = app.begin_stop().expect("the server is running");
    let ended = timeout(Duration::from_secs(30), async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the WatchReport stream ends when the server stops");
    let err = ended.expect_err("the stream ends with a status, not as if the report were decided");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    timeout(Duration::from_secs(30), server)
        .await
        .expect("the server stops although a WatchReport stream was open")
        .expect("the server task does not panic")
        .expect("the server stops cleanly");
}
