//! The fleet scenarios of `dossier bench`: three (by default) real `dossier serve`
//! processes on one PostgreSQL, started with [`crate::fleet`], called round-robin.
//!
//! - pgbench's simple-update TPS on the same PostgreSQL, first, while nothing else runs:
//!   the yardstick for submissions per second;
//! - burst and overload against the fleet (property_records quota shared through the
//!   fleet-wide limit, cache misses coalesced across pods by the fetch lease);
//! - queue pickup latency: applications submitted at a moderate rate, time from the
//!   submitting transaction to a worker's claim;
//! - submissions per second persisted, callers flat out, workers deciding meanwhile;
//! - then the queue scenarios of queue.rs: delivery lag under an evaluation backlog,
//!   recovery after a SIGKILL; and the replicas' memory.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::future::join_all;
use tonic::transport::Channel;

use super::Row;
use crate::fleet::{Fleet, FleetSpec};
use crate::sim::{Simulators, Upstream};
use dossier_service::proto;

/// Concurrent callers of the submission scenario, and pgbench's client count.
pub(super) const CLIENTS: usize = 32;

pub(super) struct FleetBench<'a> {
    pub admin_url: &'a str,
    pub sims: &'a Simulators,
    pub replicas: usize,
    pub quota: u32,
    pub overload_for: Duration,
    pub submit_for: Duration,
    pub hot_for: Duration,
}

impl FleetBench<'_> {
    pub(super) async fn run(&self) -> anyhow::Result<Vec<Row>> {
        anyhow::ensure!(
            self.replicas >= 3,
            "the fleet scenarios need at least 3 replicas (two are killed, one after the other, and the others take over)"
        );
        let mut rows = Vec::new();
        println!("running: pgbench simple-update ({CLIENTS} clients, 10 s)");
        let pgbench_tps = pgbench(self.admin_url).await?;
        println!(
            "running: accept path (1 replica, workers off, {:?})",
            self.submit_for
        );
        rows.extend(super::accept::accept_path(self, pgbench_tps).await?);
        println!("running: hot path at info level (h2load, 1 replica)");
        rows.push(super::h2load::hot_path(self, self.hot_for.as_secs().max(1)).await?);

        // A fresh database: the shared cache must start cold.
        let db_url = super::fresh_database(self.admin_url).await?;
        crate::fleet::prepare_database(&db_url).await?;
        let pool = dossier_store::connect(&db_url, 4).await?;
        let store = dossier_store::Store::new(pool, dossier_store::Vault::ephemeral());

        let dir = tempfile::tempdir()?;
        println!("starting {} replicas", self.replicas);
        let (mut fleet, channels) = self.launch(&db_url, self.replicas, &[], dir.path()).await?;
        let n = self.replicas;
        let (idle_mib, _) = super::queue::fleet_memory_mib(&fleet);

        let result = async {
            super::quota_on_simulator(self.sims, Some(self.quota));
            println!("running: fleet burst");
            rows.extend(super::protection::burst(&channels, self.sims, &format!("fleet of {n}: ")).await?);
            println!("running: fleet overload ({:?})", self.overload_for);
            rows.extend(
                super::protection::overload(
                    &channels,
                    self.sims,
                    self.quota,
                    self.overload_for,
                    &format!("fleet of {n}: "),
                )
                .await?,
            );
            super::quota_on_simulator(self.sims, None);
            println!("running: queue pickup latency");
            rows.push(pickup_latency(&channels, &store).await?);
            println!("running: delivery lag under an evaluation backlog");
            rows.extend(super::queue::delivery_lag(&fleet, &channels, self.sims, &store).await?);
            let (_, peak_mib) = super::queue::fleet_memory_mib(&fleet);
            rows.push(Row {
                scenario: "memory: RSS of a `dossier serve` replica".into(),
                measured: format!(
                    "idle {idle_mib:.1} MiB (largest of {n}, after start); peak {peak_mib:.1} MiB (largest, after every fleet scenario above)"
                ),
                target: "idle ≤ 64 MiB",
                timed: false,
                holds: idle_mib <= 64.0,
            });
            println!("running: fleet burst with a replica SIGKILLed in the middle");
            rows.push(
                super::queue::burst_with_a_kill(&mut fleet, &channels, self.sims, &store, n - 1)
                    .await?,
            );
            // The replicas still running, from here on.
            let live = &channels[..n - 1];
            // Last but one: it leaves a backlog of thousands of evaluations.
            println!("running: submissions ({:?})", self.submit_for);
            rows.push(submissions(live, &store, self.submit_for, pgbench_tps, n - 1).await?);
            println!("running: recovery after a SIGKILL");
            rows.push(super::queue::recovery(&mut fleet, live, self.sims, &store).await?);
            anyhow::Ok(())
        }
        .await;
        fleet.shutdown().await;
        store.pool.close().await;
        if let Err(e) = super::drop_database(self.admin_url, &db_url).await {
            tracing::warn!(error = %e, "could not drop the fleet benchmark database");
        }
        result.with_context(|| {
            format!(
                "fleet scenario failed; replica logs in {}",
                dir.path().display()
            )
        })?;
        Ok(rows)
    }
}

