//! Fleet-wide coalescing: which pod fetches a question the shared (L2) cache cannot
//! answer.
//!
//! Coalescing within a pod (coalesce.rs) cannot stop several pods that miss L2 for the
//! same question at the same moment from each asking the vendor: one paid request, and
//! one unit of quota, per pod. So the L2 read also settles who fetches. The question's
//! fetch lease (taken in the same round trip as the read) makes one pod the fetcher; the
//! others wait for its fill, woken by the fill's NOTIFY, and look at the cache again
//! every 250 ms at the latest (a notification lost while LISTEN reconnects) or when the
//! lease lapses (the fetcher died), then take the lease themselves. A waiter whose fetch
//! deadline passes first gives up, with a stale answer if one is within its grace.
//!
//! The lease is short ([`FETCH_LEASE`]) and its holder renews it while it fetches: a
//! fetch may wait long for a rate-limit permit, but a pod that dies (SIGKILL, a lost
//! node) stops renewing, and the others take over within one lease, not at the end of
//! the dead pod's callers' deadlines.
//!
//! Without the database, the pod fetches on its own: the shared cache is an
//! optimisation, never the truth.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::shared::{CacheFills, CachedAnswer, FetchLease, SharedCache, SharedState};
use dossier_core::domain::{CacheOutcome, Upstream};

/// How long a fetch lease lasts without renewal: how long waiting pods may wait on a
/// fetcher that died. Its holder renews it every third of it while fetching.
pub const FETCH_LEASE: Duration = Duration::from_secs(3);

/// What the shared cache said about a question.
pub(crate) enum Shared {
    /// A fresh answer: from the cache (L2Hit) or filled by another pod's fetch while this
    /// one waited (Coalesced).
    Fresh(CachedAnswer, CacheOutcome),
    /// This pod fetches; `lease` when it holds the fleet's fetch lease (to release on
    /// failure). `stale` is an expired answer within its grace, for stale-if-error.
    Fetch {
        stale: Option<CachedAnswer>,
        lease: bool,
    },
    /// Another pod's fetch did not finish within this fetch's deadline.
    TimedOut { stale: Option<CachedAnswer> },
}

/// One upstream's side of the fleet's fetch leases.
pub(crate) struct FleetFetch {
    upstream: Upstream,
    shared: Arc<dyn SharedCache>,
    /// Cache fills announced by other pods; None: no fleet-wide coalescing.
    fills: Option<Arc<dyn CacheFills>>,
    /// This pod's name on the fetch leases it takes.
    holder: String,
}

impl FleetFetch {
    pub(crate) fn new(upstream: Upstream, shared: &SharedState) -> FleetFetch {
        FleetFetch {
            upstream,
            shared: shared.cache.clone(),
            fills: shared.fills.clone(),
            holder: format!("{}/{}", std::process::id(), uuid::Uuid::new_v4().simple()),
        }
    }

