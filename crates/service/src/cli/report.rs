//! `dossier report NAME`: print one of the reporting views (migration
//! `20261125000004_reporting.sql`, docs/reporting.md) as a table, CSV or JSON.
//!
//! The user's NAME picks an entry of the fixed list of views below; the store has one
//! compile-time checked statement per view (`dossier_store::reporting`), and the dates
//! are bound parameters. Each row comes back as `to_jsonb(v)`, so every PostgreSQL type
//! (numeric, date, timestamptz, interval, arrays) arrives in one well-defined form; the
//! column order comes from the catalog. The renderers are pure functions of (columns,
//! rows).

use std::fmt::Write as _;

use crate::config::DatabaseArgs;
use anyhow::Context;
use chrono::NaiveDate;
use dossier_store::reporting::{self, ReportingView};
use serde_json::{Map, Value};
use sqlx::{Connection, PgConnection};

/// One reporting view: its name, the store's statement for it (which also knows its
/// UTC day, what --since and --until filter on, and the order its rows are printed in)
/// and what it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub name: &'static str,
    pub view: ReportingView,
    pub about: &'static str,
}

/// Every view `dossier report` prints. Nothing else can be queried.
pub const VIEWS: &[View] = &[
    View {
        name: "pipeline",
        view: ReportingView::Pipeline,
        about: "applications per day, status and current decision",
    },
    View {
        name: "decline_reasons",
        view: ReportingView::DeclineReasons,
        about: "reason codes of declined applications per day",
    },
    View {
        name: "refer_reasons",
        view: ReportingView::ReferReasons,
        about: "reason codes of referred applications per day",
    },
    View {
        name: "check_outcomes",
        view: ReportingView::CheckOutcomes,
        about: "check outcomes per day and check kind",
    },
    View {
        name: "review_queue",
        view: ReportingView::ReviewQueue,
        about: "referred applications waiting for an underwriter, oldest first",
    },
    View {
        name: "turnaround",
        view: ReportingView::Turnaround,
        about: "p50 and p95 seconds from submission to decision per day",
    },
    View {
        name: "upstream_usage",
        view: ReportingView::UpstreamUsage,
        about: "upstream requests, errors, cost, latency and cache savings per day",
    },
    View {
        name: "dead_letters",
        view: ReportingView::DeadLetters,
        about: "jobs that exhausted their attempts (re-run with `dossier jobs retry`)",
    },
    View {
        name: "access_log",
        view: ReportingView::AccessLog,
        about: "every access to an application or a person: caller, method, purpose",
    },
    View {
        name: "funding_holds",
        view: ReportingView::FundingHolds,
        about: "funding checks on HOLD awaiting an underwriter, oldest first",
    },
    View {
        name: "sanctions_alerts",
        view: ReportingView::SanctionsAlerts,
        about: "sanctions monitoring alerts on approved applications, newest first",
    },
    View {
        name: "vendor_cost",
        view: ReportingView::VendorCost,
        about: "vendor cost spent and avoided per day and evaluation mode",
    },
];

/// The names `dossier report` accepts, for messages.
pub fn view_names() -> Vec<&'static str> {
    VIEWS.iter().map(|v| v.name).collect()
}

/// The view called `name`, or an error listing the valid names.
pub fn find_view(name: &str) -> anyhow::Result<&'static View> {
    VIEWS.iter().find(|v| v.name == name).ok_or_else(|| {
        let list: Vec<String> = VIEWS
            .iter()
            .map(|v| format!("  {:<16} {}", v.name, v.about))
            .collect();
        anyhow::anyhow!(
            "unknown report {name:?}; the reports are:\n{}",
            list.join("\n")
        )
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns, for people.
    #[default]
    Table,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// A JSON array of objects, one per row.
    Json,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The report: pipeline, decline_reasons, refer_reasons, check_outcomes,
    /// review_queue, turnaround, upstream_usage or dead_letters (docs/reporting.md).
    pub name: String,
    /// First day to include (YYYY-MM-DD, UTC, inclusive).
    #[arg(long)]
    pub since: Option<NaiveDate>,
    /// Day to stop before (YYYY-MM-DD, UTC, exclusive).
    #[arg(long)]
    pub until: Option<NaiveDate>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    // A login in role dossier_reporting is enough.
    #[command(flatten)]
    pub database: DatabaseArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let view = find_view(&args.name)?;
    if let (Some(since), Some(until)) = (args.since, args.until) {
        anyhow::ensure!(
            since < until,
            "--since {since} must be before --until {until} (--until is exclusive)"
        );
    }
    let url = args.database.url("report")?;
    let mut conn = PgConnection::connect(&url).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot connect to PostgreSQL at {} ({e}); check DATABASE_URL",
            dossier_store::redact_url(&url)
        )
    })?;
    let (columns, rows) = fetch(&mut conn, view, args.since, args.until).await?;
    let _ = conn.close().await;
    let out = match args.format {
        Format::Table => render_table(&columns, &rows),
        Format::Csv => render_csv(&columns, &rows)?,
        Format::Json => render_json(&columns, &rows),
    };
    print!("{out}");
    Ok(())
}

