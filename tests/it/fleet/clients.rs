//! The fleet tests' clients: a channel per replica, gRPC's retry policy (gRFC A6),
//! the tally of every attempt, and the steady load the tests put the fleet under.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dossier_devkit::harness::eventually;
use dossier_service::proto;
use dossier_service::proto::data_service_client::DataServiceClient;
use dossier_service::proto::underwriting_service_client::UnderwritingServiceClient;
use rand::Rng;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use uuid::Uuid;

use super::CALL_DEADLINE;

/// One lazily connected channel per replica, picked round robin by the caller, rather
/// than one `Channel::balance_list` over all of them. The balanced channel picks by
/// power of two choices on in-flight load and keeps an endpoint whose connection was
/// refused in its set (tonic's lazy reconnect reports the refusal from the call, not
/// from readiness), so a stopped replica answers every call at once and looks like the
/// least loaded one; and a retry through it cannot be sent to *another* replica. With a
/// channel per replica the test knows which replica answered every attempt, and a
/// retry goes to the next replica, as a gRPC client's round_robin policy does when a
/// subchannel fails.
#[derive(Clone)]
pub(crate) struct Replicas {
    channels: Arc<Vec<Channel>>,
}

impl Replicas {
    pub(crate) fn new(endpoints: &[String]) -> Replicas {
        let channels = endpoints
            .iter()
            .map(|e| {
                Endpoint::from_shared(e.clone())
                    .expect("endpoint URL")
                    .connect_timeout(Duration::from_secs(1))
                    .tcp_nodelay(true)
                    .connect_lazy()
            })
            .collect();
        Replicas {
            channels: Arc::new(channels),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.channels.len()
    }

    pub(crate) fn channel(&self, i: usize) -> Channel {
        self.channels[i].clone()
    }
}

/// gRPC's retry policy (gRFC A6): which codes to retry, how many attempts, and the
/// exponential backoff between them (the delay before retry n is uniformly random in
/// [0, min(initial * multiplier^(n-1), max))).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    multiplier: u32,
}

/// `retryableStatusCodes: [UNAVAILABLE], maxAttempts: 5, initialBackoff: 0.1s,
/// maxBackoff: 1s, backoffMultiplier: 2`: what a well-behaved client is configured with.
pub(crate) const STANDARD_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 5,
    initial_backoff: Duration::from_millis(100),
    max_backoff: Duration::from_secs(1),
    multiplier: 2,
};

/// One attempt per call: every failure is the caller's to see.
pub(crate) const NO_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 1,
    ..STANDARD_RETRY
};

/// A failed attempt (or call), with where and how it failed.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    replica: usize,
    method: &'static str,
    pub(crate) code: Code,
    pub(crate) message: String,
    /// How long the attempt took (for the failure report only).
    pub(crate) took: Duration,
}

/// What a load has seen: answered attempts per replica, every failed attempt, every
/// call that failed after its retries, and the applications accepted.
pub(crate) struct Tally {
    ok_by_replica: Vec<AtomicU64>,
    failed_attempts: Mutex<Vec<Failure>>,
    failed_calls: Mutex<Vec<Failure>>,
    accepted: Mutex<Vec<Uuid>>,
}

impl Tally {
    pub(crate) fn new(replicas: usize) -> Tally {
        Tally {
            ok_by_replica: (0..replicas).map(|_| AtomicU64::new(0)).collect(),
            failed_attempts: Mutex::default(),
            failed_calls: Mutex::default(),
            accepted: Mutex::default(),
        }
    }

