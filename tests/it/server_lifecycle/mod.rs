//! The server's life: health, reflection, graceful shutdown, refusing an old schema, and
//! the real `dossier dev` binary started, used and stopped with SIGTERM.

mod dossier_dev;
mod health;
mod reflection;
mod shedding;
mod shutdown;
mod unmigrated_database;

use std::time::Duration;

use tokio::time::timeout;
use tonic_health::pb::health_check_response::ServingStatus;

/// Polls `condition` every 20 ms until it holds; panics with `what` after `limit`.
async fn eventually(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    timeout(limit, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out after {limit:?} waiting until {what}"));
}

/// Reads the Watch stream until it reports `want`; panics after `limit`.
async fn watch_until(
    stream: &mut tonic::Streaming<tonic_health::pb::HealthCheckResponse>,
    want: ServingStatus,
    limit: Duration,
) {
    timeout(limit, async {
        loop {
            let update = stream
                .message()
                .await
                .expect("the Watch stream stays open")
                .expect("the Watch stream does not end");
            if update.status() == want {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("health did not become {want:?} within {limit:?}"));
}
