//! Typed upstream failures. Every way an upstream can misbehave ends here, never in a
//! panic; each maps to a stable reason code for the check it affects.

use dossier_core::domain::Upstream;
use dossier_core::reason::ReasonCode;
use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum UpstreamError {
    #[error("{upstream} did not answer within {timeout_ms} ms")]
    Timeout { upstream: Upstream, timeout_ms: u64 },
    #[error("the caller's deadline passed before {upstream} could be asked")]
    DeadlineExceeded { upstream: Upstream },
    #[error("cannot connect to {upstream}: {detail}")]
    Connect { upstream: Upstream, detail: String },
    #[error("{upstream} refused the request: over its rate limit (retry after {retry_after:?})")]
    RateLimited {
        upstream: Upstream,
        retry_after: Option<Duration>,
    },
    #[error("{upstream} answered HTTP {status}: {snippet}")]
    Status {
        upstream: Upstream,
        status: u16,
        /// From a 503's Retry-After: wait at least this long before trying again.
        retry_after: Option<Duration>,
        snippet: String,
    },
    #[error("{upstream} answered 200 with an error body: {snippet}")]
    ErrorBody { upstream: Upstream, snippet: String },
    #[error("{upstream} sent a response that is not the expected JSON: {detail}")]
    Malformed { upstream: Upstream, detail: String },
    #[error("{upstream} broke off the response: {detail}")]
    Body { upstream: Upstream, detail: String },
    #[error(
        "{upstream} is failing and its circuit breaker is open (next probe in {retry_after:?})"
    )]
    CircuitOpen {
        upstream: Upstream,
        retry_after: Duration,
    },
    #[error("internal error while calling {upstream}: {detail}")]
    Internal { upstream: Upstream, detail: String },
    #[error("{upstream} rejected Dossier's credential (HTTP {status}); check its configured token")]
    Unauthorized { upstream: Upstream, status: u16 },
}

