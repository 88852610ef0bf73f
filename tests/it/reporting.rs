//! The reporting views (migration 20261125000004), the dossier_reporting role,
//! `dossier report` and `dossier seed`, against real PostgreSQL, the real server and
//! the simulators.

use std::time::Duration;

use dossier_devkit::cli::seed;
use dossier_devkit::harness::{TestApp, TestDb, evaluate_request};
use dossier_service::cli::report::{self, VIEWS};
use dossier_service::config::DatabaseArgs;
use dossier_service::proto::{self, Decision};
use serde_json::Value;
use sqlx::{Connection, PgConnection, PgPool};

/// Every row of a reporting view as JSON.
async fn rows(pool: &PgPool, view: &str) -> Vec<Value> {
    assert!(
        VIEWS.iter().any(|v| v.name == view),
        "{view} is not a reporting view"
    );
    let texts: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT to_jsonb(v)::text FROM reporting.{view} v"
    )))
    .fetch_all(pool)
    .await
    .unwrap_or_else(|e| panic!("select from reporting.{view}: {e}"));
    texts
        .iter()
        .map(|t| serde_json::from_str(t).unwrap())
        .collect()
}

fn int(v: &Value, key: &str) -> i64 {
    v[key]
        .as_i64()
        .unwrap_or_else(|| panic!("{key} is not an integer in {v}"))
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

async fn evaluate(app: &TestApp, example: &str, key: &str) -> proto::Report {
    app.client()
        .await
        .evaluate_application(evaluate_request(example, key))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap()
}

/// Evaluates the approve, decline and refer examples (and approve once more, so that
/// its upstream answers come from cache), then waits for the audit rows, which are
/// written in the background.
async fn app_with_examples() -> (TestApp, [proto::Report; 3]) {
    let app = TestApp::spawn().await;
    let approve = evaluate(&app, "approve", "rep-approve").await;
    let decline = evaluate(&app, "decline", "rep-decline").await;
    let refer = evaluate(&app, "refer", "rep-refer").await;
    assert_eq!(approve.decision(), Decision::Approved);
    assert_eq!(decline.decision(), Decision::Declined);
    assert_eq!(refer.decision(), Decision::Refer);
    let again = evaluate(&app, "approve", "rep-approve-again").await;
    assert_eq!(again.decision(), Decision::Approved);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        // 3 distinct applications × 8 upstream requests (property, AVM, 2 × identity
        // per applicant, licence, registry): at least 3 property_records requests.
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM upstream_calls WHERE upstream = 'property_records'",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if n >= 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "audit rows not written"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // One dead letter: the refer decision's delivery, as if Rails had refused it on every
    // attempt (once the worker is done with it, so nothing races the update).
    dossier_devkit::harness::eventually(
        "four deliveries done",
        Duration::from_secs(30),
        || async {
            (dossier_devkit::harness::count_jobs(&app.pool, "deliver", "done").await == 4)
                .then_some(())
        },
    )
    .await;
    sqlx::query(
        "UPDATE jobs SET state = 'dead', attempts = max_attempts, finished_at = now(),
                         last_error = 'delivering decision to Rails failed: rails answered 503'
         WHERE kind = 'deliver' AND application_id = $1",
    )
    .bind(refer.application_id.parse::<uuid::Uuid>().unwrap())
    .execute(&app.pool)
    .await
    .unwrap();
    // One funding HOLD: a lien recorded on the second approval's property since.
    let a = dossier_devkit::harness::example_application("approve");
    let address = a.property.unwrap().address.unwrap();
    app.sims.record_property_event(
        &dossier_upstream::property_records::PropertyQuery {
            line1: address.line1,
            city: address.city,
            state: address.state,
            postal_code: address.postal_code,
            apn: String::new(),
        },
        dossier_devkit::sim::property_records::PropertyEvent::LienRecorded {
            lien_kind: "JUDGMENT".into(),
            amount_cents: 250_000,
            recorded_on: chrono::Utc::now().date_naive(),
        },
    );
    let hold = app
        .client()
        .await
        .prepare_funding(proto::PrepareFundingRequest {
            application_id: again.application_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .funding_check
        .unwrap();
    assert_eq!(hold.verdict(), proto::FundingVerdict::Hold);
    // Sanctions monitoring alerts: a new list naming the approved applicant.
    let dir = tempfile::tempdir().unwrap();
    dossier_devkit::sample_sanctions::write_with_individual(
        dir.path(),
        49_001,
        "ADAMS, Elizabeth G",
    )
    .unwrap();
    dossier_service::cli::sanctions::load_dir(&app.store, dir.path())
        .await
        .unwrap();
    dossier_devkit::harness::eventually(
        "the monitoring alerts",
        Duration::from_secs(30),
        || async {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sanctions_alerts")
                .fetch_one(&app.pool)
                .await
                .unwrap();
            (n == 2).then_some(())
        },
    )
    .await;
    (app, [approve, decline, refer])
}

#[tokio::test]
async fn views_answer_the_underwriters_questions() {
    let (app, [_approve, decline, refer]) = app_with_examples().await;
    let pool = &app.pool;

    // pipeline: two approved, one declined, one referred, all decided.
    let pipeline = rows(pool, "pipeline").await;
    let count_of = |decision: &str| -> i64 {
        pipeline
            .iter()
            .filter(|r| r["decision"] == decision)
            .map(|r| int(r, "count"))
            .sum()
    };
    assert_eq!(count_of("approved"), 2, "{pipeline:?}");
    assert_eq!(count_of("declined"), 1, "{pipeline:?}");
    assert_eq!(count_of("refer"), 1, "{pipeline:?}");
    assert!(pipeline.iter().all(|r| r["status"] == "decided"));
    let today = chrono::Utc::now().date_naive().to_string();
    assert!(pipeline.iter().all(|r| r["day"] == today.as_str()));

    // decline_reasons: the delinquent taxes, on every declined application that day.
    let declines = rows(pool, "decline_reasons").await;
    let tax = declines
        .iter()
        .find(|r| r["reason_code"] == "PROPERTY_TAX_DELINQUENT")
        .unwrap_or_else(|| panic!("{declines:?}"));
    assert_eq!(int(tax, "count"), 1);
    assert_eq!(num(tax, "share"), 1.0);
    assert_eq!(
        decline.reason_codes.len(),
        declines.len(),
        "one row per code of the one decline: {declines:?}"
    );

    // refer_reasons: the trust.
    let refers = rows(pool, "refer_reasons").await;
    assert!(
        refers
            .iter()
            .any(|r| r["reason_code"] == "OWNER_IS_ENTITY" && int(r, "count") == 1),
        "{refers:?}"
    );

    // check_outcomes: the failing tax check, the reviewing ownership check, rates.
    let checks = rows(pool, "check_outcomes").await;
    let kind = |k: &str| {
        checks
            .iter()
            .find(|r| r["kind"] == k)
            .unwrap_or_else(|| panic!("no {k} in {checks:?}"))
            .clone()
    };
    let tax = kind("property_tax");
    assert_eq!(int(&tax, "checks"), 4);
    assert_eq!(int(&tax, "fail"), 1);
    assert_eq!(int(&tax, "pass"), 3);
    assert_eq!(num(&tax, "fail_rate"), 0.25);
    assert_eq!(int(&kind("property_ownership"), "review"), 1);
    for r in &checks {
        let parts = int(r, "pass") + int(r, "fail") + int(r, "review") + int(r, "unavailable");
        assert_eq!(parts, int(r, "checks"), "{r}");
    }

    // review_queue: the referred application, with a summary and no names.
    let queue = rows(pool, "review_queue").await;
    assert_eq!(queue.len(), 1, "{queue:?}");
    let q = &queue[0];
    assert_eq!(q["application_id"], refer.application_id.as_str());
    assert_eq!(q["property_city"], "Pasadena");
    assert_eq!(q["property_state"], "CA");
    assert_eq!(int(q, "amount_cents"), 4_500_000);
    assert_eq!(int(q, "term_years"), 15);
    assert_eq!(int(q, "applicants"), 1);
    assert_eq!(q["reason_codes"], serde_json::json!(["OWNER_IS_ENTITY"]));
    assert_eq!(
        q["measures"],
        serde_json::json!(["solar_pv", "battery_storage"])
    );
    assert!(q["age"].is_string() && q["decided_at"].is_string(), "{q}");

    // funding_holds: the lien recorded after the second approval, no names.
    let holds = rows(pool, "funding_holds").await;
    assert_eq!(holds.len(), 1, "{holds:?}");
    assert_eq!(
        holds[0]["reason_codes"],
        serde_json::json!(["INVOLUNTARY_LIEN"])
    );
    assert_eq!(holds[0]["changes"], serde_json::json!(["lien_recorded"]));
    assert_eq!(holds[0]["property_city"], "Costa Mesa");
    assert!(holds[0]["age"].is_string(), "{}", holds[0]);

    // sanctions_alerts: both approvals match the new entry; nobody is named.
    let alerts = rows(pool, "sanctions_alerts").await;
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    for a in &alerts {
        assert_eq!(a["subject"], "applicant 1");
        assert_eq!(a["severity"], "match");
        assert_eq!(int(a, "candidate_entry"), 49_001);
    }

    // turnaround: one day, four decided applications, p50 ≤ p95 ≤ max.
    let turnaround = rows(pool, "turnaround").await;
    assert_eq!(turnaround.len(), 1, "{turnaround:?}");
    let t = &turnaround[0];
    assert_eq!(int(t, "decided"), 4);
    let (p50, p95, max) = (
        num(t, "p50_seconds"),
        num(t, "p95_seconds"),
        num(t, "max_seconds"),
    );
    assert!(0.0 <= p50 && p50 <= p95 && p95 <= max && max < 30.0, "{t}");

    // upstream_usage: requests and cost from the audit, cache hits from the second
    // approve (its property answer came from L1 or L2).
    let usage = rows(pool, "upstream_usage").await;
    let pr = usage
        .iter()
        .find(|r| r["upstream"] == "property_records")
        .unwrap_or_else(|| panic!("{usage:?}"));
    let requests = int(pr, "requests");
    assert!(requests >= 3, "{pr}");
    assert_eq!(int(pr, "errors"), 0);
    let cost: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(cost_cents), 0)::bigint FROM upstream_calls WHERE upstream = 'property_records'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(int(pr, "cost_cents"), cost);
    assert!(num(pr, "mean_latency_ms") >= 0.0 && num(pr, "p95_latency_ms") >= 0.0);
    // Four runs used a property answer each: three fetched, one from cache.
    assert_eq!(int(pr, "answers"), 4, "{pr}");
    assert_eq!(int(pr, "cache_hits"), 1, "{pr}");
    assert_eq!(num(pr, "cache_hit_rate"), 0.25);
    let unit = cost as f64 / requests as f64;
    assert!((num(pr, "unit_cost_cents") - unit).abs() < 0.01, "{pr}");
    assert!((num(pr, "cost_saved_cents") - unit).abs() < 0.01, "{pr}");
    // Identity: two applicants × (verify, bankruptcies), and the household's ability to
    // pay (one check, sourced from the first applicant's income answer), from cache.
    let id = usage
        .iter()
        .find(|r| r["upstream"] == "identity")
        .unwrap_or_else(|| panic!("{usage:?}"));
    // The view counts distinct (run, fetch time) answers, a lower bound: at least the
    // two applicants' identity answers and the household's income came from cache.
    assert!(int(id, "cache_hits") >= 3, "{id}");
}

#[tokio::test]
async fn the_reporting_role_reads_the_views_and_nothing_else() {
    let (app, _) = app_with_examples().await;
    let mut conn = PgConnection::connect(&app.db.url).await.unwrap();

    // Every view in the schema is one `dossier report` knows, documented with a comment,
    // and readable by the role, also through `dossier report`'s own query.
    let in_schema: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT c.relname::text, obj_description(c.oid, 'pg_class')
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'reporting' ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut known: Vec<&str> = VIEWS.iter().map(|v| v.name).collect();
    known.sort();
    assert_eq!(
        in_schema
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        known
    );
    for (name, comment) in &in_schema {
        assert!(
            comment.as_deref().is_some_and(|c| c.len() > 40),
            "{name} has no COMMENT ON VIEW"
        );
    }

    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SET LOCAL ROLE dossier_reporting")
        .execute(&mut *tx)
        .await
        .expect("the test user may SET ROLE dossier_reporting (a superuser, as the private PostgreSQL's is)");
    for view in VIEWS {
        let (columns, rows) = report::fetch(&mut tx, view, None, None)
            .await
            .unwrap_or_else(|e| panic!("dossier_reporting reads {}: {e:#}", view.name));
        assert!(!columns.is_empty());
        assert!(!rows.is_empty(), "{} is empty", view.name);
    }
    tx.rollback().await.unwrap();

    // Nothing else: no table in public (reviews holds free-text notes), no CREATE in
    // reporting or public.
    for forbidden in [
        "SELECT count(*) FROM public.applications",
        "SELECT count(*) FROM public.applicant_secrets",
        "SELECT count(*) FROM public.decisions",
        "SELECT count(*) FROM public.check_results",
        "SELECT count(*) FROM public.upstream_calls",
        "SELECT count(*) FROM public.upstream_cache",
        "SELECT count(*) FROM public.reviews",
        "SELECT count(*) FROM public._sqlx_migrations",
        "CREATE VIEW reporting.mine AS SELECT 1 AS one",
        "CREATE TABLE public.mine (x int)",
    ] {
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("SET LOCAL ROLE dossier_reporting")
            .execute(&mut *tx)
            .await
            .unwrap();
        let err = sqlx::query(forbidden)
            .execute(&mut *tx)
            .await
            .expect_err(forbidden);
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.to_string());
        assert_eq!(
            code.as_deref(),
            Some("42501"),
            "{forbidden}: {err} (want insufficient_privilege)"
        );
        tx.rollback().await.unwrap();
    }

    // The role cannot log in; an underwriter's login is a member of it.
    let can_login: bool =
        sqlx::query_scalar("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'dossier_reporting'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(!can_login);
}

#[tokio::test]
async fn the_migration_is_idempotent_about_the_cluster_wide_role() {
    // Many databases on one server are migrated at once (these tests do it): the role
    // exists after the first, and each database still gets its grants.
    let dbs = futures::future::join_all((0..4).map(|_| TestDb::migrated())).await;
    for db in &dbs {
        let mut conn = PgConnection::connect(&db.url).await.unwrap();
        let granted: bool = sqlx::query_scalar(
            "SELECT has_table_privilege('dossier_reporting', 'reporting.pipeline', 'SELECT')
                AND has_schema_privilege('dossier_reporting', 'reporting', 'USAGE')
                AND NOT has_table_privilege('dossier_reporting', 'public.applications', 'SELECT')",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert!(granted, "{}", db.name);
    }
}

/// Names, SSNs (with and without dashes), dates of birth and emails in examples/*.json.
fn example_pii() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut pii = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for a in v["applicants"].as_array().into_iter().flatten() {
            for key in ["first_name", "last_name", "email"] {
                if let Some(s) = a[key].as_str().filter(|s| s.len() > 2) {
                    pii.push(s.to_lowercase());
                }
            }
            if let Some(ssn) = a["ssn"].as_str() {
                pii.push(ssn.to_owned());
                pii.push(ssn.replace('-', ""));
            }
            let d = &a["date_of_birth"];
            if let (Some(y), Some(m), Some(day)) =
                (d["year"].as_i64(), d["month"].as_i64(), d["day"].as_i64())
            {
                pii.push(format!("{y:04}-{m:02}-{day:02}"));
                pii.push(format!("{m:02}/{day:02}/{y:04}"));
            }
        }
    }
    assert!(pii.len() > 20, "examples have applicants: {pii:?}");
    pii
}

#[tokio::test]
async fn no_view_exposes_pii() {
    let (app, _) = app_with_examples().await;
    let pii = example_pii();
    for view in VIEWS {
        let text: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT coalesce(string_agg(to_jsonb(v)::text, E'\\n'), '') FROM reporting.{} v",
            view.name
        )))
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert!(!text.is_empty(), "{} is empty", view.name);
        let lower = text.to_lowercase();
        for p in &pii {
            assert!(
                !lower.contains(p.as_str()),
                "reporting.{} exposes {p:?}: {text}",
                view.name
            );
        }
    }
    // And by construction: no column that could hold PII, no bytea or jsonb blob.
    let suspicious: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
         FROM pg_attribute a
         JOIN pg_class c ON c.oid = a.attrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'reporting' AND a.attnum > 0 AND NOT a.attisdropped
           AND (a.attname ~ '(ssn|birth|dob|email|name|sealed|lookup|evidence|figures|payload|idempotency)'
                OR a.attname = 'error'
                OR a.atttypid IN ('bytea'::regtype, 'jsonb'::regtype, 'json'::regtype))",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(suspicious.is_empty(), "{suspicious:?}");
}

