//! One upstream behind its full protection stack, in this order:
//!
//! 1. L1 cache (moka, this pod's memory, bounded, per-kind TTL)
//! 2. coalescing (concurrent identical questions share one fetch task)
//! 3. L2 cache (PostgreSQL, shared by every pod), with a fleet-wide fetch lease: on a
//!    miss one pod fetches and the others wait for its fill (LISTEN/NOTIFY), in
//!    fleet_fetch.rs
//! 4. rate limit (GCRA with reservations; the fleet's in PostgreSQL) — wait for a permit that leaves
//!    room for the answer before the caller's deadline (latency.rs), or refuse at once
//! 5. concurrency cap, circuit breaker, retries (full jitter, Retry-After), per-try timeout
//! 6. stale-if-error: an expired answer within its grace when the upstream fails
//!
//! Each step is a small type in its own file; this file only composes them. Answers are
//! cached as JSON values so one cache serves every answer type; an answer is checked
//! against its type before it is cached, so a wrong-shaped 200 is never cached.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::breaker::Breaker;
use super::coalesce::Coalescer;
use super::error::UpstreamError;
use super::fleet_fetch::{FleetFetch, Shared};
use super::http::{CallContext, Fetched, HttpUpstream};
use super::latency::LatencyEstimate;
use super::limit::Limiter;
use super::retry;
use super::settings::UpstreamPolicy;
use super::shared::{CachedAnswer, FleetLimiter, FleetPermit, SharedCache};
use dossier_core::domain::{CacheOutcome, DataSource, Upstream};

/// Budget of a call made without a deadline.
const NO_DEADLINE_BUDGET: Duration = Duration::from_secs(30);

/// How to ask the upstream one question over HTTP, after the protections.
pub type SendFn = Arc<
    dyn Fn(&HttpUpstream, &CallContext) -> BoxFuture<'static, Result<Option<Value>, UpstreamError>>
        + Send
        + Sync,
>;

/// One question for an upstream.
pub struct Question {
    /// Kind of answer, for TTLs and cache keys: "property", "avm", "identity"…
    pub kind: &'static str,
    /// The question in canonical form (it may hold PII: only its keyed hash is stored).
    pub key: String,
    /// Checks that an answer has the expected shape before it is cached.
    pub validate: fn(&Value) -> Result<(), String>,
    pub send: SendFn,
}

/// Shape check for answers of type `T`.
pub fn shape_of<T: DeserializeOwned>(v: &Value) -> Result<(), String> {
    T::deserialize(v)
        .map(|_| ())
        .map_err(|e| super::http::mask_digits(&e.to_string()))
}

type FlightResult = Result<(Arc<CachedAnswer>, CacheOutcome), UpstreamError>;

pub struct Layered {
    pub name: Upstream,
    pub policy: UpstreamPolicy,
    pub http: HttpUpstream,
    l1: moka::future::Cache<String, Arc<CachedAnswer>>,
    flights: Coalescer<FlightResult>,
    shared: Arc<dyn SharedCache>,
    fleet: Arc<dyn FleetLimiter>,
    limiter: Limiter,
    breaker: Breaker,
    /// Answers are personal data (Rails applications hold SSNs; identity answers are
    /// about a person): sealed in the shared cache.
    sensitive: bool,
    /// Which pod of the fleet fetches a question the shared cache cannot answer.
    fleet_fetch: FleetFetch,
    /// How long this upstream takes to answer: the room a permit must leave.
    latency: LatencyEstimate,
}

impl std::fmt::Debug for Layered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layered")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// L1 entries live until their stale grace ends; freshness is checked on read.
struct UntilStale;

impl moka::Expiry<String, Arc<CachedAnswer>> for UntilStale {
    fn expire_after_create(
        &self,
        _: &String,
        v: &Arc<CachedAnswer>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(
            (v.stale_until - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO),
        )
    }
    fn expire_after_update(
        &self,
        k: &String,
        v: &Arc<CachedAnswer>,
        at: std::time::Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(k, v, at)
    }
}

