//! The HTTP call every upstream client makes: one request with a per-try timeout
//! bounded by the caller's deadline, every failure typed, every real request audited.
//! Rate limiting, caching, coalescing and retries wrap this in later layers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::error::UpstreamError;
use super::shared::{AuditEnd, AuditEntry, AuditStart, AuditTrail};
use dossier_core::domain::{DataSource, Upstream};

/// Settings of one upstream.
#[derive(Clone)]
pub struct UpstreamConfig {
    pub name: Upstream,
    pub base_url: String,
    /// Sent as `Authorization: Bearer …` when set.
    pub credential: Option<String>,
    /// Longest a single try may take.
    pub timeout: Duration,
    /// What one request costs, for reporting.
    pub cost_cents: i32,
}

impl std::fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field(
                "credential",
                &self.credential.as_ref().map(|_| "<redacted>"),
            )
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Per-call context: which application asks, and by when it needs the answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallContext {
    pub application_id: Option<Uuid>,
    pub deadline: Option<Instant>,
    /// Skip caches (the rate limit still applies).
    pub force_refresh: bool,
}

/// An answer with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched<T> {
    pub value: T,
    pub source: DataSource,
}

impl<T> Fetched<T> {
    /// The same answer in another type: a vendor's wire type into Dossier's evidence.
    pub fn convert<U: From<T>>(self) -> Fetched<U> {
        Fetched {
            value: self.value.into(),
            source: self.source,
        }
    }
}

