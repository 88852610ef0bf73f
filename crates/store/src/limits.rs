//! The fleet-wide rate limit: GCRA over one row per upstream. A permit advances the
//! row's theoretical arrival time (TAT) by the emission interval, unless that would put
//! it further ahead of now than the burst allows plus what the caller can wait; one
//! statement, one round trip, row lock held only for it.
//!
//! A permit granted for later is a reservation: the caller sleeps until its slot and
//! goes, without asking again. Asking again after a sleep would let newcomers take the
//! slot first, and under overload the waiters would starve past their deadlines.

use std::time::Duration;

use dossier_upstream::shared::FleetPermit;

use super::{Store, StoreError};

impl Store {
    /// Takes one permit from `key`'s shared bucket: `interval` = 1 / rate, `burst`
    /// permits may be taken at once, and the caller can wait up to `max_wait` for one.
    pub async fn fleet_permit(
        &self,
        key: &str,
        interval: Duration,
        burst: u32,
        max_wait: Duration,
    ) -> Result<FleetPermit, StoreError> {
        let interval_s = interval.as_secs_f64();
        // The TAT may run at most (burst - 1) intervals ahead of now, plus the wait.
        let window_s = interval_s * f64::from(burst.max(1) - 1);
        let wait_s = max_wait.as_secs_f64();
        for _ in 0..2 {
            let row = sqlx::query!(
                r#"WITH cur AS (
                     SELECT greatest(tat, now()) + make_interval(secs => $2) AS candidate
                     FROM rate_limits WHERE key = $1 FOR UPDATE
                 ), granted AS (
                     UPDATE rate_limits SET tat = cur.candidate FROM cur
                     WHERE key = $1 AND cur.candidate <= now() + make_interval(secs => $2 + $3 + $4)
                     RETURNING 1
                 )
                 SELECT EXISTS (SELECT 1 FROM granted) AS "granted!",
                        extract(epoch FROM candidate - now())::float8 - $2 - $3 AS "after_s!"
                 FROM cur"#,
                key,
                interval_s,
                window_s,
                wait_s,
            )
            .fetch_optional(&self.pool)
            .await?
            .map(|r| (r.granted, r.after_s));
            match row {
                Some((true, after_s)) => {
                    return Ok(FleetPermit::Granted {
                        after: Duration::from_secs_f64(after_s.max(0.0)),
                    });
                }
                Some((false, after_s)) => {
                    return Ok(FleetPermit::Refused {
                        retry_after: Duration::from_secs_f64(after_s.max(0.001)),
                    });
                }
                None => {
                    // First use of this key anywhere: create it, then ask again.
                    sqlx::query!(
                        "INSERT INTO rate_limits (key, tat) VALUES ($1, now()) ON CONFLICT (key) DO NOTHING",
                        key,
                    )
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
