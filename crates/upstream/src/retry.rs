//! When and how long to wait before trying again: exponential back-off with full
//! jitter, at least the upstream's Retry-After, never past the deadline.
//! (reqwest-retry does not honour Retry-After, hence our own.)

use std::time::{Duration, Instant};

use rand::Rng;

use super::error::UpstreamError;
use super::settings::RetryPolicy;

/// The wait before retry number `attempt` (1 = first retry), or None to give up.
pub fn next_delay(
    policy: &RetryPolicy,
    attempt: u32,
    error: &UpstreamError,
    deadline: Instant,
) -> Option<Duration> {
    if attempt >= policy.max_attempts || !error.is_retryable() {
        return None;
    }
    let cap = policy
        .base_backoff
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
        .min(policy.max_backoff);
    let jitter = Duration::from_secs_f64(rand::thread_rng().gen_range(0.0..=cap.as_secs_f64()));
    // The upstream's own Retry-After (a 429, or a 503 that sent one); the breaker's
    // is not a reason to wait here, it refuses without asking.
    let floor = match error {
        UpstreamError::RateLimited {
            retry_after: Some(after),
            ..
        }
        | UpstreamError::Status {
            retry_after: Some(after),
            ..
        } => *after,
        _ => Duration::ZERO,
    };
    let wait = jitter.max(floor);
    // Waiting past the deadline helps no one.
    (Instant::now() + wait < deadline).then_some(wait)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dossier_core::domain::Upstream;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        }
    }

    fn status(code: u16) -> UpstreamError {
        UpstreamError::Status {
            upstream: Upstream::Registry,
            status: code,
            retry_after: None,
            snippet: String::new(),
        }
    }

    #[test]
    fn retries_only_retryable_failures_up_to_max_attempts() {
        let far = Instant::now() + Duration::from_secs(60);
        assert!(next_delay(&policy(), 1, &status(503), far).is_some());
        assert!(next_delay(&policy(), 2, &status(503), far).is_some());
        assert!(
            next_delay(&policy(), 3, &status(503), far).is_none(),
            "three tries in all"
        );
        assert!(
            next_delay(&policy(), 1, &status(400), far).is_none(),
            "a 4xx is final"
        );
        let malformed = UpstreamError::Malformed {
            upstream: Upstream::Registry,
            detail: String::new(),
        };
        assert!(next_delay(&policy(), 1, &malformed, far).is_none());
    }

    #[test]
    fn jitter_stays_under_the_exponential_cap() {
        let far = Instant::now() + Duration::from_secs(60);
        for _ in 0..100 {
            assert!(
                next_delay(&policy(), 1, &status(503), far).unwrap() <= Duration::from_millis(100)
            );
            assert!(
                next_delay(&policy(), 2, &status(503), far).unwrap() <= Duration::from_millis(200)
            );
        }
    }

    #[test]
    fn retry_after_is_honoured_and_the_deadline_stops_retries() {
        let limited = UpstreamError::RateLimited {
            upstream: Upstream::Registry,
            retry_after: Some(Duration::from_secs(2)),
        };
        let far = Instant::now() + Duration::from_secs(60);
        assert!(next_delay(&policy(), 1, &limited, far).unwrap() >= Duration::from_secs(2));
        let near = Instant::now() + Duration::from_secs(1);
        assert!(next_delay(&policy(), 1, &limited, near).is_none());
    }

    #[test]
    fn a_503_with_retry_after_waits_at_least_that_long() {
        let busy = UpstreamError::Status {
            upstream: Upstream::Registry,
            status: 503,
            retry_after: Some(Duration::from_secs(3)),
            snippet: String::new(),
        };
        let far = Instant::now() + Duration::from_secs(60);
        assert!(next_delay(&policy(), 1, &busy, far).unwrap() >= Duration::from_secs(3));
        let near = Instant::now() + Duration::from_secs(2);
        assert!(
            next_delay(&policy(), 1, &busy, near).is_none(),
            "a wait past the deadline is no retry"
        );
    }
}
