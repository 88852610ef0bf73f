//! Circuit breaker: stop calling an upstream that keeps failing, probe it now and then,
//! and close again when a probe succeeds. Its state is exported as a gauge
//! (0 closed, 1 half-open, 2 open).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::error::UpstreamError;
use super::settings::BreakerPolicy;
use dossier_core::domain::Upstream;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    HalfOpen,
    Open,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    consecutive_failures: u32,
    /// Outcomes in the current window: (when, failed).
    window: VecDeque<(Instant, bool)>,
    open_until: Instant,
    probes_in_flight: u32,
}

#[derive(Debug)]
pub struct Breaker {
    upstream: Upstream,
    policy: BreakerPolicy,
    inner: Mutex<Inner>,
}

/// Permission to make one request; report its outcome with [`Breaker::record`].
#[derive(Debug)]
#[must_use]
pub struct Admitted {
    probe: bool,
}

impl Breaker {
    pub fn new(upstream: Upstream, policy: BreakerPolicy) -> Breaker {
        let b = Breaker {
            upstream,
            policy,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive_failures: 0,
                window: VecDeque::new(),
                open_until: Instant::now(),
                probes_in_flight: 0,
            }),
        };
        b.export(BreakerState::Closed);
        b
    }

    pub fn state(&self) -> BreakerState {
        self.inner.lock().expect("breaker lock").state
    }

    fn export(&self, state: BreakerState) {
        let v = match state {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        };
        metrics::gauge!("dossier_upstream_breaker_state", "upstream" => self.upstream.as_str())
            .set(v);
    }

    pub fn admit(&self) -> Result<Admitted, UpstreamError> {
        let mut g = self.inner.lock().expect("breaker lock");
        let now = Instant::now();
        if g.state == BreakerState::Open {
            if now < g.open_until {
                return Err(UpstreamError::CircuitOpen {
                    upstream: self.upstream,
                    retry_after: g.open_until - now,
                });
            }
            g.state = BreakerState::HalfOpen;
            g.probes_in_flight = 0;
            drop(g);
            self.export(BreakerState::HalfOpen);
            g = self.inner.lock().expect("breaker lock");
        }
        if g.state == BreakerState::HalfOpen {
            if g.probes_in_flight >= self.policy.half_open_probes {
                return Err(UpstreamError::CircuitOpen {
                    upstream: self.upstream,
                    retry_after: Duration::from_millis(100),
                });
            }
            g.probes_in_flight += 1;
            return Ok(Admitted { probe: true });
        }
        Ok(Admitted { probe: false })
    }

    /// Records an outcome. Only failures that say the upstream is unwell count:
    /// a 404 or a malformed answer to one question is not an outage.
    pub fn record(&self, admitted: Admitted, failed: bool) {
        let mut g = self.inner.lock().expect("breaker lock");
        let now = Instant::now();
        let before = g.state;
        if admitted.probe {
            g.probes_in_flight = g.probes_in_flight.saturating_sub(1);
            if failed {
                g.state = BreakerState::Open;
                g.open_until = now + self.policy.open_for;
            } else {
                g.state = BreakerState::Closed;
                g.consecutive_failures = 0;
                g.window.clear();
            }
        } else if g.state == BreakerState::Closed {
            g.window.push_back((now, failed));
            while g
                .window
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > self.policy.window)
            {
                g.window.pop_front();
            }
            g.consecutive_failures = if failed {
                g.consecutive_failures + 1
            } else {
                0
            };
            let total = g.window.len() as u32;
            let failures = g.window.iter().filter(|(_, f)| *f).count() as f64;
            let rate_trips = total >= self.policy.min_requests
                && failures / f64::from(total.max(1)) >= self.policy.error_rate;
            if failed && (g.consecutive_failures >= self.policy.consecutive_failures || rate_trips)
            {
                g.state = BreakerState::Open;
                g.open_until = now + self.policy.open_for;
                tracing::warn!(upstream = %self.upstream, open_for = ?self.policy.open_for, "circuit breaker opened");
            }
        }
        let after = g.state;
        drop(g);
        if before != after {
            if after == BreakerState::Closed {
                tracing::info!(upstream = %self.upstream, "circuit breaker closed");
            }
            self.export(after);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            consecutive_failures: 3,
            error_rate: 1.0,
            min_requests: 100,
            window: Duration::from_secs(60),
            open_for: Duration::ZERO,
            half_open_probes: 1,
        }
    }

    #[test]
    fn opens_after_consecutive_failures_and_closes_after_a_good_probe() {
        let b = Breaker::new(
            Upstream::Registry,
            BreakerPolicy {
                open_for: Duration::from_secs(3600),
                ..policy()
            },
        );
        for _ in 0..3 {
            let a = b.admit().unwrap();
            b.record(a, true);
        }
        assert_eq!(b.state(), BreakerState::Open);
        assert!(matches!(b.admit(), Err(UpstreamError::CircuitOpen { .. })));

        let b = Breaker::new(Upstream::Registry, policy()); // open_for zero: probes at once
        for _ in 0..3 {
            let a = b.admit().unwrap();
            b.record(a, true);
        }
        let probe = b.admit().unwrap();
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.admit().is_err(), "one probe at a time");
        b.record(probe, false);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn a_failed_probe_reopens() {
        let b = Breaker::new(Upstream::Registry, policy());
        for _ in 0..3 {
            let a = b.admit().unwrap();
            b.record(a, true);
        }
        let probe = b.admit().unwrap();
        b.record(probe, true);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn successes_reset_the_count() {
        let b = Breaker::new(Upstream::Registry, policy());
        for failed in [true, true, false, true, true] {
            let a = b.admit().unwrap();
            b.record(a, failed);
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn error_rate_over_the_window_opens() {
        let b = Breaker::new(
            Upstream::Registry,
            BreakerPolicy {
                consecutive_failures: 100,
                error_rate: 0.5,
                min_requests: 4,
                ..policy()
            },
        );
        for failed in [false, true, false, true] {
            let a = b.admit().unwrap();
            b.record(a, failed);
        }
        assert_eq!(b.state(), BreakerState::Open);
    }
}
