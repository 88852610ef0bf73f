//! One LISTEN connection per process, fanned out in memory: report watchers and idle
//! workers subscribe here instead of each holding a database connection.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{Notify, broadcast};
use uuid::Uuid;

use super::{JOBS_CHANNEL, REPORT_CHANNEL};

#[derive(Debug, Clone)]
pub struct Notifications {
    reports: broadcast::Sender<Uuid>,
    jobs: Arc<Notify>,
}

impl Notifications {
    /// Starts the listener task. It reconnects on its own; while it is disconnected
    /// subscribers fall back on their periodic re-reads, so nothing is missed.
    pub fn start(pool: PgPool) -> Notifications {
        let (reports, _) = broadcast::channel(1024);
        let n = Notifications {
            reports,
            jobs: Arc::new(Notify::new()),
        };
        tokio::spawn(listen(pool, n.clone()));
        n
    }

    /// Application ids whose report changed.
    pub fn subscribe_reports(&self) -> broadcast::Receiver<Uuid> {
        self.reports.subscribe()
    }

    /// Resolves when new work may be ready.
    pub fn jobs(&self) -> Arc<Notify> {
        self.jobs.clone()
    }
}

async fn listen(pool: PgPool, n: Notifications) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "LISTEN connection failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                if pool.is_closed() {
                    return;
                }
                continue;
            }
        };
        if let Err(e) = listener.listen_all([REPORT_CHANNEL, JOBS_CHANNEL]).await {
            tracing::debug!(error = %e, "LISTEN failed; retrying");
            tokio::time::sleep(backoff).await;
            continue;
        }
        backoff = Duration::from_millis(200);
        // Wake everyone once after (re)connecting: notifications may have been missed.
        n.jobs.notify_waiters();
        loop {
            match listener.try_recv().await {
                Ok(Some(msg)) => {
                    if msg.channel() == JOBS_CHANNEL {
                        n.jobs.notify_one();
                    } else if let Ok(id) = msg.payload().parse::<Uuid>() {
                        let _ = n.reports.send(id);
                    }
                }
                Ok(None) => {
                    // Connection lost; PgListener reconnects on the next call.
                    n.jobs.notify_waiters();
                }
                Err(e) => {
                    tracing::debug!(error = %e, "LISTEN connection error; reconnecting");
                    if pool.is_closed() {
                        return;
                    }
                    break;
                }
            }
        }
    }
}
