//! The sanctions monitoring scenario of `dossier bench`: how long the one
//! `monitor_sanctions` job takes to screen 10,000 approved applications against a newly
//! loaded list of SDN size.
//!
//! One application is approved for real (so its stored check results are exactly what
//! production writes); it is then copied 9,999 times in SQL, each copy with other
//! applicants' names, because evaluating 10,000 applications would measure the
//! evaluation, not the monitoring. The list has 12,000 invented entries (the SDN list
//! has about as many names with its aliases), half of them individuals with names of
//! the applicants' shape spelled backwards, plus one that names the seed application's
//! first applicant: at least that alert is expected, and any other is a near match of an
//! invented entry, as production would raise.

use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::Row;
use crate::sim::Simulators;
use crate::sim::seed::{FIRST_NAMES, LAST_NAMES};
use dossier_service::proto;

/// Applications screened.
const APPLICATIONS: i64 = 10_000;
/// Invented entries of the list, beside the one that matches.
const LIST_ENTRIES: usize = 12_000;
/// What the scenario must stay within (a list load is a daily event, this is a bound
/// on the work, not a latency anyone waits on).
const WITHIN: Duration = Duration::from_secs(120);

pub(super) async fn sanctions_monitoring(
    admin_url: &str,
    sims: &Simulators,
) -> anyhow::Result<Row> {
    let db_url = super::fresh_database(admin_url).await?;
    let (channel, stop, handle) =
        super::start_server(&db_url, super::bench_settings(sims, None)).await?;
    let pool = dossier_store::connect(&db_url, 4).await?;
    let mut client = proto::underwriting_service_client::UnderwritingServiceClient::new(channel);
    let report = client
        .evaluate_application(crate::harness::evaluate_request("approve", "monitor-seed"))
        .await?
        .into_inner()
        .report
        .context("EvaluateApplication answered without a report")?;
    anyhow::ensure!(
        report.decision() == proto::Decision::Approved,
        "the approve example was not approved"
    );
    copy_application(&pool, &report.application_id).await?;

    let dir = tempfile::tempdir()?;
    write_list(dir.path())?;
    let store = dossier_store::Store::new(pool.clone(), dossier_store::Vault::ephemeral());
    let loaded = Instant::now();
    let summary = dossier_service::cli::sanctions::load_dir(&store, dir.path()).await?;
    let load_took = loaded.elapsed();
    // The job runs in the server's workers; wait (bounded) for it to finish.
    let deadline = Instant::now() + WITHIN * 2;
    let run = loop {
        let run: Option<(f64, i32, i32, i32)> = sqlx::query_as(
            "SELECT extract(epoch FROM finished_at - started_at)::float8, applications, names, alerts
             FROM sanctions_monitoring_runs WHERE list_id = $1 AND finished_at IS NOT NULL",
        )
        .bind(summary.list_id)
        .fetch_optional(&pool)
        .await?;
        if let Some(run) = run {
            break run;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the monitoring job did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = stop.send(());
    let _ = handle.await;
    pool.close().await;
    if let Err(e) = super::drop_database(admin_url, &db_url).await {
        tracing::warn!(error = %e, "could not drop the benchmark database");
    }
    let (seconds, applications, names, alerts) = run;
    Ok(Row {
        scenario: format!(
            "sanctions monitoring: {applications} approved applications, {names} names, against a list of {} entries",
            summary.entries
        ),
        measured: format!(
            "{seconds:.1} s for the job ({:.0} names/s), {alerts} alert(s); the list load itself {:.1} s",
            f64::from(names) / seconds.max(1e-9),
            load_took.as_secs_f64()
        ),
        target: "≤ 120 s, the named applicant alerted",
        timed: true,
        holds: seconds <= WITHIN.as_secs_f64()
            && alerts >= 1
            && i64::from(applications) == APPLICATIONS,
    })
}

/// Copies the approved application's rows (application, run, decision, check results)
/// 9,999 times, each copy's applicants renamed from the simulator's name lists.
async fn copy_application(pool: &sqlx::PgPool, id: &str) -> anyhow::Result<()> {
    let first: Vec<&str> = FIRST_NAMES.to_vec();
    let last: Vec<&str> = LAST_NAMES.to_vec();
    // One connection: the copies are a temporary table of this session.
    let mut conn = pool.acquire().await?;
    sqlx::query(
        r#"CREATE TEMP TABLE copies AS
           SELECT i, gen_random_uuid() AS app, gen_random_uuid() AS run,
                  $2::text[] AS first, $3::text[] AS last
           FROM generate_series(1, $4::bigint - 1) AS i"#,
    )
    .bind(id)
    .bind(&first)
    .bind(&last)
    .bind(APPLICATIONS)
    .execute(&mut *conn)
    .await?;
    for statement in [
        r#"INSERT INTO applications (id, idempotency_key, payload_hmac, source, status, application, created_at, updated_at, decided_at)
           SELECT c.app, 'monitor-copy-' || c.i, a.payload_hmac, a.source, a.status, a.application, a.created_at, a.updated_at, a.decided_at
           FROM copies c, applications a WHERE a.id = $1::uuid"#,
        r#"INSERT INTO evaluation_runs (id, application_id, reason, started_at, finished_at, complete)
           SELECT c.run, c.app, r.reason, r.started_at, r.finished_at, r.complete
           FROM copies c, evaluation_runs r WHERE r.application_id = $1::uuid"#,
        r#"INSERT INTO decisions (run_id, application_id, decision, reason_codes, policy_version, policy_hash, figures, decided_at)
           SELECT c.run, c.app, d.decision, d.reason_codes, d.policy_version, d.policy_hash, d.figures, d.decided_at
           FROM copies c, decisions d WHERE d.application_id = $1::uuid"#,
        // Each copy's people get other names: first names by index, last names by
        // index over the other list, so the 10,000 households are mostly distinct.
        r#"INSERT INTO check_results (run_id, application_id, kind, subject, outcome, reason_codes, message, upstream, fetched_at, cached, stale, evidence, finished_at)
           SELECT c.run, c.app, cr.kind, cr.subject, cr.outcome, cr.reason_codes, cr.message, cr.upstream, cr.fetched_at, cr.cached, cr.stale,
                  CASE WHEN cr.kind = 'person_sanctions'
                       THEN jsonb_set(cr.evidence, '{screened_name}', to_jsonb(
                                c.first[1 + (c.i + length(cr.subject)) % array_length(c.first, 1)] || ' ' ||
                                c.last[1 + (c.i / 7) % array_length(c.last, 1)]))
                       ELSE cr.evidence END,
                  cr.finished_at
           FROM copies c, check_results cr WHERE cr.application_id = $1::uuid"#,
    ] {
        sqlx::query(statement).bind(id).execute(&mut *conn).await?;
    }
    sqlx::query("ANALYZE").execute(&mut *conn).await?;
    Ok(())
}

/// A list in the official layout: invented individuals and entities, and the seed
/// application's first applicant ("ADAMS, Elizabeth G", of examples/approve.json).
fn write_list(dir: &std::path::Path) -> std::io::Result<()> {
    let mut sdn = String::new();
    for i in 0..LIST_ENTRIES {
        let row = if i % 2 == 0 {
            // Names of the same shape and letters as the applicants', spelled
            // backwards: as unlike them as real SDN names are unlike most applicants.
            let backwards = |s: &str| s.chars().rev().collect::<String>();
            format!(
                "{},\"{} {}, {}\",\"individual\",\"SDGT\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- \r\n",
                200_000 + i,
                backwards(LAST_NAMES[(i / 2) % LAST_NAMES.len()]).to_uppercase(),
                backwards(LAST_NAMES[(i / 7 + 3) % LAST_NAMES.len()]).to_uppercase(),
                backwards(FIRST_NAMES[(i / 3) % FIRST_NAMES.len()])
            )
        } else {
            format!(
                "{},\"NORTHWIND BLUE HARBOR {i} HOLDINGS LTD\",-0- ,\"SDGT\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- \r\n",
                200_000 + i
            )
        };
        sdn.push_str(&row);
    }
    sdn.push_str(
        "49001,\"ADAMS, Elizabeth G\",\"individual\",\"SDGT\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- \r\n\x1a",
    );
    std::fs::write(dir.join("sdn.csv"), sdn)
}