impl Layered {
    pub fn new(
        http: HttpUpstream,
        policy: UpstreamPolicy,
        shared: &super::shared::SharedState,
    ) -> Arc<Layered> {
        let name = http.config.name;
        Arc::new(Layered {
            fleet_fetch: FleetFetch::new(name, shared),
            name,
            l1: moka::future::Cache::builder()
                .max_capacity(policy.l1_capacity)
                .expire_after(UntilStale)
                .build(),
            flights: Coalescer::default(),
            limiter: Limiter::new(
                name,
                policy.rate_per_second,
                policy.burst,
                policy.concurrency,
            ),
            breaker: Breaker::new(name, policy.breaker.clone()),
            sensitive: name.holds_personal_data(),
            http,
            policy,
            shared: shared.cache.clone(),
            fleet: shared.limiter.clone(),
            latency: LatencyEstimate::default(),
        })
    }

    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// The fleet-wide permit (PostgreSQL), after this pod's own limiter said yes. If the
    /// database cannot be asked, the pod's own limiter is all that applies: a database
    /// outage already takes the pod out of rotation (health NOT_SERVING).
    async fn fleet_permit(
        &self,
        deadline: Instant,
        headroom: Duration,
    ) -> Result<(), UpstreamError> {
        let interval = Duration::from_secs_f64(1.0 / self.policy.rate_per_second);
        let max_wait = deadline
            .saturating_duration_since(Instant::now())
            .saturating_sub(headroom);
        match self
            .fleet
            .permit(self.name, interval, self.policy.burst, max_wait)
            .await
        {
            Ok(FleetPermit::Granted { after }) => {
                metrics::histogram!("dossier_upstream_rate_limit_wait_seconds", "upstream" => self.name.as_str(), "limiter" => "fleet").record(after.as_secs_f64());
                if !after.is_zero() {
                    tokio::time::sleep(after).await;
                }
                Ok(())
            }
            Ok(FleetPermit::Refused { retry_after }) => {
                self.count("rate_limited");
                Err(UpstreamError::RateLimited {
                    upstream: self.name,
                    retry_after: Some(retry_after),
                })
            }
            Err(e) => {
                tracing::warn!(upstream = %self.name, error = %e, "fleet rate limit unreachable; using this pod's limit only");
                Ok(())
            }
        }
    }