/// The body of `response`, at most [`MAX_RESPONSE_BYTES`]: `Err(None)` past that.
async fn read_capped(
    mut response: reqwest::Response,
) -> Result<bytes::Bytes, Option<reqwest::Error>> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
    {
        return Err(None);
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(Some)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The HTTP half of an upstream client.
#[derive(Debug, Clone)]
pub struct HttpUpstream {
    pub config: UpstreamConfig,
    http: reqwest::Client,
    audit: Arc<dyn AuditTrail>,
    /// The base URL may carry a bearer credential (https, or loopback): decided once.
    credential_may_travel: bool,
}

const SNIPPET: usize = 200;
/// Largest response body read from an upstream. Vendors' answers are a few KB and a
/// Rails batch of applications well under a megabyte; anything past this is a fault,
/// and reading it whole would let one upstream exhaust the pod's memory.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

impl HttpUpstream {
    pub fn new(config: UpstreamConfig, audit: Arc<dyn AuditTrail>) -> HttpUpstream {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("dossier/", env!("CARGO_PKG_VERSION")))
            // A redirect would re-send an SSN-bearing body (and the credential) to a
            // host nobody configured: a 3xx is an error status instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("static reqwest configuration is valid");
        HttpUpstream {
            credential_may_travel: crate::settings::check_base_url(&config.base_url).is_ok(),
            config,
            http,
            audit,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.config.base_url.trim_end_matches('/'), path)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path))
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path))
    }

    /// GET `{base}{prefix}/{segment}/{segment}…` with every segment percent-escaped:
    /// segments are caller input and must not be able to change the path.
    pub fn get_segments(
        &self,
        prefix: &str,
        segments: &[&str],
    ) -> Result<reqwest::RequestBuilder, UpstreamError> {
        let upstream = self.config.name;
        let mut url =
            reqwest::Url::parse(&self.url(prefix)).map_err(|e| UpstreamError::Connect {
                upstream,
                detail: format!("base URL {:?} is not a URL: {e}", self.config.base_url),
            })?;
        url.path_segments_mut()
            .map_err(|_| UpstreamError::Connect {
                upstream,
                detail: format!("base URL {:?} cannot carry a path", self.config.base_url),
            })?
            .pop_if_empty()
            .extend(segments);
        Ok(self.http.get(url))
    }

    /// Sends one request and decodes a JSON body. `Ok(None)` is a 404: the upstream
    /// knows nothing of the subject, which is an answer, not a failure.
    /// One span per try (`upstream.http`), and the trace context passed on in
    /// `traceparent` so the vendor's own traces join the caller's.
    pub async fn send_json<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        request: reqwest::RequestBuilder,
        ctx: &CallContext,
    ) -> Result<Option<Fetched<T>>, UpstreamError> {
        let span = tracing::info_span!(
            "upstream.http",
            otel.name = %format_args!("{} {}", self.config.name, endpoint),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            upstream = self.config.name.as_str(),
            endpoint,
            http.response.status_code = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        tracing::Instrument::instrument(self.try_once(endpoint, request, ctx), span).await
    }

    async fn try_once<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        request: reqwest::RequestBuilder,
        ctx: &CallContext,
    ) -> Result<Option<Fetched<T>>, UpstreamError> {
        let upstream = self.config.name;
        let (timeout, deadline_bound) = match ctx.deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(UpstreamError::DeadlineExceeded { upstream });
                }
                (left.min(self.config.timeout), left < self.config.timeout)
            }
            None => (self.config.timeout, false),
        };
        let mut trace_headers = http::HeaderMap::new();
        crate::trace_context::inject_current(&mut trace_headers);
        let mut request = request.timeout(timeout).headers(trace_headers);
        if let Some(token) = &self.config.credential {
            // Settings refuse plain http to anything but loopback; this keeps a token off
            // the wire even for settings built some other way.
            if !self.credential_may_travel {
                return Err(UpstreamError::Connect {
                    upstream,
                    detail: "refusing to send the credential over plain http to a host that is not loopback; configure https://".into(),
                });
            }
            request = request.bearer_auth(token);
        }
        let called_at = Utc::now();
        let entry = self
            .begin_audit(
                AuditStart {
                    upstream,
                    endpoint,
                    application_id: ctx.application_id,
                    cache: if ctx.force_refresh { "bypass" } else { "miss" },
                    cost_cents: self.config.cost_cents,
                    called_at,
                },
                timeout,
            )
            .await?;
        let unfinished = Unfinished {
            audit: &self.audit,
            entry: Some(entry),
        };
        let started = Instant::now();
        let mut result = self.exchange::<T>(request, timeout).await;
        if deadline_bound && matches!(result, Err((_, UpstreamError::Timeout { .. }))) {
            // The caller's deadline, not the upstream's timeout, cut this short.
            result = Err((None, UpstreamError::DeadlineExceeded { upstream }));
        }
        let (status, outcome, error) = match &result {
            Ok((status, Some(_))) => (Some(*status), "ok".to_owned(), None),
            Ok((status, None)) => (Some(*status), "not_found".to_owned(), None),
            Err((status, e)) => (*status, e.kind().to_owned(), Some(e.to_string())),
        };
        let span = tracing::Span::current();
        if let Some(status) = status {
            span.record("http.response.status_code", status);
        }
        span.record("outcome", outcome.as_str());
        if error.is_some() {
            span.record("otel.status_code", "error");
        }
        unfinished
            .finish(AuditEnd {
                http_status: status,
                outcome,
                error,
                latency_ms: started.elapsed().as_millis().min(u32::MAX as u128) as u32,
            })
            .await;
        match result {
            Ok((_, value)) => Ok(value.map(|value| Fetched {
                value,
                source: DataSource {
                    upstream: upstream.to_owned(),
                    fetched_at: called_at,
                    cached: false,
                    stale: false,
                    cache: dossier_core::domain::CacheOutcome::Fetched,
                    passed_over: Vec::new(),
                },
            })),
            Err((_, e)) => Err(e),
        }
    }

    /// Writes the request's audit row before it leaves. No row, no request: an
    /// unaudited request to a vendor holding SSNs is worse than a failed check. Bounded
    /// by the request's own timeout, which the caller's deadline already bounds.
    async fn begin_audit(
        &self,
        start: AuditStart,
        timeout: Duration,
    ) -> Result<AuditEntry, UpstreamError> {
        let upstream = start.upstream;
        match tokio::time::timeout(timeout, self.audit.begin(start)).await {
            Ok(Ok(entry)) => Ok(entry),
            Ok(Err(e)) => Err(UpstreamError::Internal {
                upstream,
                detail: format!(
                    "the request was not sent: its audit row could not be written ({e}); check the database"
                ),
            }),
            Err(_) => Err(UpstreamError::Internal {
                upstream,
                detail: format!(
                    "the request was not sent: its audit row was not written within {} ms; check the database",
                    timeout.as_millis()
                ),
            }),
        }
    }

    async fn exchange<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<(u16, Option<T>), (Option<u16>, UpstreamError)> {
        let upstream = self.config.name;
        let classify = |e: reqwest::Error| -> UpstreamError {
            if e.is_timeout() {
                UpstreamError::Timeout {
                    upstream,
                    timeout_ms: timeout.as_millis() as u64,
                }
            } else if e.is_connect() || e.is_request() {
                UpstreamError::Connect {
                    upstream,
                    detail: root_cause(&e),
                }
            } else {
                UpstreamError::Body {
                    upstream,
                    detail: root_cause(&e),
                }
            }
        };
        let response = request.send().await.map_err(|e| (None, classify(e)))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
        let body = read_capped(response).await.map_err(|e| {
            (
                Some(status),
                e.map_or_else(
                    || UpstreamError::Body {
                        upstream,
                        detail: format!(
                            "response body larger than {MAX_RESPONSE_BYTES} bytes; not read"
                        ),
                    },
                    classify,
                ),
            )
        })?;
        decode_answer(upstream, status, retry_after, &body)
            .map(|value| (status, value))
            .map_err(|e| (Some(status), e))
    }
}

