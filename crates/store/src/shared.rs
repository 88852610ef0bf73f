//! The store as the upstream stack's shared state: the traits of
//! `dossier_upstream::shared` (and the sanctions list's source) implemented over the
//! queries of `cache.rs`, `limits.rs`, `audit.rs`, `notify.rs` and `sanctions.rs`.

use std::sync::Arc;
use std::time::Duration;

use dossier_sanctions::SdnList;
use dossier_upstream::Upstream;
use dossier_upstream::sanctions::StoredSanctions;
use dossier_upstream::shared::{
    CacheFills, CachedAnswer, FetchLease, FleetLimiter, FleetPermit, SharedCache, SharedError,
    SharedState,
};
use futures::FutureExt as _;
use futures::future::BoxFuture;
use tokio::sync::broadcast;

use crate::audit::AuditSink;
use crate::notify::Notifications;
use crate::{Store, StoreError};

fn shared(e: StoreError) -> SharedError {
    Box::new(e)
}

impl SharedCache for Store {
    fn key_hash(&self, context: &str, question: &[u8]) -> Vec<u8> {
        self.vault.lookup_hash(context, question)
    }

    fn get<'a>(
        &'a self,
        upstream: Upstream,
        kind: &'a str,
        key: &'a [u8],
    ) -> BoxFuture<'a, Result<Option<CachedAnswer>, SharedError>> {
        self.cache_get(upstream.as_str(), kind, key)
            .map(|r| r.map_err(shared))
            .boxed()
    }

    fn get_or_lease<'a>(
        &'a self,
        upstream: Upstream,
        kind: &'a str,
        key: &'a [u8],
        holder: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<(Option<CachedAnswer>, FetchLease), SharedError>> {
        self.cache_get_or_lease(upstream.as_str(), kind, key, holder, lease)
            .map(|r| r.map_err(shared))
            .boxed()
    }

    fn renew_lease<'a>(
        &'a self,
        upstream: Upstream,
        kind: &'a str,
        key: &'a [u8],
        holder: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, SharedError>> {
        self.renew_fetch_lease(upstream.as_str(), kind, key, holder, lease)
            .map(|r| r.map_err(shared))
            .boxed()
    }

    fn release_lease<'a>(
        &'a self,
        upstream: Upstream,
        kind: &'a str,
        key: &'a [u8],
        holder: &'a str,
    ) -> BoxFuture<'a, Result<(), SharedError>> {
        self.release_fetch_lease(upstream.as_str(), kind, key, holder)
            .map(|r| r.map_err(shared))
            .boxed()
    }

    fn put<'a>(
        &'a self,
        upstream: Upstream,
        kind: &'a str,
        key: &'a [u8],
        answer: &'a CachedAnswer,
        seal: bool,
    ) -> BoxFuture<'a, Result<(), SharedError>> {
        self.cache_put(upstream.as_str(), kind, key, answer, seal)
            .map(|r| r.map_err(shared))
            .boxed()
    }
}

impl FleetLimiter for Store {
    fn permit<'a>(
        &'a self,
        upstream: Upstream,
        interval: Duration,
        burst: u32,
        max_wait: Duration,
    ) -> BoxFuture<'a, Result<FleetPermit, SharedError>> {
        self.fleet_permit(upstream.as_str(), interval, burst, max_wait)
            .map(|r| r.map_err(shared))
            .boxed()
    }
}

impl CacheFills for Notifications {
    fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.subscribe_cache_fills()
    }
}

impl StoredSanctions for Store {
    fn active_version(&self) -> BoxFuture<'_, Result<Option<i64>, SharedError>> {
        self.active_sanctions_version()
            .map(|r| r.map_err(shared))
            .boxed()
    }

    fn load_active(&self) -> BoxFuture<'_, Result<Option<SdnList>, SharedError>> {
        self.load_active_sanctions()
            .map(|r| r.map_err(shared))
            .boxed()
    }
}

impl Store {
    /// This store as the upstream stacks' shared state. `fills`: this process's
    /// notifications, for fleet-wide coalescing (None: each pod fetches on its own after
    /// a shared-cache miss).
    pub fn shared_state(&self, audit: AuditSink, fills: Option<Notifications>) -> SharedState {
        SharedState {
            cache: Arc::new(self.clone()),
            limiter: Arc::new(self.clone()),
            audit: Arc::new(audit),
            fills: fills.map(|n| Arc::new(n) as Arc<dyn CacheFills>),
        }
    }
}
