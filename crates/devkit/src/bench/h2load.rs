//! The hot path as production runs it: a real `dossier serve` process at its default
//! log level (`info`: one line per RPC), driven by h2load (Debian's nghttp2-client), a
//! load generator in C on its own thread, so the bench's own gRPC client is not what
//! is measured. Cached `GetPropertyProfile` ÷ `grpc.health.v1.Health/Check`, the
//! cheapest call the same server answers, alternated over several rounds; the median
//! ratio is reported. Also the replica's peak resident memory under that load.

use std::path::Path;

use anyhow::Context as _;

use super::Row;
use super::fleet::FleetBench;
use dossier_service::proto;

/// Rounds of (profile, health), alternated so that both see the same machine.
const ROUNDS: usize = 5;

/// One gRPC request as it goes on the wire: uncompressed flag, length, message.
fn grpc_frame(message: &impl prost::Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut frame = Vec::with_capacity(5 + body.len());
    frame.push(0);
    frame.extend_from_slice(&u32::try_from(body.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// What one h2load run said.
struct H2load {
    per_second: f64,
    succeeded: u64,
    failed: u64,
}

/// h2load against `url` posting `body` for `seconds`, 4 connections of 32 streams each.
async fn h2load(url: &str, body: &Path, seconds: u64) -> anyhow::Result<H2load> {
    let out = tokio::process::Command::new("h2load")
        .args(["-t", "1", "-c", "4", "-m", "32", "-D"])
        .arg(seconds.to_string())
        .args([
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            "-d",
        ])
        .arg(body)
        .arg(url)
        .output()
        .await
        .context("cannot run h2load (Debian package nghttp2-client)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "h2load failed: {text}");
    // "finished in 5.00s, 41234.40 req/s, 2.01MB/s" and
    // "requests: 206172 total, 206172 started, 206172 done, 206172 succeeded, 0 failed, …"
    let per_second = text
        .lines()
        .find_map(|l| l.strip_prefix("finished in "))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|r| r.trim_end_matches(" req/s").parse().ok())
        .context("h2load printed no req/s")?;
    let count = |what: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("requests: "))
            .and_then(|l| {
                l.split(", ")
                    .find_map(|part| part.strip_suffix(what)?.trim().parse().ok())
            })
            .unwrap_or(0)
    };
    Ok(H2load {
        per_second,
        succeeded: count(" succeeded"),
        failed: count(" failed"),
    })
}

pub(super) async fn hot_path(bench: &FleetBench<'_>, seconds: u64) -> anyhow::Result<Row> {
    let db_url = super::fresh_database(bench.admin_url).await?;
    crate::fleet::prepare_database(&db_url).await?;
    let dir = tempfile::tempdir()?;
    let result = async {
        let (fleet, channels) = bench.idle_replica(&db_url, dir.path()).await?;
        let measured = async {
            let request = proto::GetPropertyProfileRequest {
                address: Some(super::protection::address("1 Hot Path Way".into())),
                ..Default::default()
            };
            // Cached from here on; and a check that the request is one the server answers.
            proto::data_service_client::DataServiceClient::new(channels[0].clone())
                .get_property_profile(request.clone())
                .await
                .context("the warm-up GetPropertyProfile failed")?;
            let profile_body = dir.path().join("profile.grpc");
            std::fs::write(&profile_body, grpc_frame(&request))?;
            let health_body = dir.path().join("health.grpc");
            std::fs::write(
                &health_body,
                grpc_frame(&tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                }),
            )?;
            let base = fleet.endpoints()[0].clone();
            let profile_url = format!("{base}/dossier.v1.DataService/GetPropertyProfile");
            let health_url = format!("{base}/grpc.health.v1.Health/Check");
            let mut ratios = Vec::new();
            let (mut profile_rates, mut health_rates) = (Vec::new(), Vec::new());
            let mut failed = 0;
            for _ in 0..ROUNDS {
                let p = h2load(&profile_url, &profile_body, seconds).await?;
                let h = h2load(&health_url, &health_body, seconds).await?;
                failed += p.failed + h.failed + u64::from(p.succeeded == 0 || h.succeeded == 0);
                ratios.push(p.per_second / h.per_second);
                profile_rates.push(p.per_second);
                health_rates.push(h.per_second);
            }
            let (_, peak_mib) = super::queue::fleet_memory_mib(&fleet);
            anyhow::Ok((ratios, profile_rates, health_rates, failed, peak_mib))
        }
        .await;
        fleet.shutdown().await;
        measured
    }
    .await;
    if let Err(e) = super::drop_database(bench.admin_url, &db_url).await {
        tracing::warn!(error = %e, "could not drop the hot-path benchmark database");
    }
    let (mut ratios, mut profile, mut health, failed, peak_mib) = result?;
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ratio = median(&mut ratios);
    let profile_median = median(&mut profile);
    let health_median = median(&mut health);
    Ok(Row {
        scenario: "hot path at info level (h2load, a `dossier serve` process): cached GetPropertyProfile vs Health/Check".into(),
        measured: format!(
            "median of {ROUNDS} rounds of {seconds} s: {profile_median:.0}/s vs {health_median:.0}/s, ratio {ratio:.2}× (rounds {}–{}×); {failed} failed requests; peak RSS {peak_mib:.1} MiB",
            format_args!("{:.2}", ratios[0]),
            format_args!("{:.2}", ratios[ratios.len() - 1]),
        ),
        target: "≥ 0.90×, 0 failed",
        timed: true,
        holds: ratio >= 0.9 && failed == 0,
    })
}