/// The view's columns (in order) and its rows between `since` (inclusive) and `until`
/// (exclusive), ordered as the view's entry says.
pub async fn fetch(
    conn: &mut PgConnection,
    view: &View,
    since: Option<NaiveDate>,
    until: Option<NaiveDate>,
) -> anyhow::Result<(Vec<String>, Vec<Map<String, Value>>)> {
    let qualified = format!("reporting.{}", view.view.name());
    let columns = reporting::view_columns(conn, view.view).await?;
    anyhow::ensure!(
        !columns.is_empty(),
        "the view {qualified} does not exist in this database; run `dossier migrate` (it needs migration 20261125000004)"
    );
    // Timestamps in the JSON are written in the session's time zone: the store makes it
    // UTC, like the day columns.
    let texts = reporting::view_rows(conn, view.view, since, until)
        .await
        .with_context(|| format!("cannot read {qualified}"))?;
    let rows = texts
        .iter()
        .map(|t| match serde_json::from_str(t) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(other) => anyhow::bail!("{qualified} returned a non-object row: {other}"),
            Err(e) => Err(e.into()),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((columns, rows))
}

/// A cell as text: NULL is empty, strings as they are, arrays joined with ", ",
/// objects as JSON.
pub fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell_text).collect::<Vec<_>>().join(", "),
        Value::Object(_) => v.to_string(),
    }
}

fn cell<'a>(row: &'a Map<String, Value>, column: &str) -> &'a Value {
    row.get(column).unwrap_or(&Value::Null)
}

