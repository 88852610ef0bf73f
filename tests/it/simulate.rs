//! The real `dossier simulate` binary: its stdout is one `name url` line per simulator
//! and nothing else, its log lines are JSON on stderr, and SIGTERM stops it cleanly.

use std::process::Stdio;
use std::time::Duration;

use dossier_devkit::sim::{Stats, Upstream};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::time::timeout;

/// Generous: only a hung binary comes near it.
const WITHIN: Duration = Duration::from_secs(60);

#[tokio::test]
async fn simulate_prints_one_url_per_upstream_on_stdout_and_logs_on_stderr() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_dossier"))
        .arg("simulate")
        // The default logging: JSON lines at INFO.
        .env_remove("DOSSIER_LOG")
        .env_remove("DOSSIER_LOG_FORMAT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start dossier simulate");
    let pid = child.id().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut err = child.stderr.take().unwrap();
    let stderr = tokio::spawn(async move {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s).await;
        s
    });

    // The first lines, read while it runs: a script needs no more than this.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut urls = Vec::new();
    for upstream in Upstream::HTTP {
        let line = timeout(WITHIN, stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("no line for {upstream} on stdout"))
            .unwrap()
            .unwrap_or_else(|| panic!("stdout ended before the line for {upstream}"));
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, url] = fields[..] else {
            panic!("not `<name> <url>`: {line:?}");
        };
        assert_eq!(name, upstream.as_str(), "{line:?}");
        let parsed = reqwest::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(parsed.scheme(), "http", "{line:?}");
        assert_eq!(parsed.host_str(), Some("127.0.0.1"), "{line:?}");
        // The simulator is there, counting from zero.
        let stats: Stats = http
            .get(format!("{url}/_sim/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(stats, Stats::default(), "{upstream}");
        urls.push((upstream, url.to_owned()));
    }

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM sent");
    let status = timeout(WITHIN, child.wait())
        .await
        .expect("dossier simulate exits after SIGTERM")
        .unwrap();
    let rest = timeout(WITHIN, async {
        let mut rest = Vec::new();
        while let Some(line) = stdout.next_line().await.unwrap() {
            rest.push(line);
        }
        rest
    })
    .await
    .expect("stdout closes when the process exits");
    let stderr = timeout(WITHIN, stderr)
        .await
        .expect("stderr closes")
        .unwrap();
    assert!(
        status.success(),
        "exit 0 on SIGTERM, got {status}\nstderr:\n{stderr}"
    );
    assert!(
        rest.is_empty(),
        "nothing but the url lines on stdout: {rest:?}"
    );

    // Every stderr line is a JSON log line; each simulator logged where it listens.
    let logs: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {l}"))
        })
        .collect();
    for (upstream, url) in &urls {
        assert!(
            logs.iter().any(|l| l["message"] == "simulator listening"
                && l["upstream"] == upstream.as_str()
                && url.ends_with(l["addr"].as_str().unwrap_or("?"))),
            "no `simulator listening` line for {upstream} at {url}\nstderr:\n{stderr}"
        );
    }
}
