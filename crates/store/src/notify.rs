//! One LISTEN connection per process, fanned out in memory: report watchers, idle workers
//! and fetches waiting on another pod's cache fill subscribe here instead of each
//! holding a database connection.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{Notify, broadcast};
use uuid::Uuid;

use super::{CACHE_FILL_CHANNEL, JOBS_CHANNEL, REPORT_CHANNEL};

#[derive(Debug, Clone)]
pub struct Notifications {
    reports: broadcast::Sender<Uuid>,
    jobs: Arc<Notify>,
    cache_fills: broadcast::Sender<Arc<str>>,
}

impl Notifications {
    /// Starts the listener task. It reconnects on its own; while it is disconnected
    /// subscribers fall back on their periodic re-reads, so nothing is missed.
    pub fn start(pool: PgPool) -> Notifications {
        let (reports, _) = broadcast::channel(1024);
        let (cache_fills, _) = broadcast::channel(1024);
        let n = Notifications {
            reports,
            jobs: Arc::new(Notify::new()),
            cache_fills,
        };
        tokio::spawn(listen(pool, n.clone()));
        n
    }

    /// Application ids whose report changed.
    pub fn subscribe_reports(&self) -> broadcast::Receiver<Uuid> {
        self.reports.subscribe()
    }

    /// Keys (hex of the key hash) of answers some pod just put in the shared cache, or
    /// whose fetch lease was given up.
    pub fn subscribe_cache_fills(&self) -> broadcast::Receiver<Arc<str>> {
        self.cache_fills.subscribe()
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
        if let Err(e) = listener
            .listen_all([REPORT_CHANNEL, JOBS_CHANNEL, CACHE_FILL_CHANNEL])
            .await
        {
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
                    } else if msg.channel() == CACHE_FILL_CHANNEL {
                        let _ = n.cache_fills.send(Arc::from(msg.payload()));
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