#[tokio::test]
async fn dossier_report_renders_views_and_filters_days() {
    let (app, _) = app_with_examples().await;
    let mut conn = PgConnection::connect(&app.db.url).await.unwrap();
    let today = chrono::Utc::now().date_naive();
    let tomorrow = today.succ_opt().unwrap();

    let view = report::find_view("decline_reasons").unwrap();
    let (columns, rows) = report::fetch(&mut conn, view, Some(today), Some(tomorrow))
        .await
        .unwrap();
    assert_eq!(columns, ["day", "reason_code", "count", "share"]);
    let table = report::render_table(&columns, &rows);
    let mut lines = table.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        columns
    );
    assert!(lines.next().unwrap().starts_with("----------  "));
    assert!(table.contains("PROPERTY_TAX_DELINQUENT"), "{table}");
    assert!(table.contains(&today.to_string()), "{table}");
    assert!(table.ends_with(&format!(
        "({} row{})\n",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    )));

    let csv = report::render_csv(&columns, &rows).unwrap();
    assert!(csv.starts_with("day,reason_code,count,share\n"), "{csv}");
    assert_eq!(csv.lines().count(), rows.len() + 1);

    let json: Value = serde_json::from_str(&report::render_json(&columns, &rows)).unwrap();
    assert_eq!(json.as_array().unwrap().len(), rows.len());
    assert!(json[0]["count"].is_number());

    // The review queue: intervals, arrays and timestamps (in UTC) render.
    let view = report::find_view("review_queue").unwrap();
    let (columns, rows) = report::fetch(&mut conn, view, None, None).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0]["created_at"].as_str().unwrap().ends_with("+00:00"));
    let table = report::render_table(&columns, &rows);
    assert!(table.contains("solar_pv, battery_storage"), "{table}");
    assert!(table.contains("Pasadena"), "{table}");

    // --since is inclusive, --until exclusive.
    for view in VIEWS {
        let (_, all) = report::fetch(&mut conn, view, None, None).await.unwrap();
        let (_, from_today) = report::fetch(&mut conn, view, Some(today), None)
            .await
            .unwrap();
        let (_, before_today) = report::fetch(&mut conn, view, None, Some(today))
            .await
            .unwrap();
        let (_, from_tomorrow) = report::fetch(&mut conn, view, Some(tomorrow), None)
            .await
            .unwrap();
        assert!(!all.is_empty(), "{}", view.name);
        assert_eq!(from_today.len(), all.len(), "{}", view.name);
        assert!(before_today.is_empty(), "{}", view.name);
        assert!(from_tomorrow.is_empty(), "{}", view.name);
    }
}

