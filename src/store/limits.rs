//! The fleet-wide rate limit: GCRA over one row per upstream. A permit advances the
//! row's theoretical arrival time (TAT) by the emission interval, unless that would put
//! it further ahead of now than the burst allows; one statement, one round trip, row
//! lock held only for it.

use std::time::Duration;

use super::{Store, StoreError};

impl Store {
    /// Takes one permit from `key`'s shared bucket: `interval` = 1 / rate, `burst`
    /// permits may be taken at once. `Ok(None)` when granted; `Ok(Some(wait))` when not,
    /// with how long until one would be.
    pub async fn fleet_permit(
        &self,
        key: &str,
        interval: Duration,
        burst: u32,
    ) -> Result<Option<Duration>, StoreError> {
        let interval_s = interval.as_secs_f64();
        // The TAT may run at most (burst - 1) intervals ahead of now.
        let window_s = interval_s * f64::from(burst.max(1) - 1);
        for _ in 0..2 {
            let row: Option<(bool, f64)> = sqlx::query_as(
                "WITH cur AS (
                     SELECT greatest(tat, now()) + make_interval(secs => $2) AS candidate
                     FROM rate_limits WHERE key = $1 FOR UPDATE
                 ), granted AS (
                     UPDATE rate_limits SET tat = cur.candidate FROM cur
                     WHERE key = $1 AND cur.candidate <= now() + make_interval(secs => $2 + $3)
                     RETURNING 1
                 )
                 SELECT EXISTS (SELECT 1 FROM granted),
                        extract(epoch FROM candidate - now())::float8 - $2 - $3
                 FROM cur",
            )
            .bind(key)
            .bind(interval_s)
            .bind(window_s)
            .fetch_optional(&self.pool)
            .await?;
            match row {
                Some((true, _)) => return Ok(None),
                Some((false, wait_s)) => {
                    return Ok(Some(Duration::from_secs_f64(wait_s.max(0.001))));
                }
                None => {
                    // First use of this key anywhere: create it, then ask again.
                    sqlx::query("INSERT INTO rate_limits (key, tat) VALUES ($1, now()) ON CONFLICT (key) DO NOTHING")
                        .bind(key)
                        .execute(&self.pool)
                        .await?;
                }
            }
        }
        Err(StoreError::Corrupt(format!(
            "rate limit row {key:?} vanished"
        )))
    }
}
