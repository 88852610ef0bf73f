//! The reporting views (migration `20261125000004_reporting.sql`, docs/reporting.md), as
//! `dossier report` reads them: on a plain connection, since a login in role
//! dossier_reporting (which may read these views and nothing else) is enough.
//!
//! Each view has its own statement, so every one of them is checked at compile time.
//! Each row comes back as `to_jsonb(v)`, so every PostgreSQL type (numeric, date,
//! timestamptz, interval, arrays) arrives in one well-defined form.

use chrono::NaiveDate;
use sqlx::PgConnection;

use super::StoreError;

/// One view of the `reporting` schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportingView {
    Pipeline,
    DeclineReasons,
    ReferReasons,
    CheckOutcomes,
    ReviewQueue,
    Turnaround,
    UpstreamUsage,
    DeadLetters,
    AccessLog,
    FundingHolds,
    SanctionsAlerts,
    VendorCost,
}

impl ReportingView {
    /// Every view, in the order `dossier report` lists them.
    pub const ALL: [ReportingView; 12] = [
        ReportingView::Pipeline,
        ReportingView::DeclineReasons,
        ReportingView::ReferReasons,
        ReportingView::CheckOutcomes,
        ReportingView::ReviewQueue,
        ReportingView::Turnaround,
        ReportingView::UpstreamUsage,
        ReportingView::DeadLetters,
        ReportingView::AccessLog,
        ReportingView::FundingHolds,
        ReportingView::SanctionsAlerts,
        ReportingView::VendorCost,
    ];

    /// The view's name in the `reporting` schema.
    pub fn name(self) -> &'static str {
        match self {
            ReportingView::Pipeline => "pipeline",
            ReportingView::DeclineReasons => "decline_reasons",
            ReportingView::ReferReasons => "refer_reasons",
            ReportingView::CheckOutcomes => "check_outcomes",
            ReportingView::ReviewQueue => "review_queue",
            ReportingView::Turnaround => "turnaround",
            ReportingView::UpstreamUsage => "upstream_usage",
            ReportingView::DeadLetters => "dead_letters",
            ReportingView::AccessLog => "access_log",
            ReportingView::FundingHolds => "funding_holds",
            ReportingView::SanctionsAlerts => "sanctions_alerts",
            ReportingView::VendorCost => "vendor_cost",
        }
    }
}

