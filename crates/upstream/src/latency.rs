//! How long an upstream takes to answer, estimated from the answers it gave: what a
//! rate-limit permit must leave room for before the caller's deadline.
//!
//! Under overload, callers queue for permits. A permit that comes just before the
//! caller's deadline buys a vendor request (paid, and a unit of quota) whose answer
//! arrives after the caller has gone: quota spent for nobody, taken from a caller who
//! could have been served. So a caller waits for a permit only if the permit leaves
//! time for the request and its answer ([`LatencyEstimate::headroom`]); otherwise it is
//! refused at once, with the delay after which it could be served.
//!
//! The estimate is TCP's retransmission timer (RFC 6298): a smoothed mean plus four
//! mean deviations, so a vendor whose latency varies gets more room than a steady one.

use std::sync::Mutex;
use std::time::Duration;

/// Time Dossier needs after the vendor's answer arrives before the caller has it: the
/// shared-cache fill (one round trip to PostgreSQL) and the reply.
const ANSWER_MARGIN: Duration = Duration::from_millis(10);

#[derive(Debug, Default)]
pub(crate) struct LatencyEstimate {
    /// Smoothed latency and mean deviation, in seconds; None before the first answer.
    state: Mutex<Option<(f64, f64)>>,
}

impl LatencyEstimate {
    /// Records the time one request took to be answered.
    pub(crate) fn record(&self, took: Duration) {
        let sample = took.as_secs_f64();
        let mut state = self.state.lock().expect("latency estimate lock");
        *state = Some(match *state {
            None => (sample, sample / 2.0),
            Some((mean, deviation)) => (
                0.875 * mean + 0.125 * sample,
                0.75 * deviation + 0.25 * (mean - sample).abs(),
            ),
        });
    }

    /// How long before the caller's deadline a request must leave for its answer to
    /// reach the caller in time, at most `cap` (the upstream's timeout: a request takes
    /// no longer). Before the first answer, only the margin: nothing is known yet.
    pub(crate) fn headroom(&self, cap: Duration) -> Duration {
        let state = *self.state.lock().expect("latency estimate lock");
        let expected = state.map_or(0.0, |(mean, deviation)| mean + 4.0 * deviation);
        (Duration::from_secs_f64(expected) + ANSWER_MARGIN).min(cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: Duration = Duration::from_secs(5);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nothing_known_leaves_only_the_margin() {
        assert_eq!(LatencyEstimate::default().headroom(CAP), ANSWER_MARGIN);
    }

    #[test]
    fn a_steady_vendor_gets_about_its_latency() {
        let e = LatencyEstimate::default();
        for _ in 0..50 {
            e.record(ms(50));
        }
        let h = e.headroom(CAP);
        assert!(h >= ms(60) && h <= ms(61), "{h:?}");
    }

    #[test]
    fn a_varying_vendor_gets_more_room_than_its_mean() {
        let e = LatencyEstimate::default();
        for i in 0..50 {
            e.record(if i % 2 == 0 { ms(20) } else { ms(80) });
        }
        assert!(e.headroom(CAP) > ms(150), "{:?}", e.headroom(CAP));
    }

    #[test]
    fn never_more_than_the_cap() {
        let e = LatencyEstimate::default();
        e.record(Duration::from_secs(60));
        assert_eq!(e.headroom(CAP), CAP);
    }
}