impl FleetBench<'_> {
    /// One replica with its workers off on `db_url` (migrated): the accept path and the
    /// hot path measure the RPCs alone, nothing evaluating beside them.
    pub(super) async fn idle_replica(
        &self,
        db_url: &str,
        dir: &std::path::Path,
    ) -> anyhow::Result<(Fleet, Vec<Channel>)> {
        self.launch(
            db_url,
            1,
            &[("DOSSIER_WORKERS", "0"), ("DOSSIER_DELIVERY_WORKERS", "0")],
            dir,
        )
        .await
    }

    /// Starts `replicas` replicas on `db_url` (migrated) with `extra_env` on top of the
    /// bench's settings, their files under `dir`, and connects a channel to each.
    pub(super) async fn launch(
        &self,
        db_url: &str,
        replicas: usize,
        extra_env: &[(&str, &str)],
        dir: &std::path::Path,
    ) -> anyhow::Result<(Fleet, Vec<Channel>)> {
        let upstreams_file = dir.join("upstreams.toml");
        std::fs::write(&upstreams_file, upstreams_toml(self.sims, self.quota))?;
        let mut env = FleetSpec::local_env(db_url, self.sims);
        env.push((
            "DOSSIER_UPSTREAMS_FILE".into(),
            upstreams_file.display().to_string(),
        ));
        env.push(("DOSSIER_DB_MAX_CONNECTIONS".into(), "20".into()));
        env.push(("DOSSIER_SHUTDOWN_GRACE".into(), "5s".into()));
        env.push((
            "DOSSIER_JOB_LEASE".into(),
            format!("{}s", super::queue::JOB_LEASE.as_secs()),
        ));
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let fleet = Fleet::start(FleetSpec {
            binary: std::env::current_exe()?,
            replicas,
            base_port: 0,
            env,
            log_dir: Some(dir.join("logs")),
        })
        .await?;
        let mut channels = Vec::new();
        for endpoint in fleet.endpoints() {
            channels.push(Channel::from_shared(endpoint)?.connect().await?);
        }
        Ok((fleet, channels))
    }
}

/// Every upstream generous, except property_records: a little under the vendor's quota
/// and shared by the fleet.
fn upstreams_toml(sims: &Simulators, quota: u32) -> String {
    let mut out = String::new();
    for upstream in Upstream::HTTP {
        let name = upstream.as_str();
        out.push_str(&format!(
            "[{name}]\nbase_url = \"{}\"\n",
            sims.base_url(upstream)
        ));
        if upstream == Upstream::PropertyRecords {
            out.push_str(&format!(
                "rate_per_second = {}\nburst = {}\nfleet_limit = true\nconcurrency = 256\n\n",
                f64::from(quota) * 0.95,
                // Half the vendor's bucket: three pods' requests for consecutive slots
                // reach the vendor with each pod's own delay, and with a burst of one
                // less than the vendor's bucket two runs in four saw a 429 in the fleet
                // burst (the cause is not established; see docs/benchmarks.md).
                (quota / 2).max(1)
            ));
        } else {
            out.push_str("rate_per_second = 10000\nburst = 10000\nconcurrency = 256\n\n");
        }
    }
    out
}