    fn ok(&self) -> u64 {
        self.ok_by_replica
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    fn ok_at(&self, replica: usize) -> u64 {
        self.ok_by_replica[replica].load(Ordering::Relaxed)
    }

    pub(crate) fn accepted(&self) -> Vec<Uuid> {
        self.accepted.lock().unwrap().clone()
    }

    pub(crate) fn failed_attempts(&self) -> Vec<Failure> {
        self.failed_attempts.lock().unwrap().clone()
    }

    pub(crate) fn failed_calls(&self) -> Vec<Failure> {
        self.failed_calls.lock().unwrap().clone()
    }

    /// Failed attempts grouped by (method, code, message), with the replicas they were
    /// sent to and the longest one, for reports.
    pub(crate) fn summary(&self) -> String {
        type Group = (usize, std::collections::BTreeSet<usize>, Duration);
        let mut groups = std::collections::BTreeMap::<(&str, String, String), Group>::new();
        for f in self.failed_attempts() {
            let g = groups
                .entry((f.method, format!("{:?}", f.code), f.message.clone()))
                .or_default();
            g.0 += 1;
            g.1.insert(f.replica);
            g.2 = g.2.max(f.took);
        }
        let mut s = format!(
            "{} answered attempts, {} failed attempts, {} failed calls",
            self.ok(),
            self.failed_attempts.lock().unwrap().len(),
            self.failed_calls.lock().unwrap().len()
        );
        for ((method, code, message), (n, replicas, longest)) in groups {
            s.push_str(&format!(
                "\n  {n:>5} x {method} {code} (replicas {replicas:?}, longest {longest:?}): {message}"
            ));
        }
        s
    }
}

/// Makes one call under `policy`: the first attempt goes to replica `first`, and after
/// an UNAVAILABLE, once the backoff has passed, the next attempt goes to the replica
/// after it. Every attempt is tallied.
pub(crate) async fn call_from<T, F, Fut>(
    first: usize,
    replicas: &Replicas,
    tally: &Tally,
    policy: RetryPolicy,
    method: &'static str,
    mut attempt: F,
) -> Result<T, Status>
where
    F: FnMut(Channel) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    let mut replica = first;
    let mut backoff = policy.initial_backoff;
    let mut n = 1;
    loop {
        let started = Instant::now();
        match attempt(replicas.channel(replica)).await {
            Ok(response) => {
                tally.ok_by_replica[replica].fetch_add(1, Ordering::Relaxed);
                return Ok(response.into_inner());
            }
            Err(status) => {
                let status = as_grpc_reports_it(status);
                let failure = Failure {
                    replica,
                    method,
                    code: status.code(),
                    message: status.message().to_owned(),
                    took: started.elapsed(),
                };
                tally.failed_attempts.lock().unwrap().push(failure.clone());
                if status.code() != Code::Unavailable || n >= policy.max_attempts {
                    tally.failed_calls.lock().unwrap().push(failure);
                    return Err(status);
                }
                let pause = rand::thread_rng().gen_range(Duration::ZERO..backoff);
                tokio::time::sleep(pause).await;
                backoff = (backoff * policy.multiplier).min(policy.max_backoff);
                replica = (replica + 1) % replicas.len();
                n += 1;
            }
        }
    }
}

/// tonic 0.14 (over hyper 1) reports a request that never left the client, because the
/// HTTP/2 connection it was queued on closed after the server's GOAWAY, as CANCELLED
/// "operation was canceled", its source `hyper::Error(Canceled, "connection closed")`
/// or `(Canceled, "connection was not ready")` (seen and worked around by others, e.g.
/// s2-streamstore/s2-sdk-rust#149). gRPC's own clients (grpc-core, grpc-java, grpc-go,
/// which the lender's Ruby and Scala services use) report an RPC that never left the
/// client as UNAVAILABLE and retry it transparently (gRFC A6). This translates exactly
/// that case, identified by its source, to UNAVAILABLE, so the test judges the server
/// and not tonic's mapping; any other CANCELLED (our own deadline is one:
/// "Timeout expired") stays CANCELLED and fails the test.
///
/// The same holds for a stream the server's GOAWAY (NO_ERROR) left unprocessed, its id
/// above the GOAWAY's last stream id: tonic maps that h2 error to INTERNAL ("h2
/// protocol error: http2 error"), gRPC's clients to UNAVAILABLE, retried transparently
/// because the server never saw it. Only a GOAWAY with NO_ERROR is translated; any other
/// h2 error stays INTERNAL and fails the test.
fn as_grpc_reports_it(status: Status) -> Status {
    let wanted: &[&str] = match status.code() {
        Code::Cancelled => &["hyper::Error(Canceled"],
        Code::Internal => &["GoAway(", "NO_ERROR"],
        _ => return status,
    };
    let mut source = std::error::Error::source(&status);
    while let Some(e) = source {
        let debug = format!("{e:?}");
        if wanted.iter().all(|w| debug.contains(w)) {
            return Status::unavailable(format!(
                "never sent: its connection closed after GOAWAY (tonic says {:?}: {}; {e:?})",
                status.code(),
                status.message()
            ));
        }
        source = e.source();
    }
    status
}

pub(crate) fn with_deadline<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_DEADLINE);
    request
}

/// SubmitApplication of the Rails application `rails_id`, with the id as the
/// idempotency key (so a retried call is a replay, not a second application).
pub(crate) fn submission(rails_id: &str) -> tonic::Request<proto::SubmitApplicationRequest> {
    with_deadline(proto::SubmitApplicationRequest {
        idempotency_key: rails_id.to_owned(),
        source: Some(
            proto::submit_application_request::Source::RailsApplicationId(rails_id.to_owned()),
        ),
    })
}

