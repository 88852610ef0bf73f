//! What the protection stack needs from the fleet's shared state, as small traits.
//!
//! The stack keeps nothing that matters in memory: the shared (L2) cache and its fetch
//! leases, the fleet-wide rate limit and the audit trail live in PostgreSQL. This crate
//! names what it asks of them; `dossier-store` implements the traits, so the stack never
//! depends on the store (and tests can give it any implementation). Futures are boxed so
//! the traits can be used as `dyn` values: one dynamic call per database round trip
//! costs nothing next to the round trip.

use std::any::Any;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use tokio::sync::broadcast;
use uuid::Uuid;

use dossier_core::domain::Upstream;

/// A failure of the shared state (the database). The stack logs it and carries on
/// without that layer: a shared-cache miss, this pod's own rate limit.
pub type SharedError = Box<dyn std::error::Error + Send + Sync>;

/// A cached upstream answer. `body` is None for "the upstream knows nothing of it".
#[derive(Debug, Clone, PartialEq)]
pub struct CachedAnswer {
    pub body: Option<serde_json::Value>,
    pub fetched_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub stale_until: DateTime<Utc>,
    /// The body decoded into its Rust type, kept beside it in memory so that a cache
    /// hit does not decode JSON again. Not stored.
    pub decoded: Decoded,
}

/// A lazily filled slot for the decoded answer (any type).
#[derive(Default)]
pub struct Decoded(OnceLock<Arc<dyn Any + Send + Sync>>);

impl Decoded {
    /// The decoded value, decoding with `decode` the first time.
    pub fn get_or_try_init<T: Send + Sync + 'static, E>(
        &self,
        decode: impl FnOnce() -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        if let Some(v) = self.0.get()
            && let Ok(t) = v.clone().downcast::<T>()
        {
            return Ok(t);
        }
        let value = Arc::new(decode()?);
        let _ = self.0.set(value.clone());
        Ok(value)
    }
}

impl std::fmt::Debug for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Decoded(..)"
        } else {
            "Decoded(empty)"
        })
    }
}

impl Clone for Decoded {
    fn clone(&self) -> Self {
        Decoded::default()
    }
}

impl PartialEq for Decoded {
    /// A cache, not data: two answers are equal whatever their slots hold.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Who fetches a question the shared cache cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchLease {
    /// The cache had a fresh answer: nobody needs to fetch.
    NotNeeded,
    /// This pod holds the lease: it fetches, then fills the cache.
    Ours,
    /// The shared answer is fresh but sealed under a key this pod does not hold: fetch,
    /// without a lease (nobody else is fetching it).
    Alone,
    /// Another pod is fetching; its lease lapses at this time (None: not yet visible).
    HeldElsewhere(Option<DateTime<Utc>>),
}

/// The shared (L2) cache of upstream answers, with fleet-wide fetch leases.
pub trait SharedCache: Send + Sync + std::fmt::Debug {
    /// The keyed hash a question is stored under: the question may hold personal data
    /// (an SSN), so only this hash leaves memory.
    fn key_hash(&self, context: &str, question: &[u8]) -> Vec<u8>;

    /// An answer still within its stale grace.
    fn get<'a>(
        &'a self,
        upstream: Upstream,
        kind: &'a str,
        key: &'a [u8],
    ) -> BoxFuture<'a, Result<Option<CachedAnswer>, SharedError>>;

    /// The answer, or the right to fetch it for the fleet, in one round trip: when
    /// there is no fresh answer, takes the question's fetch lease for `lease` unless
    /// another pod holds it.
    fn get_or_lease<'a>(
        &'a self,
        upstream: Upstream,
        kind: &'a str,
        key: &'a [u8],
        holder: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<(Option<CachedAnswer>, FetchLease), SharedError>>;

    /// Extends a fetch lease `holder` still holds to `lease` from now; false when it no
    /// longer holds it (it lapsed and another pod took it, or the answer was filled).
    fn renew_lease<'a>(
        &'a self,
        upstream: Upstream,
        kind: &'a str,
        key: &'a [u8],
        holder: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, SharedError>>;

    /// Gives up a fetch lease without an answer, waking the pods that wait on it.
    fn release_lease<'a>(
        &'a self,
        upstream: Upstream,
        kind: &'a str,
        key: &'a [u8],
        holder: &'a str,
    ) -> BoxFuture<'a, Result<(), SharedError>>;

    /// Stores an answer unless a newer one is there, releases the question's lease and
    /// announces the fill. `seal`: the answer is personal data, stored encrypted.
    fn put<'a>(
        &'a self,
        upstream: Upstream,
        kind: &'a str,
        key: &'a [u8],
        answer: &'a CachedAnswer,
        seal: bool,
    ) -> BoxFuture<'a, Result<(), SharedError>>;
}