impl UpstreamError {
    /// Short stable kind, used in audit rows and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Timeout { .. } => "timeout",
            UpstreamError::DeadlineExceeded { .. } => "deadline",
            UpstreamError::Connect { .. } => "connect",
            UpstreamError::RateLimited { .. } => "rate_limited",
            UpstreamError::Status { .. } => "http_status",
            UpstreamError::ErrorBody { .. } => "error_body",
            UpstreamError::Malformed { .. } => "malformed",
            UpstreamError::Body { .. } => "body",
            UpstreamError::Unauthorized { .. } => "unauthorized",
            UpstreamError::CircuitOpen { .. } => "circuit_open",
            UpstreamError::Internal { .. } => "internal",
        }
    }

    /// The reason code a check reports when this failure made it UNAVAILABLE.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            UpstreamError::Timeout { .. } => ReasonCode::UpstreamTimeout,
            UpstreamError::DeadlineExceeded { .. } => ReasonCode::DeadlineExceeded,
            UpstreamError::RateLimited { .. } => ReasonCode::UpstreamRateLimited,
            UpstreamError::Connect { .. } | UpstreamError::Status { .. } => {
                ReasonCode::UpstreamError
            }
            UpstreamError::Unauthorized { .. } => ReasonCode::UpstreamAuthFailed,
            UpstreamError::CircuitOpen { .. } => ReasonCode::UpstreamCircuitOpen,
            UpstreamError::Internal { .. } => ReasonCode::UpstreamError,
            UpstreamError::ErrorBody { .. }
            | UpstreamError::Malformed { .. }
            | UpstreamError::Body { .. } => ReasonCode::UpstreamBadResponse,
        }
    }

    /// Whether this failure says the upstream is unwell (counts for the breaker).
    pub fn is_outage(&self) -> bool {
        match self {
            UpstreamError::Timeout { .. }
            | UpstreamError::Connect { .. }
            | UpstreamError::Body { .. } => true,
            UpstreamError::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// How long the caller should wait before trying again, when known.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            UpstreamError::RateLimited { retry_after, .. } => *retry_after,
            UpstreamError::CircuitOpen { retry_after, .. } => Some(*retry_after),
            UpstreamError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether asking again may succeed (connect errors, 5xx, 429, timeouts, broken
    /// bodies); a malformed answer or a 4xx will be the same next time.
    pub fn is_retryable(&self) -> bool {
        match self {
            UpstreamError::Timeout { .. }
            | UpstreamError::Connect { .. }
            | UpstreamError::RateLimited { .. }
            | UpstreamError::Body { .. } => true,
            UpstreamError::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }

    pub fn upstream(&self) -> Upstream {
        match self {
            UpstreamError::Timeout { upstream, .. }
            | UpstreamError::DeadlineExceeded { upstream }
            | UpstreamError::Connect { upstream, .. }
            | UpstreamError::RateLimited { upstream, .. }
            | UpstreamError::Status { upstream, .. }
            | UpstreamError::ErrorBody { upstream, .. }
            | UpstreamError::Malformed { upstream, .. }
            | UpstreamError::Body { upstream, .. }
            | UpstreamError::Unauthorized { upstream, .. }
            | UpstreamError::CircuitOpen { upstream, .. }
            | UpstreamError::Internal { upstream, .. } => *upstream,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_has_a_reason_code_and_a_retry_rule() {
        let u = Upstream::Licensing;
        let cases = [
            (
                UpstreamError::Timeout {
                    upstream: u,
                    timeout_ms: 5,
                },
                "UPSTREAM_TIMEOUT",
                true,
            ),
            (
                UpstreamError::DeadlineExceeded { upstream: u },
                "DEADLINE_EXCEEDED",
                false,
            ),
            (
                UpstreamError::Connect {
                    upstream: u,
                    detail: String::new(),
                },
                "UPSTREAM_ERROR",
                true,
            ),
            (
                UpstreamError::RateLimited {
                    upstream: u,
                    retry_after: None,
                },
                "UPSTREAM_RATE_LIMITED",
                true,
            ),
            (
                UpstreamError::Status {
                    upstream: u,
                    status: 503,
                    retry_after: None,
                    snippet: String::new(),
                },
                "UPSTREAM_ERROR",
                true,
            ),
            (
                UpstreamError::Status {
                    upstream: u,
                    status: 400,
                    retry_after: None,
                    snippet: String::new(),
                },
                "UPSTREAM_ERROR",
                false,
            ),
            (
                UpstreamError::ErrorBody {
                    upstream: u,
                    snippet: String::new(),
                },
                "UPSTREAM_BAD_RESPONSE",
                false,
            ),
            (
                UpstreamError::Malformed {
                    upstream: u,
                    detail: String::new(),
                },
                "UPSTREAM_BAD_RESPONSE",
                false,
            ),
            (
                UpstreamError::Body {
                    upstream: u,
                    detail: String::new(),
                },
                "UPSTREAM_BAD_RESPONSE",
                true,
            ),
            (
                UpstreamError::Unauthorized {
                    upstream: u,
                    status: 401,
                },
                "UPSTREAM_AUTH_FAILED",
                false,
            ),
            (
                UpstreamError::CircuitOpen {
                    upstream: u,
                    retry_after: Duration::from_secs(1),
                },
                "UPSTREAM_CIRCUIT_OPEN",
                false,
            ),
            (
                UpstreamError::Internal {
                    upstream: u,
                    detail: String::new(),
                },
                "UPSTREAM_ERROR",
                false,
            ),
        ];
        for (e, code, retryable) in cases {
            assert_eq!(
                (e.reason_code().as_str(), e.is_retryable()),
                (code, retryable),
                "{e:?}"
            );
            assert!(
                e.to_string().contains(u.as_str()),
                "the message names the upstream: {e}"
            );
        }
    }
}