/// Submits the Rails application `rails_id`, first to replica `first`.
async fn submit(
    replicas: &Replicas,
    first: usize,
    tally: &Tally,
    policy: RetryPolicy,
    rails_id: &str,
) -> Result<Uuid, Status> {
    let response = call_from(
        first,
        replicas,
        tally,
        policy,
        "SubmitApplication",
        |channel| async {
            UnderwritingServiceClient::new(channel)
                .submit_application(submission(rails_id))
                .await
        },
    )
    .await?;
    let id: Uuid = response.application_id.parse().expect("application id");
    tally.accepted.lock().unwrap().push(id);
    Ok(id)
}

fn property_address() -> proto::Address {
    dossier_devkit::harness::example_application("approve")
        .property
        .and_then(|p| p.address)
        .expect("the approve example has an address")
}

/// Steady load until stopped: each task alternates SubmitApplication (a new Rails
/// application each time: a write, a job) and GetPropertyProfile (an upstream look-up
/// through the caches), back to back, or one call per `pace` ([`Load::paced`]).
pub(crate) struct Load {
    stop: CancellationToken,
    tasks: tokio::task::JoinSet<()>,
    pub(crate) tally: Arc<Tally>,
}

impl Load {
    pub(crate) fn start(
        replicas: &Replicas,
        tasks: usize,
        policy: RetryPolicy,
        prefix: &str,
    ) -> Load {
        Load::paced(replicas, tasks, policy, prefix, Duration::ZERO)
    }

    /// As [`Load::start`], each task starting a call at most once per `pace`. Back to
    /// back, the accepted work grows with how fast refusals come back (a replica that
    /// refuses at once frees its callers at once), and a test that must then see all of
    /// it decided would measure the machine's speed instead of the fleet's invariants.
    pub(crate) fn paced(
        replicas: &Replicas,
        tasks: usize,
        policy: RetryPolicy,
        prefix: &str,
        pace: Duration,
    ) -> Load {
        let stop = CancellationToken::new();
        let tally = Arc::new(Tally::new(replicas.len()));
        let counter = Arc::new(AtomicU64::new(0));
        let address = property_address();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..tasks {
            let (stop, tally, counter, replicas, address) = (
                stop.clone(),
                tally.clone(),
                counter.clone(),
                replicas.clone(),
                address.clone(),
            );
            let prefix = prefix.to_owned();
            set.spawn(async move {
                let mut ticks = (!pace.is_zero()).then(|| {
                    let mut t = tokio::time::interval(pace);
                    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    t
                });
                while !stop.is_cancelled() {
                    if let Some(ticks) = &mut ticks {
                        ticks.tick().await;
                    }
                    // Pairs of calls (one of each kind) go to the replicas in turn.
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let first = usize::try_from(n / 2).unwrap() % replicas.len();
                    if n % 2 == 0 {
                        let id = format!("{prefix}-{n}");
                        let _ = submit(&replicas, first, &tally, policy, &id).await;
                    } else {
                        let _ = call_from(
                            first,
                            &replicas,
                            &tally,
                            policy,
                            "GetPropertyProfile",
                            |channel| {
                                let address = address.clone();
                                async move {
                                    DataServiceClient::new(channel)
                                        .get_property_profile(with_deadline(
                                            proto::GetPropertyProfileRequest {
                                                address: Some(address),
                                                ..Default::default()
                                            },
                                        ))
                                        .await
                                }
                            },
                        )
                        .await;
                    }
                }
            });
        }
        Load {
            stop,
            tasks: set,
            tally,
        }
    }

    /// Waits until `more` further attempts have been answered (by any replica, or by
    /// replica `only`).
    pub(crate) async fn until_answered(&self, more: u64, only: Option<usize>, what: &str) {
        let count = |t: &Tally| match only {
            Some(i) => t.ok_at(i),
            None => t.ok(),
        };
        let target = count(&self.tally) + more;
        eventually(what, Duration::from_secs(60), || async {
            (count(&self.tally) >= target).then_some(())
        })
        .await;
    }

    /// Stops the load and waits for calls in flight to finish.
    pub(crate) async fn stop(mut self) -> Arc<Tally> {
        self.stop.cancel();
        while let Some(joined) = self.tasks.join_next().await {
            joined.expect("a load task panicked");
        }
        self.tally
    }
}

pub(crate) async fn health(channel: Channel) -> Option<ServingStatus> {
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    request.set_timeout(Duration::from_secs(2));
    HealthClient::new(channel)
        .check(request)
        .await
        .ok()
        .map(|r| r.into_inner().status())
}
