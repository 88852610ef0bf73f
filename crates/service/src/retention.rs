//! The periodic purge of the rows past their retention (`dossier_store::retention`):
//! the audit trail's old days and the finished jobs. Every pod runs it; the batches skip
//! rows another pod is deleting, so a fleet shares the work.

use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;

use crate::config::RetentionSettings;
use dossier_store::Store;
use dossier_store::retention::{BATCH, Purged};

/// Purges every `settings.interval`, the first time at a random point of it (pods
/// started together by a deploy do not purge together), until `stopping`. A purge in
/// progress stops between two batches.
pub async fn run(store: Store, settings: RetentionSettings, stopping: CancellationToken) {
    use rand::Rng as _;
    if settings.upstream_calls_days.is_none() && settings.finished_jobs.is_none() {
        return;
    }
    let mut wait = settings
        .interval
        .mul_f64(rand::thread_rng().gen_range(0.1..1.0));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopping.cancelled() => return,
        }
        wait = settings.interval;
        if let Some(days) = settings.upstream_calls_days {
            purge(
                Purged::UpstreamCalls,
                store.purge_upstream_calls(days, BATCH),
                &stopping,
            )
            .await;
        }
        if let Some(retain) = settings.finished_jobs {
            purge(
                Purged::Jobs,
                store.purge_finished_jobs(retain, BATCH),
                &stopping,
            )
            .await;
        }
    }
}

/// Runs one table's batches, counting each in the metric as it commits, and logs the
/// total. A failure ends this round for the table; the next round tries again.
async fn purge(
    table: Purged,
    batches: impl futures::Stream<Item = Result<u64, dossier_store::StoreError>>,
    stopping: &CancellationToken,
) {
    let started = std::time::Instant::now();
    let mut rows = 0u64;
    let mut batches = std::pin::pin!(batches);
    while let Some(batch) = batches.next().await {
        match batch {
            Ok(n) => {
                rows += n;
                metrics::counter!("dossier_retention_purged_rows_total", "table" => table.as_str())
                    .increment(n);
            }
            Err(e) => {
                tracing::warn!(table = table.as_str(), rows, error = %e, "retention purge failed; trying again later");
                return;
            }
        }
        if stopping.is_cancelled() {
            break;
        }
    }
    if rows > 0 {
        tracing::info!(
            table = table.as_str(),
            rows,
            took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "purged rows past their retention"
        );
    }
}
