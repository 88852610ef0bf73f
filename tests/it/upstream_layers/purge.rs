//! The periodic purge of the shared cache and its fetch leases.

use super::Rig;

/// The periodic purge removes answers past their stale grace and lease rows that guard
/// nothing, and keeps what is still of use: a fresh answer, a held lease, a lease row
/// guarding a fresh answer.
#[tokio::test]
async fn the_purge_keeps_what_is_fresh_and_held() {
    let rig = Rig::new(|_, _| {}).await;
    let pool = &rig.store.pool;
    for (key, stale_until) in [
        ("old", "now() - interval '1 minute'"),
        ("new", "now() + interval '1 hour'"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO upstream_cache (upstream, kind, key, body, fetched_at, expires_at, stale_until)
             VALUES ('valuation', 'avm', '{key}'::bytea, '{{}}', now(), {stale_until}, {stale_until})"
        )))
        .execute(pool)
        .await
        .unwrap();
    }
    for (key, until, fresh_until) in [
        (
            "spent",
            "now() - interval '1 second'",
            "now() - interval '1 second'",
        ),
        ("held", "now() + interval '1 minute'", "NULL"),
        (
            "guarding",
            "now() - interval '1 second'",
            "now() + interval '1 hour'",
        ),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO upstream_fetch_leases (upstream, kind, key, holder, until, fresh_until)
             VALUES ('valuation', 'avm', '{key}'::bytea, 'pod', {until}, {fresh_until})"
        )))
        .execute(pool)
        .await
        .unwrap();
    }
    assert_eq!(rig.store.cache_purge().await.unwrap(), 2);
    let left: Vec<String> = sqlx::query_scalar(
        "SELECT convert_from(key, 'UTF8') FROM upstream_cache
         UNION ALL SELECT convert_from(key, 'UTF8') FROM upstream_fetch_leases ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(left, ["guarding", "held", "new"]);
}
