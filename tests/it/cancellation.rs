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

/// The storm as a caller makes it: 3,000 concurrent GetReport calls over 100
/// connections, most of them reset (SO_LINGER 0: a TCP RST) with calls in flight, on a
/// small pool. No call answers INTERNAL, no pooled connection is left inside a
/// transaction, the health task had nothing to mend, and calls after it are served.
/// (The test above is the one that pins the cause: with the fix removed this storm did
/// not hit the `BEGIN` window in the runs tried, while that test always does.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_on_reset_connections_leave_the_pool_clean() {
    use dossier_service::proto::GetReportRequest;
    use dossier_service::proto::underwriting_service_client::UnderwritingServiceClient;
    use tonic::transport::Endpoint;

    const CONNECTIONS: u64 = 100;
    const CALLS_PER_CONNECTION: u64 = 30;
    let app = TestApp::spawn_with(|a| a.db_max_connections = 4).await;
    let mut client = app.client().await;
    let id = client
        .evaluate_application(evaluate_request("approve", "storm-seed"))
        .await
        .expect("a first evaluation")
        .into_inner()
        .report
        .unwrap()
        .application_id;

    // Each connection's socket closes with a RST when dropped (linger 0), as a client
    // killed mid-call or a load balancer cutting it would.
    let addr = app.addr;
    let connector = tower::service_fn(move |_: http::Uri| async move {
        let socket = tokio::net::TcpSocket::new_v4()?;
        // Deprecated because a positive linger blocks the thread on drop; a zero one
        // does not: the kernel discards the socket and sends the RST at once.
        #[allow(deprecated)]
        socket.set_linger(Some(Duration::ZERO))?;
        let stream = socket.connect(addr).await?;
        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
    });
    let start = tokio::time::Instant::now();
    let mut storms = Vec::new();
    for c in 0..CONNECTIONS {
        let channel = Endpoint::from_shared(app.endpoint())
            .unwrap()
            .connect_with_connector(connector)
            .await
            .unwrap();
        let id = id.clone();
        let mut calls = tokio::spawn(async move {
            let calls = (0..CALLS_PER_CONNECTION).map(|_| {
                let mut client = UnderwritingServiceClient::new(channel.clone());
                let id = id.clone();
                async move {
                    client
                        .get_report(GetReportRequest { application_id: id })
                        .await
                }
            });
            futures::future::join_all(calls).await
        });
        // Cut points spread over the storm's life, from its first calls to its last,
        // all counted from one start: connections are reset while others still run.
        let cut_at = start + Duration::from_micros(2_000 + (c * 7_919) % 400_000);
        storms.push(async move {
            tokio::select! {
                done = &mut calls => Some(done.unwrap()),
                _ = tokio::time::sleep_until(cut_at) => {
                    // The task and its channel are dropped: its connection is reset.
                    calls.abort();
                    None
                }
            }
        });
    }
    let mut cut = 0;
    for outcome in futures::future::join_all(storms).await {
        match outcome {
            Some(answers) => {
                for answer in answers {
                    if let Err(status) = answer {
                        assert_ne!(status.code(), tonic::Code::Internal, "{status:?}");
                    }
                }
            }
            None => cut += 1,
        }
    }
    assert!(cut > 0, "no connection was reset with calls in flight");
    eprintln!("{cut} of {CONNECTIONS} connections reset with calls in flight");

    // Whatever the server was doing for the reset calls ends; no session of its pool is
    // left inside a transaction (open or aborted).
    let in_transaction = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()
                AND state LIKE 'idle in transaction%'",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap()
    };
    dossier_devkit::harness::eventually(
        "no pooled connection inside a transaction after the storm",
        Duration::from_secs(20),
        || async { (in_transaction().await == 0).then_some(()) },
    )
    .await;

    // And callers after it are served: writes and reads, none INTERNAL.
    for n in 0..20 {
        client
            .evaluate_application(evaluate_request("approve", &format!("storm-after-{n}")))
            .await
            .unwrap_or_else(|e| panic!("evaluation {n} after the storm: {e:?}"));
    }
    for n in 0..50 {
        client
            .get_report(GetReportRequest {
                application_id: id.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("read {n} after the storm: {e:?}"));
    }
    assert_eq!(in_transaction().await, 0);
    // Nor did the health task find one to mend (it rolls such connections back, which
    // would hide the bug from the checks above).
    let metrics = app.metrics().await;
    assert!(
        !metrics.contains("dossier_db_connections_mended_total"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("mended"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