    /// Asks the shared cache, and when it has no fresh answer settles which pod fetches:
    /// this one (it took the fetch lease) or another, whose fill this one waits for until
    /// the lease lapses or the fetch's `deadline` passes. Without the database, this pod
    /// fetches on its own: the shared cache is an optimisation.
    pub(crate) async fn shared_answer(
        &self,
        kind: &str,
        key_hash: &[u8],
        deadline: Instant,
    ) -> Shared {
        // Subscribed before asking, so a fill that commits after the question is seen.
        let mut fills = self.fills.as_ref().map(|f| f.subscribe());
        let wanted = hex::encode(key_hash);
        let mut stale = None;
        let mut waited = false;
        loop {
            let lease_for = FETCH_LEASE;
            let asked = match &fills {
                Some(_) => {
                    self.shared
                        .get_or_lease(self.upstream, kind, key_hash, &self.holder, lease_for)
                        .await
                }
                None => self
                    .shared
                    .get(self.upstream, kind, key_hash)
                    .await
                    .map(|a| {
                        let fresh = a.as_ref().is_some_and(|a| a.expires_at > Utc::now());
                        (
                            a,
                            if fresh {
                                FetchLease::NotNeeded
                            } else {
                                FetchLease::Ours
                            },
                        )
                    }),
            };
            let (answer, lease) = match asked {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(upstream = %self.upstream, error = %e, "L2 cache read failed");
                    return Shared::Fetch {
                        stale,
                        lease: false,
                    };
                }
            };
            match (answer, lease) {
                (Some(a), FetchLease::NotNeeded) => {
                    // Found after waiting: another pod's fetch answered for this one.
                    let outcome = if waited {
                        CacheOutcome::Coalesced
                    } else {
                        CacheOutcome::L2Hit
                    };
                    return Shared::Fresh(a, outcome);
                }
                (old, FetchLease::Ours | FetchLease::Alone) => {
                    return Shared::Fetch {
                        stale: old.or(stale),
                        // Only a lease taken in the shared table is released on failure.
                        lease: lease == FetchLease::Ours && fills.is_some(),
                    };
                }
                (old, FetchLease::NotNeeded | FetchLease::HeldElsewhere(_)) => {
                    stale = old.or(stale);
                    let until = match lease {
                        FetchLease::HeldElsewhere(Some(t)) => t,
                        _ => Utc::now(),
                    };
                    // Look again at the fill, when the lease lapses, or at the latest
                    // every 250 ms (a notification lost while LISTEN reconnects).
                    let lapse = (until - Utc::now()).to_std().unwrap_or_default();
                    let look_again = Instant::now()
                        + lapse.clamp(Duration::from_millis(20), Duration::from_millis(250));
                    if Instant::now() >= deadline {
                        return Shared::TimedOut { stale };
                    }
                    let wait_until = look_again.min(deadline);
                    if !waited {
                        metrics::counter!("dossier_upstream_requests_total", "upstream" => self.upstream.as_str(), "outcome" => "fleet_wait").increment(1);
                    }
                    waited = true;
                    if let Some(rx) = fills.as_mut() {
                        wait_for_fill(rx, &wanted, wait_until).await;
                    }
                }
            }
        }
    }

    /// Runs `fetch` while renewing the fetch lease this pod took for the question (when
    /// `leased`), so that the lease outlives a slow fetch but not a dead pod.
    pub(crate) async fn holding<T>(
        &self,
        kind: &str,
        key_hash: &[u8],
        leased: bool,
        fetch: impl std::future::Future<Output = T>,
    ) -> T {
        if !leased {
            return fetch.await;
        }
        let renew = async {
            let mut tick = tokio::time::interval(FETCH_LEASE / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                match self
                    .shared
                    .renew_lease(self.upstream, kind, key_hash, &self.holder, FETCH_LEASE)
                    .await
                {
                    Ok(true) => {}
                    // Lapsed and taken by another pod: it fetches too; nothing to renew.
                    Ok(false) => break,
                    Err(e) => {
                        tracing::warn!(upstream = %self.upstream, error = %e, "could not renew a fetch lease; another pod may fetch the same question");
                    }
                }
            }
            std::future::pending::<()>().await;
        };
        tokio::select! {
            out = fetch => out,
            () = renew => unreachable!("renewal never ends"),
        }
    }

    /// Gives up the fetch lease this pod took for a question whose fetch failed, so the
    /// pods waiting on it look again at once instead of when it lapses.
    pub(crate) async fn release_lease(&self, kind: &str, key_hash: &[u8]) {
        if let Err(e) = self
            .shared
            .release_lease(self.upstream, kind, key_hash, &self.holder)
            .await
        {
            tracing::warn!(upstream = %self.upstream, error = %e, "could not release a fetch lease; it lapses on its own");
        }
    }
}

/// Waits until `key` is announced as filled, or `until`.
async fn wait_for_fill(
    rx: &mut tokio::sync::broadcast::Receiver<Arc<str>>,
    key: &str,
    until: Instant,
) {
    let _ = tokio::time::timeout_at(until.into(), async {
        loop {
            match rx.recv().await {
                Ok(filled) if &*filled == key => return,
                Ok(_) => {}
                // Missed some: look at the cache again now.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    std::future::pending::<()>().await
                }
            }
        }
    })
    .await;
}
