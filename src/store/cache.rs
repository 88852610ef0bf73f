//! The L2 cache: upstream answers shared by every pod.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Store, StoreError};

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
pub struct Decoded(std::sync::OnceLock<std::sync::Arc<dyn std::any::Any + Send + Sync>>);

impl Decoded {
    /// The decoded value, decoding with `decode` the first time.
    pub fn get_or_try_init<T: Send + Sync + 'static, E>(
        &self,
        decode: impl FnOnce() -> Result<T, E>,
    ) -> Result<std::sync::Arc<T>, E> {
        if let Some(v) = self.0.get()
            && let Ok(t) = v.clone().downcast::<T>()
        {
            return Ok(t);
        }
        let value = std::sync::Arc::new(decode()?);
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

impl Store {
    pub async fn cache_get(
        &self,
        upstream: &str,
        kind: &str,
        key: &[u8],
    ) -> Result<Option<CachedAnswer>, StoreError> {
        let row = sqlx::query(
            "SELECT body, fetched_at, expires_at, stale_until FROM upstream_cache
             WHERE upstream = $1 AND kind = $2 AND key = $3 AND stale_until > now()",
        )
        .bind(upstream)
        .bind(kind)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(CachedAnswer {
                body: r
                    .try_get::<Option<sqlx::types::Json<serde_json::Value>>, _>("body")?
                    .map(|j| j.0),
                fetched_at: r.try_get("fetched_at")?,
                expires_at: r.try_get("expires_at")?,
                stale_until: r.try_get("stale_until")?,
                decoded: Decoded::default(),
            })
        })
        .transpose()
    }

    /// Stores an answer unless a newer one is already there.
    pub async fn cache_put(
        &self,
        upstream: &str,
        kind: &str,
        key: &[u8],
        a: &CachedAnswer,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO upstream_cache (upstream, kind, key, body, fetched_at, expires_at, stale_until)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (upstream, kind, key) DO UPDATE
             SET body = excluded.body, fetched_at = excluded.fetched_at,
                 expires_at = excluded.expires_at, stale_until = excluded.stale_until
             WHERE upstream_cache.fetched_at < excluded.fetched_at",
        )
        .bind(upstream)
        .bind(kind)
        .bind(key)
        .bind(a.body.as_ref().map(sqlx::types::Json))
        .bind(a.fetched_at)
        .bind(a.expires_at)
        .bind(a.stale_until)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes answers past their stale grace; returns how many.
    pub async fn cache_purge(&self) -> Result<u64, StoreError> {
        Ok(
            sqlx::query("DELETE FROM upstream_cache WHERE stale_until < now()")
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }
}
