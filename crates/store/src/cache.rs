//! The L2 cache: upstream answers shared by every pod.

use std::time::Duration;

use chrono::{DateTime, Utc};

use dossier_upstream::shared::{CachedAnswer, Decoded, FetchLease};

use super::{Store, StoreError};

/// A row of `upstream_cache`, as [`Store::decode_cached`] reads it.
struct CachedRow {
    body: Option<serde_json::Value>,
    sealed: Option<Vec<u8>>,
    key_id: Option<String>,
    fetched_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    stale_until: DateTime<Utc>,
}

impl Store {
    /// A cached answer still within its stale grace. `sealed` answers (personal data)
    /// are unsealed with the vault.
    pub async fn cache_get(
        &self,
        upstream: &str,
        kind: &str,
        key: &[u8],
    ) -> Result<Option<CachedAnswer>, StoreError> {
        let row = sqlx::query_as!(
            CachedRow,
            "SELECT body, sealed, key_id, fetched_at, expires_at, stale_until FROM upstream_cache
             WHERE upstream = $1 AND kind = $2 AND key = $3 AND stale_until > now()",
            upstream,
            kind,
            key,
        )
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => self.decode_cached(upstream, kind, key, r),
            None => Ok(None),
        }
    }

    /// The shared cache's answer, or the right to fetch it for the fleet: in one round
    /// trip, reads the answer and, when there is no fresh one, takes the question's fetch
    /// lease for `lease` unless another pod holds it. The holder fills the cache with
    /// [`Store::cache_put`] (which releases the lease and announces the fill) or gives up
    /// with [`Store::release_fetch_lease`].
    pub async fn cache_get_or_lease(
        &self,
        upstream: &str,
        kind: &str,
        key: &[u8],
        holder: &str,
        lease: Duration,
    ) -> Result<(Option<CachedAnswer>, FetchLease), StoreError> {
        // The answer's columns come through a LEFT JOIN, so they are nullable ("?"); its
        // three timestamps (NOT NULL in the table) are all NULL when there is no hit, or
        // none is.
        let r = sqlx::query!(
            r#"WITH hit AS (
                 SELECT body, sealed, key_id, fetched_at, expires_at, stale_until FROM upstream_cache
                 WHERE upstream = $1 AND kind = $2 AND key = $3 AND stale_until > now()
             ), lease AS (
                 INSERT INTO upstream_fetch_leases (upstream, kind, key, holder, until)
                 SELECT $1, $2, $3, $4, clock_timestamp() + make_interval(secs => $5)
                 WHERE NOT EXISTS (SELECT 1 FROM hit WHERE expires_at > now())
                 ON CONFLICT (upstream, kind, key) DO UPDATE
                 SET holder = excluded.holder, until = excluded.until, fresh_until = NULL
                 WHERE upstream_fetch_leases.until < clock_timestamp()
                   AND coalesce(upstream_fetch_leases.fresh_until, '-infinity') < clock_timestamp()
                 RETURNING until
             )
             SELECT h.body AS "body?", h.sealed AS "sealed?", h.key_id AS "key_id?",
                    h.fetched_at AS "fetched_at?", h.expires_at AS "expires_at?",
                    h.stale_until AS "stale_until?",
                    EXISTS (SELECT 1 FROM lease) AS "leased!",
                    (SELECT l.until FROM upstream_fetch_leases l
                     WHERE l.upstream = $1 AND l.kind = $2 AND l.key = $3) AS "held_until?"
             FROM (SELECT 1) AS one LEFT JOIN hit h ON true"#,
            upstream,
            kind,
            key,
            holder,
            lease.as_secs_f64(),
        )
        .fetch_one(&self.pool)
        .await?;
        let expires_at = r.expires_at;
        let answer = match (r.fetched_at, r.expires_at, r.stale_until) {
            (Some(fetched_at), Some(expires_at), Some(stale_until)) => self.decode_cached(
                upstream,
                kind,
                key,
                CachedRow {
                    body: r.body,
                    sealed: r.sealed,
                    key_id: r.key_id,
                    fetched_at,
                    expires_at,
                    stale_until,
                },
            )?,
            _ => None,
        };
        let fresh_row = expires_at.is_some_and(|t| t > Utc::now());
        let lease = if r.leased {
            FetchLease::Ours
        } else if fresh_row && answer.is_some() {
            FetchLease::NotNeeded
        } else if fresh_row {
            FetchLease::Alone
        } else {
            // None: another pod's lease committed after this statement's snapshot.
            FetchLease::HeldElsewhere(r.held_until)
        };
        Ok((answer, lease))
    }

    /// Extends a fetch lease that `holder` still holds (not lapsed and taken over, not
    /// filled) to `lease` from now. Returns whether it still held it.
    pub async fn renew_fetch_lease(
        &self,
        upstream: &str,
        kind: &str,
        key: &[u8],
        holder: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let renewed = sqlx::query!(
            "UPDATE upstream_fetch_leases SET until = clock_timestamp() + make_interval(secs => $5)
             WHERE upstream = $1 AND kind = $2 AND key = $3 AND holder = $4 AND fresh_until IS NULL",
            upstream,
            kind,
            key,
            holder,
            lease.as_secs_f64(),
        )
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(renewed == 1)
    }

    /// Gives up a fetch lease without an answer (the fetch failed), waking the pods that
    /// wait on it so one of them can try.
    pub async fn release_fetch_lease(
        &self,
        upstream: &str,
        kind: &str,
        key: &[u8],
        holder: &str,
    ) -> Result<(), StoreError> {
        sqlx::query!(
            "WITH released AS (
                 DELETE FROM upstream_fetch_leases
                 WHERE upstream = $1 AND kind = $2 AND key = $3 AND holder = $4
             )
             SELECT pg_notify($5, $6)",
            upstream,
            kind,
            key,
            holder,
            super::CACHE_FILL_CHANNEL,
            hex::encode(key),
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    fn decode_cached(
        &self,
        upstream: &str,
        kind: &str,
        key: &[u8],
        r: CachedRow,
    ) -> Result<Option<CachedAnswer>, StoreError> {
        let body = match r.sealed {
            Some(bytes) => {
                let plain = self.vault.open(
                    &crate::crypto::Sealed {
                        key_id: r.key_id.unwrap_or_default(),
                        bytes,
                    },
                    &crate::crypto::context::cache(upstream, kind, key),
                );
                match plain.ok().and_then(|p| serde_json::from_slice(&p).ok()) {
                    Some(v) => Some(v),
                    // Sealed under a key this pod does not hold (e.g. a dev run's
                    // throw-away key), or bound to another question (a row copied
                    // under another key, or sealed by a release that bound only the
                    // upstream): a miss, not an error.
                    None => return Ok(None),
                }
            }
            None => r.body,
        };
        Ok(Some(CachedAnswer {
            body,
            fetched_at: r.fetched_at,
            expires_at: r.expires_at,
            stale_until: r.stale_until,
            decoded: Decoded::default(),
        }))
    }

    /// Stores an answer unless a newer one is already there. With `seal`, a found body
    /// is stored encrypted, never as plain jsonb.
    pub async fn cache_put(
        &self,
        upstream: &str,
        kind: &str,
        key: &[u8],
        a: &CachedAnswer,
        seal: bool,
    ) -> Result<(), StoreError> {
        let (body, sealed) = match (&a.body, seal) {
            (Some(b), true) => {
                let text = serde_json::to_vec(b).expect("JSON values serialise");
                (
                    None,
                    Some(
                        self.vault
                            .seal(&text, &crate::crypto::context::cache(upstream, kind, key)),
                    ),
                )
            }
            (b, _) => (b.as_ref().map(sqlx::types::Json), None),
        };
        // One statement: store the answer, release this question's fetch lease, and wake
        // the pods waiting on it (NOTIFY is delivered at commit, with the answer visible).
        sqlx::query!(
            "WITH put AS (
                 INSERT INTO upstream_cache (upstream, kind, key, body, sealed, key_id, fetched_at, expires_at, stale_until)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (upstream, kind, key) DO UPDATE
                 SET body = excluded.body, sealed = excluded.sealed, key_id = excluded.key_id,
                     fetched_at = excluded.fetched_at, expires_at = excluded.expires_at, stale_until = excluded.stale_until
                 WHERE upstream_cache.fetched_at < excluded.fetched_at
             ), released AS (
                 -- Released, and marked filled (see the migration's fresh_until).
                 UPDATE upstream_fetch_leases SET until = now(), fresh_until = $8
                 WHERE upstream = $1 AND kind = $2 AND key = $3
             )
             SELECT pg_notify($10, $11)",
            upstream,
            kind,
            key,
            // `as _`: the macro checks a jsonb parameter against serde_json::Value only.
            body as _,
            sealed.as_ref().map(|s| s.bytes.clone()),
            sealed.as_ref().map(|s| s.key_id.clone()),
            a.fetched_at,
            a.expires_at,
            a.stale_until,
            super::CACHE_FILL_CHANNEL,
            hex::encode(key),
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes answers past their stale grace, and fetch-lease rows that are neither
    /// held nor guarding a fresh answer; returns how many rows went. Every pod runs it
    /// now and then (`server.rs`); running it twice at once is harmless.
    pub async fn cache_purge(&self) -> Result<u64, StoreError> {
        let answers = sqlx::query!("DELETE FROM upstream_cache WHERE stale_until < now()")
            .execute(&self.pool)
            .await?
            .rows_affected();
        let leases = sqlx::query!(
            "DELETE FROM upstream_fetch_leases
             WHERE until < now() AND coalesce(fresh_until, '-infinity') < now()",
        )
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(answers + leases)
    }
}