/// pgbench's built-in simple-update (one UPDATE, one SELECT, one INSERT per
/// transaction) on a throw-away database of the same server: TPS.
async fn pgbench(admin_url: &str) -> anyhow::Result<f64> {
    let bin = crate::devdb::find_bin_dir()?.join("pgbench");
    let db_url = super::fresh_database(admin_url).await?;
    let run = |args: Vec<String>| {
        let bin = bin.clone();
        async move {
            let out = tokio::process::Command::new(&bin)
                .args(&args)
                .output()
                .await
                .with_context(|| format!("cannot run {}", bin.display()))?;
            anyhow::ensure!(
                out.status.success(),
                "pgbench failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            anyhow::Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        }
    };
    let result = async {
        run(vec![
            "-i".into(),
            "-q".into(),
            "-s".into(),
            "4".into(),
            db_url.clone(),
        ])
        .await?;
        let out = run(vec![
            "-b".into(),
            "simple-update".into(),
            "-c".into(),
            CLIENTS.to_string(),
            "-j".into(),
            "2".into(),
            "-T".into(),
            "10".into(),
            "-n".into(),
            db_url.clone(),
        ])
        .await?;
        parse_tps(&out).context("pgbench printed no tps line")
    }
    .await;
    let _ = super::drop_database(admin_url, &db_url).await;
    result
}

fn parse_tps(out: &str) -> Option<f64> {
    out.lines()
        .find(|l| l.starts_with("tps = "))?
        .trim_start_matches("tps = ")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub(super) fn submit_request(
    key: String,
    rails_id: String,
) -> tonic::Request<proto::SubmitApplicationRequest> {
    let mut r = tonic::Request::new(proto::SubmitApplicationRequest {
        idempotency_key: key,
        source: Some(proto::submit_application_request::Source::RailsApplicationId(rails_id)),
    });
    r.set_timeout(Duration::from_secs(10));
    r
}

/// 200 applications at 20 a second, round-robin over the replicas (idle workers): how
/// long from the submitting transaction to a worker's claim.
async fn pickup_latency(channels: &[Channel], store: &dossier_store::Store) -> anyhow::Result<Row> {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut calls = Vec::new();
    for i in 0..200 {
        tick.tick().await;
        let mut client = proto::underwriting_service_client::UnderwritingServiceClient::new(
            channels[i % channels.len()].clone(),
        );
        let request = submit_request(format!("pickup-{tag}-{i}"), format!("pickup-{tag}-{i}"));
        calls.push(tokio::spawn(async move {
            client.submit_application(request).await
        }));
    }
    for c in join_all(calls).await {
        c??;
    }
    // Wait for every claim (bounded), then read the figures.
    let give_up = Instant::now() + Duration::from_secs(60);
    let latencies: Vec<f64> = loop {
        let rows = store.pickup_latencies_ms(&format!("pickup-{tag}-")).await?;
        if rows.len() == 200 && rows.iter().all(Option::is_some) {
            let mut v: Vec<f64> = rows.into_iter().flatten().collect();
            v.sort_by(f64::total_cmp);
            break v;
        }
        anyhow::ensure!(
            Instant::now() < give_up,
            "jobs were not claimed within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() * 99 / 100];
    Ok(Row {
        scenario: "queue pickup: submit → claim, 20 applications/s".into(),
        measured: format!(
            "p50 {p50:.1} ms, p99 {p99:.1} ms, max {:.1} ms (200 jobs)",
            latencies[latencies.len() - 1]
        ),
        target: "p99 ≤ 100 ms (the fallback poll is 2 s)",
        timed: true,
        holds: p99 <= 100.0,
    })
}

/// What a flat-out submission run did.
pub(super) struct FlatOut {
    pub persisted: i64,
    pub seconds: f64,
    pub ok: u64,
    pub failed: u64,
}

impl FlatOut {
    pub(super) fn rate(&self) -> f64 {
        self.persisted as f64 / self.seconds
    }

    /// Every OK call persisted, no call failed.
    pub(super) fn lost_nothing(&self) -> bool {
        self.failed == 0 && self.persisted as u64 == self.ok
    }
}

/// [`CLIENTS`] callers submitting (by Rails id) flat out for `duration`, round-robin
/// over `channels`; the applications persisted are counted in PostgreSQL.
pub(super) async fn submit_flat_out(
    channels: &[Channel],
    store: &dossier_store::Store,
    duration: Duration,
) -> anyhow::Result<FlatOut> {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let until = Instant::now() + duration;
    let started = Instant::now();
    let callers = (0..CLIENTS).map(|c| {
        let mut client = proto::underwriting_service_client::UnderwritingServiceClient::new(
            channels[c % channels.len()].clone(),
        );
        let tag = tag.clone();
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, 0u64);
            let mut i = 0u64;
            while Instant::now() < until {
                i += 1;
                let id = format!("sub-{tag}-{c}-{i}");
                match client
                    .submit_application(submit_request(id.clone(), id))
                    .await
                {
                    Ok(_) => ok += 1,
                    Err(_) => failed += 1,
                }
            }
            (ok, failed)
        })
    });
    let mut ok = 0;
    let mut failed = 0;
    for r in join_all(callers).await {
        let (o, f) = r?;
        ok += o;
        failed += f;
    }
    let seconds = started.elapsed().as_secs_f64();
    let persisted = store
        .count_applications_with_key_prefix(&format!("sub-{tag}-"))
        .await?;
    Ok(FlatOut {
        persisted,
        seconds,
        ok,
        failed,
    })
}

/// Callers flat out while the workers decide what was submitted: applications
/// persisted per second, end to end on the same cores.
async fn submissions(
    channels: &[Channel],
    store: &dossier_store::Store,
    duration: Duration,
    pgbench_tps: f64,
    replicas: usize,
) -> anyhow::Result<Row> {
    let run = submit_flat_out(channels, store, duration).await?;
    let rate = run.rate();
    Ok(Row {
        scenario: "submissions, workers on: SubmitApplication flat out while the fleet evaluates"
            .into(),
        measured: format!(
            "{} applications persisted in {:.1} s = {rate:.0}/s over {replicas} replicas ({} OK, {} failed calls, {CLIENTS} callers); {:.2}× pgbench simple-update ({pgbench_tps:.0} TPS)",
            run.persisted,
            run.seconds,
            run.ok,
            run.failed,
            rate / pgbench_tps
        ),
        target: "every OK call persisted; ratio reported",
        timed: false,
        holds: run.lost_nothing(),
    })
}