#[tokio::test]
async fn dossier_report_runs_against_a_database() {
    let (app, _) = app_with_examples().await;
    for format in [
        report::Format::Table,
        report::Format::Csv,
        report::Format::Json,
    ] {
        report::run(report::Args {
            name: "pipeline".into(),
            since: None,
            until: None,
            format,
            database: DatabaseArgs::of(&app.db.url),
        })
        .await
        .unwrap();
    }
    let today = chrono::Utc::now().date_naive();
    let err = report::run(report::Args {
        name: "turnaround".into(),
        since: Some(today),
        until: Some(today),
        format: report::Format::Table,
        database: DatabaseArgs::of(&app.db.url),
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("must be before --until"), "{err}");
}

#[tokio::test]
async fn dossier_report_refuses_unknown_names() {
    let err = report::run(report::Args {
        name: "applicant_secrets".into(),
        since: None,
        until: None,
        format: report::Format::Table,
        database: DatabaseArgs::of("postgres://nobody@127.0.0.1:1/none"),
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("unknown report \"applicant_secrets\""),
        "{err}"
    );
    for v in VIEWS {
        assert!(err.contains(v.name), "{err}");
    }
}

#[tokio::test]
async fn dossier_seed_fills_every_view() {
    let db = TestDb::empty().await;
    seed::run(seed::Args {
        count: 10,
        concurrency: 4,
        database: DatabaseArgs::of(&db.url),
    })
    .await
    .expect("seed");
    let pool = dossier_store::connect(&db.url, 2).await.unwrap();
    let pipeline = rows(&pool, "pipeline").await;
    let count_of = |decision: &str| -> i64 {
        pipeline
            .iter()
            .filter(|r| r["decision"] == decision)
            .map(|r| int(r, "count"))
            .sum()
    };
    assert_eq!(count_of("approved"), 6, "{pipeline:?}");
    assert_eq!(count_of("declined"), 2, "{pipeline:?}");
    assert_eq!(count_of("refer"), 2, "{pipeline:?}");
    let codes = |rows: Vec<Value>| -> Vec<String> {
        rows.iter()
            .map(|r| r["reason_code"].as_str().unwrap().to_owned())
            .collect()
    };
    let declines = codes(rows(&pool, "decline_reasons").await);
    assert!(
        declines.contains(&"PROPERTY_TAX_DELINQUENT".to_owned()),
        "{declines:?}"
    );
    assert!(
        declines.contains(&"IDENTITY_FLAGGED".to_owned()),
        "{declines:?}"
    );
    let refers = codes(rows(&pool, "refer_reasons").await);
    assert!(refers.contains(&"OWNER_IS_ENTITY".to_owned()), "{refers:?}");
    assert!(
        refers.contains(&"VALUATION_LOW_CONFIDENCE".to_owned()),
        "{refers:?}"
    );
    // Every view has rows, except dead letters (nothing failed) and sanctions alerts (no
    // list was loaded after the approvals).
    for view in VIEWS
        .iter()
        .filter(|v| !["dead_letters", "sanctions_alerts"].contains(&v.name))
    {
        assert!(
            !rows(&pool, view.name).await.is_empty(),
            "{} is empty",
            view.name
        );
    }
    pool.close().await;
}

#[tokio::test]
async fn dossier_seed_needs_a_database_url() {
    let err = seed::run(seed::Args {
        count: 1,
        concurrency: 1,
        database: DatabaseArgs {
            database_url: None,
            from_file: dossier_service::config::Secret::unset("DATABASE_URL"),
        },
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("DATABASE_URL is not set"), "{err}");
    assert!(err.contains("throw-away"), "{err}");
}