/// An upstream's answer from its status and body, decoded as `T`: `Ok(None)` for a
/// 404, a typed error for anything else that is not a well-formed `T`. Pure, so every
/// decoder can be fuzzed without a network (fuzz/).
pub fn decode_answer<T: DeserializeOwned>(
    upstream: Upstream,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<Option<T>, UpstreamError> {
    match status {
        200..=299 => {}
        404 => return Ok(None),
        401 | 403 => return Err(UpstreamError::Unauthorized { upstream, status }),
        429 => {
            return Err(UpstreamError::RateLimited {
                upstream,
                retry_after,
            });
        }
        _ => {
            return Err(UpstreamError::Status {
                upstream,
                status,
                // Only a 503 says "come back later"; elsewhere the header means nothing.
                retry_after: retry_after.filter(|_| status == 503),
                snippet: snippet(body),
            });
        }
    }
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| UpstreamError::Malformed {
            upstream,
            detail: format!("{e} (body starts: {})", snippet(body)),
        })?;
    // Some vendors answer 200 with {"error": ...}: a failure, never a result.
    if json.get("error").is_some() && json.as_object().is_some_and(|o| o.len() <= 3) {
        return Err(UpstreamError::ErrorBody {
            upstream,
            snippet: snippet(body),
        });
    }
    match serde_json::from_value::<T>(json) {
        Ok(v) => Ok(Some(v)),
        // A type error quotes the offending value, which may be personal data.
        Err(e) => Err(UpstreamError::Malformed {
            upstream,
            detail: mask_digits(&e.to_string()),
        }),
    }
}

/// A Retry-After value in either of its forms (RFC 9110 § 10.2.3): delay-seconds, or
/// an HTTP-date, read against `now` (a date in the past means "now": zero). `None` for
/// anything else.
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The start of a response body for error messages, with every digit masked: a body
/// may echo the request (an SSN, a date of birth), and these messages reach logs, the
/// audit table and callers.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(SNIPPET)]);
    mask_digits(&text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Replaces every ASCII digit with '#'. Used on anything derived from an upstream's
/// body (decoder errors quote values too).
pub fn mask_digits(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect()
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// An audited request that has not ended yet: dropped before `finish` (the caller's
/// future was cancelled mid-request), it records the outcome "cancelled".
struct Unfinished<'a> {
    audit: &'a Arc<dyn AuditTrail>,
    entry: Option<AuditEntry>,
}

impl Unfinished<'_> {
    async fn finish(mut self, end: AuditEnd) {
        if let Some(entry) = self.entry.take() {
            self.audit.finish(entry, end).await;
        }
    }
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            self.audit.abandon(entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn retry_after_in_seconds_or_as_an_http_date() {
        let now = httpdate::parse_http_date("Wed, 02 Dec 2026 10:00:00 GMT").unwrap();
        let cases: &[(&str, Option<Duration>)] = &[
            ("120", Some(Duration::from_secs(120))),
            (" 0 ", Some(Duration::ZERO)),
            (
                "Wed, 02 Dec 2026 10:00:30 GMT",
                Some(Duration::from_secs(30)),
            ),
            // RFC 850 and asctime forms are HTTP-dates too.
            (
                "Wednesday, 02-Dec-26 10:01:00 GMT",
                Some(Duration::from_secs(60)),
            ),
            ("Wed Dec  2 10:00:05 2026", Some(Duration::from_secs(5))),
            // Already past: retry now.
            ("Wed, 02 Dec 2026 09:00:00 GMT", Some(Duration::ZERO)),
            ("-5", None),
            ("soon", None),
            ("", None),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_retry_after(value, now), *expected, "{value:?}");
        }
        assert!(parse_retry_after("1", SystemTime::now()).is_some());
    }

    #[test]
    fn only_a_503_carries_its_retry_after() {
        let wait = Some(Duration::from_secs(7));
        let err = decode_answer::<serde_json::Value>(Upstream::Valuation, 503, wait, b"busy")
            .unwrap_err();
        assert_eq!(err.retry_after(), wait);
        let err = decode_answer::<serde_json::Value>(Upstream::Valuation, 500, wait, b"oops")
            .unwrap_err();
        assert_eq!(err.retry_after(), None);
        let err = decode_answer::<serde_json::Value>(Upstream::Valuation, 429, wait, b"slow down")
            .unwrap_err();
        assert_eq!(err.retry_after(), wait);
    }
}
