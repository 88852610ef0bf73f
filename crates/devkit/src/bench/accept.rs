//! The accept path alone: one `dossier serve` replica with its workers off, callers
//! submitting flat out, against pgbench's simple-update on the same PostgreSQL in the
//! same run. What one submission costs PostgreSQL (statements, WAL) is counted over the
//! same run, and the rows each table gains per application are read afterwards.

use super::Row;
use super::fleet::{CLIENTS, FleetBench, submit_flat_out};
use super::pg_cost;

/// Submissions accepted per second ÷ pgbench TPS, and the statements and WAL each
/// costs.
pub(super) async fn accept_path(
    bench: &FleetBench<'_>,
    pgbench_tps: f64,
) -> anyhow::Result<Vec<Row>> {
    let db_url = super::fresh_database(bench.admin_url).await?;
    crate::fleet::prepare_database(&db_url).await?;
    let pool = dossier_store::connect(&db_url, 4).await?;
    let store = dossier_store::Store::new(pool, dossier_store::Vault::ephemeral());
    let dir = tempfile::tempdir()?;
    let result = async {
        let (fleet, channels) = bench.idle_replica(&db_url, dir.path()).await?;
        let counting = pg_cost::start(&db_url).await;
        let run = submit_flat_out(&channels, &store, bench.submit_for).await;
        let cost = match counting {
            Some((mut conn, start)) => pg_cost::since(&mut conn, &start).await,
            None => None,
        };
        fleet.shutdown().await;
        let run = run?;
        let ratio = run.rate() / pgbench_tps;
        let units = run.persisted.max(0) as usize;
        anyhow::Ok(vec![
            Row {
                scenario: "accept path: SubmitApplication flat out, workers off, 1 replica".into(),
                measured: format!(
                    "{} applications persisted in {:.1} s = {:.0}/s ({} OK, {} failed calls, {CLIENTS} callers) = {ratio:.2}× pgbench simple-update ({pgbench_tps:.0} TPS, {CLIENTS} clients)",
                    run.persisted,
                    run.seconds,
                    run.rate(),
                    run.ok,
                    run.failed,
                ),
                target: "every OK call persisted, ≥ 0.5× pgbench",
                timed: true,
                holds: run.lost_nothing() && ratio >= 0.5,
            },
            Row {
                scenario: "accept path: PostgreSQL per submission".into(),
                measured: match &cost {
                    Some(c) => format!(
                        "{}; most frequent: {}",
                        c.per(units, "submission"),
                        c.breakdown(units, 4)
                    ),
                    None => "pg_stat_statements not loaded in this PostgreSQL".into(),
                },
                target: "reported",
                timed: false,
                holds: true,
            },
        ])
    }
    .await;
    store.pool.close().await;
    if let Err(e) = super::drop_database(bench.admin_url, &db_url).await {
        tracing::warn!(error = %e, "could not drop the accept-path benchmark database");
    }
    result
}
