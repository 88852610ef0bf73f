//! Cancelled database work leaves the pool clean: a caller dropped at any point (an RPC
//! cancelled, a deadline fired, a connection reset) never returns a connection to the
//! pool inside a transaction, so the calls after it do not fail.

use std::time::Duration;

use dossier_devkit::harness::{TestApp, evaluate_request};
use dossier_store::{Store, Vault};
use uuid::Uuid;

/// Report reads (a read-only snapshot transaction) cancelled at a spread of points, from
/// before `BEGIN` to after the last query, hundreds of times: the connection never comes
/// back from the pool inside a transaction, and writes through the API then succeed.
#[tokio::test]
async fn report_reads_cancelled_anywhere_leave_no_connection_in_a_transaction() {
    let app = TestApp::spawn().await;
    let decided = app
        .client()
        .await
        .evaluate_application(evaluate_request("approve", "cancel-seed"))
        .await
        .expect("a first evaluation")
        .into_inner();
    let id: Uuid = decided.report.unwrap().application_id.parse().unwrap();

    // One connection, so every read after a cancelled one gets the connection that read
    // released, and a transaction left open on it is seen at once.
    let pool = dossier_store::connect(&app.db.url, 1).await.unwrap();
    let store = Store::new(pool.clone(), Vault::ephemeral());
    let mut completed = 0;
    let mut left_open = 0;
    for i in 0..600u64 {
        // Cut points spread over a read's life: tokio's timer fires on 1 ms ticks, so
        // the phase at which a cut lands varies from one read to the next.
        let cut = Duration::from_nanos((i * 2_500) % 1_500_000);
        if tokio::time::timeout(cut, store.report(id)).await.is_ok() {
            completed += 1;
        }
        // The read's snapshot transaction is READ ONLY, and a statement outside any
        // transaction block is not: a "yes" is the read's transaction, left open.
        let inside: bool =
            sqlx::query_scalar("SELECT current_setting('transaction_read_only') = 'on'")
                .fetch_one(&pool)
                .await
                .unwrap();
        if inside {
            left_open += 1;
            // Close it, so each cancellation is counted on its own.
            sqlx::query("ROLLBACK").execute(&pool).await.unwrap();
        }
    }
    assert!(completed < 600, "every read finished: none was cancelled");
    assert_eq!(
        left_open,
        0,
        "cancelled reads left their connection inside a transaction {left_open} times out of {}",
        600 - completed
    );

    // What callers saw after the storm in the bug this guards against: writes failing
    // INTERNAL on connections stuck in a read-only transaction.
    let mut client = app.client().await;
    for n in 0..20 {
        client
            .evaluate_application(evaluate_request("approve", &format!("cancel-after-{n}")))
            .await
            .unwrap_or_else(|s| panic!("evaluation {n} after the cancellations: {s:?}"));
    }
}
