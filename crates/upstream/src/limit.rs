//! The local rate limit (governor, GCRA) and concurrency cap in front of an upstream.
//! Callers wait for a permit only while it still leaves room for the request and its
//! answer before their deadline (latency.rs); one that cannot get a permit in time is
//! refused at once with the delay after which it could, and the upstream never sees it.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::UpstreamError;
use dossier_core::domain::Upstream;

#[derive(Debug)]
pub struct Limiter {
    upstream: Upstream,
    rate: DefaultDirectRateLimiter,
    concurrency: Arc<Semaphore>,
}

impl Limiter {
    pub fn new(
        upstream: Upstream,
        rate_per_second: f64,
        burst: u32,
        concurrency: usize,
    ) -> Limiter {
        let period = Duration::from_secs_f64(1.0 / rate_per_second);
        let quota = Quota::with_period(period)
            .expect("validated: rate is positive")
            .allow_burst(NonZeroU32::new(burst.max(1)).expect("at least 1"));
        Limiter {
            upstream,
            rate: RateLimiter::direct(quota),
            concurrency: Arc::new(Semaphore::new(concurrency)),
        }
    }

    /// Takes a rate permit now, or waits for one if it comes at least `headroom` before
    /// `deadline`.
    pub async fn rate_permit(
        &self,
        deadline: Instant,
        headroom: Duration,
    ) -> Result<(), UpstreamError> {
        let clock = DefaultClock::default();
        let started = Instant::now();
        loop {
            match self.rate.check() {
                Ok(()) => {
                    metrics::histogram!("dossier_upstream_rate_limit_wait_seconds", "upstream" => self.upstream.as_str(), "limiter" => "pod").record(started.elapsed().as_secs_f64());
                    return Ok(());
                }
                Err(not_until) => {
                    let wait = not_until.wait_time_from(clock.now());
                    if Instant::now() + wait + headroom > deadline {
                        metrics::counter!("dossier_upstream_requests_total", "upstream" => self.upstream.as_str(), "outcome" => "rate_limited").increment(1);
                        return Err(UpstreamError::RateLimited {
                            upstream: self.upstream,
                            retry_after: Some(wait.max(Duration::from_millis(1))),
                        });
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Waits for a concurrency slot until `deadline`.
    pub async fn slot(&self, deadline: Instant) -> Result<OwnedSemaphorePermit, UpstreamError> {
        match tokio::time::timeout_at(deadline.into(), self.concurrency.clone().acquire_owned())
            .await
        {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(UpstreamError::DeadlineExceeded {
                upstream: self.upstream,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_with_a_retry_delay_when_the_deadline_is_too_close() {
        let l = Limiter::new(Upstream::Registry, 1.0, 2, 1);
        let deadline = Instant::now() + Duration::from_millis(50);
        l.rate_permit(deadline, Duration::ZERO).await.unwrap();
        l.rate_permit(deadline, Duration::ZERO).await.unwrap();
        match l.rate_permit(deadline, Duration::ZERO).await {
            Err(UpstreamError::RateLimited {
                retry_after: Some(d),
                ..
            }) => assert!(d > Duration::ZERO),
            other => panic!("expected RateLimited, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn waits_only_for_a_permit_that_leaves_room_for_the_answer() {
        // 10/s: the second permit comes 100 ms after the first.
        let l = Limiter::new(Upstream::Registry, 10.0, 1, 1);
        let deadline = Instant::now() + Duration::from_secs(1);
        l.rate_permit(deadline, Duration::from_secs(5))
            .await
            .expect("a permit free now is taken whatever the headroom");
        // The next permit, in 100 ms, would leave 900 ms: not enough for a 950 ms answer.
        assert!(matches!(
            l.rate_permit(deadline, Duration::from_millis(950)).await,
            Err(UpstreamError::RateLimited { .. })
        ));
        // Enough for a 500 ms answer: waits for it.
        l.rate_permit(deadline, Duration::from_millis(500))
            .await
            .expect("the permit leaves room for the answer");
    }
}
