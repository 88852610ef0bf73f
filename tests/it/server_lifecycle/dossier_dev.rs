//! The real `dossier dev` binary: started, used and stopped with SIGTERM.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use dossier_devkit::harness::evaluate_request;
use dossier_service::proto::data_service_client::DataServiceClient;
use dossier_service::proto::underwriting_service_client::UnderwritingServiceClient;
use dossier_service::proto::{Decision, GetReportRequest};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::time::timeout;

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
    let person = dossier_devkit::harness::person_request(
        "approve",
        dossier_service::proto::LookupPurpose::Underwriting,
    );
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