/// The shared bucket's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetPermit {
    /// Go after this long (zero: now). The slot is reserved.
    Granted { after: Duration },
    /// Not within the time the caller could wait; a permit would come after this long.
    Refused { retry_after: Duration },
}

/// The fleet-wide rate limit of an upstream, behind each pod's own limiter.
pub trait FleetLimiter: Send + Sync + std::fmt::Debug {
    /// One permit from `upstream`'s shared bucket: `interval` = 1 / rate, `burst`
    /// permits at once, and the caller can wait up to `max_wait` for its slot.
    fn permit<'a>(
        &'a self,
        upstream: Upstream,
        interval: Duration,
        burst: u32,
        max_wait: Duration,
    ) -> BoxFuture<'a, Result<FleetPermit, SharedError>>;
}

/// One real upstream request as it leaves, the audit row written before it is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditStart {
    pub upstream: Upstream,
    pub endpoint: &'static str,
    pub application_id: Option<Uuid>,
    pub cache: &'static str,
    pub cost_cents: i32,
    pub called_at: DateTime<Utc>,
}

/// How an audited request ended.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEnd {
    pub http_status: Option<u16>,
    /// "ok", "not_found", "cancelled" (the caller went away), or the upstream error's kind.
    pub outcome: String,
    pub error: Option<String>,
    pub latency_ms: u32,
}

/// The audit row of a request, once it is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditEntry(pub i64);

/// Where every real upstream request is recorded. Write-ahead: a request leaves only
/// after its row is durable, so a process killed mid-request (SIGKILL, a spot reclaim)
/// still leaves the row, its outcome "in_flight", and the vendor's count of requests
/// matches the trail.
pub trait AuditTrail: Send + Sync + std::fmt::Debug {
    /// Writes the row of a request about to leave; resolves once it is committed.
    fn begin(&self, start: AuditStart) -> BoxFuture<'_, Result<AuditEntry, SharedError>>;
    /// Records how the request ended; waits only when the trail is backed up.
    fn finish(&self, entry: AuditEntry, end: AuditEnd) -> BoxFuture<'_, ()>;
    /// The request's future was dropped before it ended (the caller went away): records
    /// the outcome "cancelled" without waiting, as it is called from a destructor.
    fn abandon(&self, entry: AuditEntry);
}

/// Announcements of answers other pods put in the shared cache (payload: the hex of the
/// key hash), for the pods waiting on their fetch leases.
pub trait CacheFills: Send + Sync + std::fmt::Debug {
    fn subscribe(&self) -> broadcast::Receiver<Arc<str>>;
}

/// The shared state every upstream stack of a process uses.
#[derive(Clone)]
pub struct SharedState {
    pub cache: Arc<dyn SharedCache>,
    pub limiter: Arc<dyn FleetLimiter>,
    pub audit: Arc<dyn AuditTrail>,
    /// None: no fleet-wide coalescing; each pod fetches on its own after a miss.
    pub fills: Option<Arc<dyn CacheFills>>,
}

impl std::fmt::Debug for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedState")
            .field("fleet_coalescing", &self.fills.is_some())
            .finish_non_exhaustive()
    }
}