/// The view's columns, in order (from the catalog); empty when the view does not exist
/// in this database (not migrated that far).
pub async fn view_columns(
    conn: &mut PgConnection,
    view: ReportingView,
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT attname::text AS "attname!" FROM pg_attribute
         WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped
         ORDER BY attnum"#,
        format!("reporting.{}", view.name()),
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// The view's rows as JSON objects (text), their UTC day between `since` (inclusive) and
/// `until` (exclusive), in the view's order. Sets the session's time zone to UTC first:
/// timestamps in the JSON are written in it, like the day columns.
pub async fn view_rows(
    conn: &mut PgConnection,
    view: ReportingView,
    since: Option<NaiveDate>,
    until: Option<NaiveDate>,
) -> Result<Vec<String>, StoreError> {
    sqlx::query!("SET TIME ZONE 'UTC'")
        .execute(&mut *conn)
        .await?;
    // The day a row belongs to is `v.day`, except where the view has no day column.
    macro_rules! rows {
        ($sql:literal) => {
            sqlx::query_scalar!($sql, since, until)
                .fetch_all(&mut *conn)
                .await?
        };
    }
    Ok(match view {
        ReportingView::Pipeline => rows!(
            r#"SELECT to_jsonb(v)::text AS "row!" FROM reporting.pipeline v
             WHERE ($1::date IS NULL OR v.day >= $1) AND ($2::date IS NULL OR v.day < $2)
             ORDER BY v.day, v.status, v.decision NULLS FIRST"#
        ),
        ReportingView::DeclineReasons => rows!(
            r#"SELECT to_jsonb(v)::text AS "row!" FROM reporting.decline_reasons v
             WHERE ($1::date IS NULL OR v.day >= $1) AND ($2::date IS NULL OR v.day < $2)
             ORDER BY v.day, v.count DESC, v.reason_code"#
        ),
        ReportingView::ReferReasons => rows!(
            r#"SELECT to_jsonb(v)::text AS "row!" FROM reporting.refer_reasons v
             WHERE ($1::date IS NULL OR v.day >= $1) AND ($2::date IS NULL OR v.day < $2)
             ORDER BY v.day, v.count DESC, v.reason_code"#
        ),
        ReportingView::CheckOutcomes => rows!(
            r#"SELECT to_jsonb(v)::text AS "row!" FROM reporting.check_outcomes v
             WHERE ($1::date IS NULL OR v.day >= $1) AND ($2::date IS NULL OR v.day < $2)
             ORDER BY v.day, v.kind"#
        ),
        ReportingView::ReviewQueue => rows!(
            r#"SELECT to_jsonb(v)::text AS "row!" FROM reporting.review_queue v
             WHERE ($1::date IS NULL OR (v.created_at AT TIME ZONE 'UTC')::date >= $1)
               AND ($2::date IS NULL OR (v.created_at AT TIME ZONE 'UTC')::date < $2)
             ORDER BY v.decided_at, v.created_at, v.application_id"#
        ),
        ReportingView::Turnaround => rows!(
            r#"SELECT to_jsonb(v)::text AS "row!" FROM reporting.turnaround v
             WHERE ($1::date IS NULL OR v.day >= $1) AND ($2::date IS NULL OR v.day < $2)
             ORDER BY v.day"#
        ),
        ReportingView::UpstreamUsage => rows!(
            r#"SELECT to_jsonb(v)::text AS "row!" FROM reporting.upstream_usage v
             WHERE ($1::date IS NULL OR v.day >= $1) AND ($2::date IS NULL OR v.day < $2)
             ORDER BY v.day, v.upstream"#
        ),
        ReportingView::DeadLetters => rows!(
            r#"SELECT to_jsonb(v)::text AS "row!" FROM reporting.dead_letters v
             WHERE ($1::date IS NULL OR (v.dead_since AT TIME ZONE 'UTC')::date >= $1)
               AND ($2::date IS NULL OR (v.dead_since AT TIME ZONE 'UTC')::date < $2)
             ORDER BY v.dead_since, v.job_id"#
        ),
        ReportingView::AccessLog => rows!(
            r#"SELECT to_jsonb(v)::text AS "row!" FROM reporting.access_log v
             WHERE ($1::date IS NULL OR (v.accessed_at AT TIME ZONE 'UTC')::date >= $1)
               AND ($2::date IS NULL OR (v.accessed_at AT TIME ZONE 'UTC')::date < $2)
             ORDER BY v.accessed_at"#
        ),
        ReportingView::FundingHolds => rows!(
            r#"SELECT to_jsonb(v)::text AS "row!" FROM reporting.funding_holds v
             WHERE ($1::date IS NULL OR (v.checked_at AT TIME ZONE 'UTC')::date >= $1)
               AND ($2::date IS NULL OR (v.checked_at AT TIME ZONE 'UTC')::date < $2)
             ORDER BY v.checked_at, v.funding_check_id"#
        ),
        ReportingView::SanctionsAlerts => rows!(
            r#"SELECT to_jsonb(v)::text AS "row!" FROM reporting.sanctions_alerts v
             WHERE ($1::date IS NULL OR (v.raised_at AT TIME ZONE 'UTC')::date >= $1)
               AND ($2::date IS NULL OR (v.raised_at AT TIME ZONE 'UTC')::date < $2)
             ORDER BY v.raised_at DESC, v.alert_id"#
        ),
        ReportingView::VendorCost => rows!(
            r#"SELECT to_jsonb(v)::text AS "row!" FROM reporting.vendor_cost v
             WHERE ($1::date IS NULL OR v.day >= $1) AND ($2::date IS NULL OR v.day < $2)
             ORDER BY v.day, v.mode"#
        ),
    })
}