    /// Asks a question and decodes the answer. `Ok(None)`: the upstream knows nothing.
    pub async fn ask<T: DeserializeOwned + Clone + Send + Sync + 'static>(
        self: &Arc<Self>,
        q: Question,
        ctx: &CallContext,
    ) -> Result<Option<Fetched<T>>, UpstreamError> {
        // One span per question, with where its answer came from (`cache`): a trace
        // shows which questions cost a vendor request and which were served locally.
        let span = tracing::info_span!(
            "upstream.question",
            otel.name = %format_args!("{}.{}", self.name, q.kind),
            otel.status_code = tracing::field::Empty,
            upstream = self.name.as_str(),
            question = q.kind,
            cache = tracing::field::Empty,
        );
        let answered = tracing::Instrument::instrument(self.answer(q, ctx), span.clone()).await;
        let (answer, outcome) = match answered {
            Ok(answered) => answered,
            Err(e) => {
                span.record("otel.status_code", "error");
                return Err(e);
            }
        };
        span.record("cache", outcome.as_str());
        let source = DataSource {
            upstream: self.name,
            fetched_at: answer.fetched_at,
            cached: matches!(outcome, CacheOutcome::L1Hit | CacheOutcome::L2Hit),
            stale: outcome == CacheOutcome::Stale,
            cache: outcome,
            passed_over: Vec::new(),
        };
        match &answer.body {
            None => Ok(None),
            Some(body) => answer
                .decoded
                .get_or_try_init(|| T::deserialize(body))
                .map(|value| {
                    Some(Fetched {
                        value: T::clone(&value),
                        source,
                    })
                })
                .map_err(|e| UpstreamError::Malformed {
                    upstream: self.name,
                    detail: format!(
                        "cached answer no longer decodes: {}",
                        super::http::mask_digits(&e.to_string())
                    ),
                }),
        }
    }

    fn count(&self, outcome: &'static str) {
        metrics::counter!("dossier_upstream_requests_total", "upstream" => self.name.as_str(), "outcome" => outcome).increment(1);
    }

    async fn answer(self: &Arc<Self>, q: Question, ctx: &CallContext) -> FlightResult {
        let deadline = ctx
            .deadline
            .unwrap_or_else(|| Instant::now() + NO_DEADLINE_BUDGET);
        let key_hash = self
            .shared
            .key_hash(&format!("cache:{}:{}", self.name, q.kind), q.key.as_bytes());
        let l1_key = hex::encode(&key_hash);
        if !ctx.force_refresh
            && let Some(hit) = self.l1.get(&l1_key).await
            && hit.expires_at > Utc::now()
        {
            self.count("l1_hit");
            return Ok((hit, CacheOutcome::L1Hit));
        }
        // A forced refresh coalesces only with other forced refreshes.
        let flight_key = if ctx.force_refresh {
            format!("fresh:{l1_key}")
        } else {
            l1_key.clone()
        };
        // The shared fetch gets at least one full try even if this caller is in a hurry;
        // later callers wait on it with their own deadlines.
        let fetch_deadline = deadline.max(Instant::now() + self.policy.timeout);
        let fetch_ctx = CallContext {
            deadline: Some(fetch_deadline),
            ..*ctx
        };
        let me = self.clone();
        let name = self.name;
        let (flight, joined) = self.flights.join_or_start(
            &flight_key,
            // The fetch runs in a task of its own: it carries the starting caller's
            // span, so its requests appear in that caller's trace.
            move || {
                tracing::Instrument::in_current_span(
                    me.fetch(q, key_hash, l1_key, fetch_ctx, deadline),
                )
            },
            move || {
                Err(UpstreamError::Internal {
                    upstream: name,
                    detail: "the fetch task panicked".into(),
                })
            },
        );
        match tokio::time::timeout_at(deadline.into(), flight).await {
            Ok(Ok((answer, outcome))) if joined => {
                self.count("coalesced");
                Ok((
                    answer,
                    if outcome == CacheOutcome::Stale {
                        outcome
                    } else {
                        CacheOutcome::Coalesced
                    },
                ))
            }
            Ok(result) => result,
            Err(_) => Err(UpstreamError::DeadlineExceeded { upstream: name }),
        }
    }

    /// Runs in its own task (see coalesce.rs).
    async fn fetch(
        self: Arc<Self>,
        q: Question,
        key_hash: Vec<u8>,
        l1_key: String,
        ctx: CallContext,
        permit_by: Instant,
    ) -> FlightResult {
        let now = Utc::now();
        // A forced refresh wants new data: it never falls back to a cached answer.
        let mut stale = if ctx.force_refresh {
            None
        } else {
            self.l1.get(&l1_key).await.filter(|a| a.stale_until > now)
        };
        let mut leased = false;
        if !ctx.force_refresh {
            let deadline = ctx.deadline.expect("fetch contexts carry a deadline");
            match self
                .fleet_fetch
                .shared_answer(q.kind, &key_hash, deadline)
                .await
            {
                Shared::Fresh(a, outcome) => {
                    let a = Arc::new(a);
                    self.l1.insert(l1_key, a.clone()).await;
                    self.count(if outcome == CacheOutcome::Coalesced {
                        "fleet_coalesced"
                    } else {
                        "l2_hit"
                    });
                    return Ok((a, outcome));
                }
                Shared::Fetch { stale: old, lease } => {
                    stale = stale.or(old.map(Arc::new));
                    leased = lease;
                }
                Shared::TimedOut { stale: old } => {
                    return match stale.or(old.map(Arc::new)) {
                        Some(old) if old.stale_until > Utc::now() => {
                            self.count("stale");
                            Ok((old, CacheOutcome::Stale))
                        }
                        _ => {
                            self.count("error");
                            Err(UpstreamError::DeadlineExceeded {
                                upstream: self.name,
                            })
                        }
                    };
                }
            }
        }
        let result = self
            .fleet_fetch
            .holding(
                q.kind,
                &key_hash,
                leased,
                self.fetch_upstream(&q, &ctx, permit_by, true),
            )
            .await;
        if leased && result.is_err() {
            self.fleet_fetch.release_lease(q.kind, &key_hash).await;
        }
        match result {
            Ok(body) => {
                let fetched_at = Utc::now();
                let ttl = self
                    .policy
                    .ttl_for(if body.is_some() { q.kind } else { "not_found" });
                let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1));
                let grace = chrono::Duration::from_std(self.policy.stale_grace)
                    .unwrap_or(chrono::Duration::zero());
                let answer = Arc::new(CachedAnswer {
                    body,
                    fetched_at,
                    expires_at: fetched_at + ttl,
                    stale_until: fetched_at + ttl + grace,
                    decoded: Default::default(),
                });
                self.l1.insert(l1_key, answer.clone()).await;
                // Filled before answering, so another pod asking right after finds it.
                if let Err(e) = self
                    .shared
                    .put(self.name, q.kind, &key_hash, &answer, self.sensitive)
                    .await
                {
                    tracing::warn!(upstream = %self.name, error = %e, "L2 cache write failed");
                }
                self.count("fetched");
                Ok((answer, CacheOutcome::Fetched))
            }
            Err(e) => match stale {
                Some(old) if old.stale_until > Utc::now() => {
                    tracing::warn!(upstream = %self.name, error = %e, fetched_at = %old.fetched_at, "upstream failed; serving a stale answer");
                    self.count("stale");
                    Ok((old, CacheOutcome::Stale))
                }
                _ => {
                    // Refusals by our own limiter and breaker are counted, not logged:
                    // under an outage they would be a line per question.
                    if !matches!(
                        e,
                        UpstreamError::RateLimited { .. } | UpstreamError::CircuitOpen { .. }
                    ) {
                        tracing::warn!(upstream = %self.name, error = %e, "upstream failed and no stale answer can stand in; the checks that need it are UNAVAILABLE");
                    }
                    if !matches!(e, UpstreamError::RateLimited { .. }) {
                        self.count("error");
                    }
                    Err(e)
                }
            },
        }
    }

    /// Sends a request that must not be cached or coalesced (a delivery, a write) through
    /// the same rate limit, concurrency cap, breaker and retries as every fetch.
    pub async fn send_uncached(
        &self,
        q: &Question,
        ctx: &CallContext,
    ) -> Result<Option<Value>, UpstreamError> {
        let deadline = ctx
            .deadline
            .unwrap_or_else(|| Instant::now() + NO_DEADLINE_BUDGET);
        let ctx = CallContext {
            deadline: Some(deadline),
            ..*ctx
        };
        let span = tracing::info_span!(
            "upstream.send",
            otel.name = %format_args!("{}.{}", self.name, q.kind),
            otel.status_code = tracing::field::Empty,
            upstream = self.name.as_str(),
            question = q.kind,
        );
        let result = tracing::Instrument::instrument(
            self.fetch_upstream(q, &ctx, deadline, false),
            span.clone(),
        )
        .await;
        if result.is_err() {
            span.record("otel.status_code", "error");
        }
        match &result {
            Ok(_) => self.count("sent"),
            // Counted by the limiter that refused it.
            Err(UpstreamError::RateLimited { .. }) => {}
            Err(_) => self.count("error"),
        }
        result
    }

    /// Rate limit, concurrency cap, breaker, then tries with back-off until an answer,
    /// a final failure, or the deadline. The first permit is waited for only until
    /// `permit_by`, the deadline of the caller that started the fetch: a caller that
    /// cannot be served in time is told so (with a retry delay) rather than left to time
    /// out.
    ///
    /// Without `guarded`, the circuit breaker is neither asked nor told: deliveries
    /// (`send_uncached`) are retried by the job queue with its own back-off, and a
    /// failing callback endpoint must not open the breaker that look-ups depend on.
    async fn fetch_upstream(
        &self,
        q: &Question,
        ctx: &CallContext,
        permit_by: Instant,
        guarded: bool,
    ) -> Result<Option<Value>, UpstreamError> {
        let deadline = ctx.deadline.expect("fetch contexts carry a deadline");
        let mut attempt = 1;
        loop {
            let permit_deadline = if attempt == 1 { permit_by } else { deadline };
            // Waiting for the rate limits and a concurrency slot: its own span, so a
            // trace shows time spent queueing apart from time spent asking.
            let headroom = self.latency.headroom(self.policy.timeout);
            let slot = tracing::Instrument::instrument(
                async {
                    self.limiter.rate_permit(permit_deadline, headroom).await?;
                    if self.policy.fleet_limit {
                        self.fleet_permit(permit_deadline, headroom).await?;
                    }
                    self.limiter.slot(deadline).await
                },
                tracing::info_span!("upstream.permit", upstream = self.name.as_str(), attempt),
            )
            .await?;
            let admitted = if guarded {
                Some(self.breaker.admit()?)
            } else {
                None
            };
            let started = Instant::now();
            let result = (q.send)(&self.http, ctx)
                .await
                .and_then(|answer| match answer {
                    Some(v) => (q.validate)(&v).map(|()| Some(v)).map_err(|detail| {
                        UpstreamError::Malformed {
                            upstream: self.name,
                            detail,
                        }
                    }),
                    None => Ok(None),
                });
            drop(slot);
            let took = started.elapsed();
            if result.is_ok() {
                // Answers only: a timeout says the vendor was slow once, not how long
                // its answers take.
                self.latency.record(took);
            }
            metrics::histogram!("dossier_upstream_request_duration_seconds", "upstream" => self.name.as_str()).record(took.as_secs_f64());
            if let Some(admitted) = admitted {
                self.breaker.record(
                    admitted,
                    result.as_ref().is_err_and(UpstreamError::is_outage),
                );
            }
            match result {
                Ok(v) => return Ok(v),
                Err(e) => match retry::next_delay(&self.policy.retry, attempt, &e, deadline) {
                    Some(wait) => {
                        tracing::debug!(upstream = %self.name, attempt, ?wait, error = %e, "retrying");
                        tracing::Instrument::instrument(
                            tokio::time::sleep(wait),
                            tracing::info_span!(
                                "upstream.backoff",
                                upstream = self.name.as_str(),
                                attempt,
                                wait_ms = wait.as_millis() as u64,
                                error = e.kind(),
                            ),
                        )
                        .await;
                        attempt += 1;
                    }
                    None => return Err(e),
                },
            }
        }
    }
}

/// A `SendFn` for a GET or POST built by `build`, decoded as JSON.
pub fn http_send(
    endpoint: &'static str,
    build: impl Fn(&HttpUpstream) -> Result<reqwest::RequestBuilder, UpstreamError>
    + Send
    + Sync
    + 'static,
) -> SendFn {
    Arc::new(move |http: &HttpUpstream, ctx: &CallContext| {
        let request = build(http);
        let http = http.clone();
        let ctx = *ctx;
        Box::pin(async move {
            Ok(http
                .send_json::<Value>(endpoint, request?, &ctx)
                .await?
                .map(|f| f.value))
        })
    })
}