/// Aligned columns: text left, numbers right; a dashed rule under the header and the
/// row count at the end.
pub fn render_table(columns: &[String], rows: &[Map<String, Value>]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            columns
                .iter()
                // One line per row, whatever the text holds.
                .map(|c| cell_text(cell(r, c)).replace(['\n', '\r', '\t'], " "))
                .collect()
        })
        .collect();
    let numeric: Vec<bool> = columns
        .iter()
        .map(|c| {
            let mut values = rows.iter().map(|r| cell(r, c)).filter(|v| !v.is_null());
            let first = values.next();
            first.is_some_and(Value::is_number) && values.all(Value::is_number)
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([c.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: &[String], out: &mut String| {
        let mut text = String::new();
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let pad = widths[i].saturating_sub(v.chars().count());
            if numeric[i] {
                text.push_str(&" ".repeat(pad));
                text.push_str(v);
            } else {
                text.push_str(v);
                text.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    let mut out = String::new();
    line(columns, &mut out);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&rule, &mut out);
    for r in &cells {
        line(r, &mut out);
    }
    let _ = writeln!(
        out,
        "({} row{})",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
    out
}

/// CSV with a header row; cells as in the table (arrays joined with ", ").
pub fn render_csv(columns: &[String], rows: &[Map<String, Value>]) -> anyhow::Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(columns)?;
    for r in rows {
        w.write_record(columns.iter().map(|c| cell_text(cell(r, c))))?;
    }
    let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(String::from_utf8(bytes)?)
}

/// A JSON array of objects, keys in column order, one row per line. Values keep their
/// JSON types: numbers, strings (dates, timestamps, intervals), arrays, null.
pub fn render_json(columns: &[String], rows: &[Map<String, Value>]) -> String {
    if rows.is_empty() {
        return "[]\n".to_owned();
    }
    let mut out = String::from("[\n");
    for (i, r) in rows.iter().enumerate() {
        out.push_str("  {");
        for (j, c) in columns.iter().enumerate() {
            if j > 0 {
                out.push_str(", ");
            }
            out.push_str(&Value::String(c.clone()).to_string());
            out.push_str(": ");
            out.push_str(&cell(r, c).to_string());
        }
        out.push('}');
        if i + 1 < rows.len() {
            out.push(',');
        }
        out.push('\n');
    }
    out.push_str("]\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(values: Value) -> Vec<Map<String, Value>> {
        values
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_object().unwrap().clone())
            .collect()
    }

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_view_is_found_and_unknown_names_list_them() {
        for name in view_names() {
            assert_eq!(find_view(name).unwrap().name, name);
        }
        let e = find_view("applicant_secrets").unwrap_err().to_string();
        assert!(e.contains("unknown report"), "{e}");
        for name in view_names() {
            assert!(e.contains(name), "{e}");
        }
        assert!(find_view("pipeline; DROP TABLE applications").is_err());
    }

    #[test]
    fn every_store_view_is_listed_once_under_its_own_name() {
        assert_eq!(VIEWS.len(), ReportingView::ALL.len());
        for (v, store) in VIEWS.iter().zip(ReportingView::ALL) {
            assert_eq!(v.view, store);
            assert_eq!(v.name, store.name());
        }
    }

    #[test]
    fn table_aligns_text_left_and_numbers_right() {
        let c = cols(&["day", "reason_code", "count", "share"]);
        let r = rows(json!([
            {"day": "2026-11-25", "reason_code": "PROPERTY_TAX_DELINQUENT", "count": 12, "share": 0.5},
            {"day": "2026-11-25", "reason_code": "LIEN", "count": 3, "share": 0.125},
        ]));
        assert_eq!(
            render_table(&c, &r),
            "\
day         reason_code              count  share
----------  -----------------------  -----  -----
2026-11-25  PROPERTY_TAX_DELINQUENT     12    0.5
2026-11-25  LIEN                         3  0.125
(2 rows)
"
        );
    }

    #[test]
    fn table_renders_nulls_arrays_and_intervals() {
        let c = cols(&[
            "application_id",
            "age",
            "reason_codes",
            "rails_application_id",
        ]);
        let r = rows(json!([
            {"application_id": "a1", "age": "2 days 03:00:00",
             "reason_codes": ["OWNER_IS_ENTITY", "VALUATION_LOW_CONFIDENCE"],
             "rails_application_id": null},
        ]));
        let t = render_table(&c, &r);
        assert!(
            t.contains(
                "a1              2 days 03:00:00  OWNER_IS_ENTITY, VALUATION_LOW_CONFIDENCE\n"
            ),
            "{t}"
        );
        assert!(t.ends_with("(1 row)\n"), "{t}");
    }

    #[test]
    fn empty_table_has_header_and_count() {
        let c = cols(&["day", "decided"]);
        assert_eq!(
            render_table(&c, &[]),
            "day  decided\n---  -------\n(0 rows)\n"
        );
    }

    #[test]
    fn multi_line_text_stays_on_one_line() {
        let c = cols(&["a"]);
        let r = rows(json!([{"a": "x\ny"}]));
        assert_eq!(render_table(&c, &r), "a\n---\nx y\n(1 row)\n");
    }

    #[test]
    fn csv_quotes_and_joins_arrays() {
        let c = cols(&["application_id", "reason_codes", "amount_cents", "city"]);
        let r = rows(json!([
            {"application_id": "a1", "reason_codes": ["A", "B"], "amount_cents": 4500000,
             "city": "Town, \"Old\""},
            {"application_id": "a2", "reason_codes": [], "amount_cents": null, "city": "X"},
        ]));
        assert_eq!(
            render_csv(&c, &r).unwrap(),
            "application_id,reason_codes,amount_cents,city\n\
             a1,\"A, B\",4500000,\"Town, \"\"Old\"\"\"\n\
             a2,,,X\n"
        );
    }

    #[test]
    fn json_keeps_column_order_and_types() {
        let c = cols(&["upstream", "requests", "cache_hit_rate", "day"]);
        let r = rows(json!([
            {"day": "2026-11-25", "upstream": "identity", "requests": 12, "cache_hit_rate": 0.25},
            {"day": "2026-11-25", "upstream": "rails", "requests": 1, "cache_hit_rate": null},
        ]));
        let out = render_json(&c, &r);
        assert_eq!(
            out,
            "[\n  {\"upstream\": \"identity\", \"requests\": 12, \"cache_hit_rate\": 0.25, \"day\": \"2026-11-25\"},\n  {\"upstream\": \"rails\", \"requests\": 1, \"cache_hit_rate\": null, \"day\": \"2026-11-25\"}\n]\n"
        );
        let parsed: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed[0]["requests"], 12);
        assert_eq!(render_json(&c, &[]), "[]\n");
    }
}
