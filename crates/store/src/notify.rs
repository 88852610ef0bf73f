//! One LISTEN connection per process, fanned out in memory: report watchers, idle workers
//! and fetches waiting on another pod's cache fill subscribe here instead of each
//! holding a database connection.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{Notify, broadcast};
use uuid::Uuid;

use super::jobs::Lane;
use super::{CACHE_FILL_CHANNEL, JOBS_CHANNEL, REPORT_CHANNEL};

#[derive(Debug, Clone)]
pub struct Notifications {
    reports: broadcast::Sender<Uuid>,
    /// Idle workers of each lane: [`Lane::All`]'s, then [`Lane::Deliveries`]'.
    jobs: [Arc<Notify>; 2],
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
            jobs: [Arc::new(Notify::new()), Arc::new(Notify::new())],
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
    /// The notification does not say which kind of job was queued: one idle worker of
    /// each lane is woken, and a delivery worker woken for an evaluation finds nothing.
    pub fn jobs(&self, lane: Lane) -> Arc<Notify> {
        self.jobs[lane_index(lane)].clone()
    }

    fn wake_one_per_lane(&self) {
        for lane in &self.jobs {
            lane.notify_one();
        }
    }

    fn wake_all(&self) {
        for lane in &self.jobs {
            lane.notify_waiters();
        }
    }
}

const fn lane_index(lane: Lane) -> usize {
    match lane {
        Lane::All => 0,
        Lane::Deliveries => 1,
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
        n.wake_all();
        loop {
            match listener.try_recv().await {
                Ok(Some(msg)) => {
                    if msg.channel() == JOBS_CHANNEL {
                        n.wake_one_per_lane();
                    } else if msg.channel() == CACHE_FILL_CHANNEL {
                        let _ = n.cache_fills.send(Arc::from(msg.payload()));
                    } else if let Ok(id) = msg.payload().parse::<Uuid>() {
                        let _ = n.reports.send(id);
                    }
                }
                Ok(None) => {
                    // Connection lost; PgListener reconnects on the next call.
                    n.wake_all();
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
