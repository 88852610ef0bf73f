//! Typed upstream failures. Every way an upstream can misbehave ends here, never in a
//! panic; each maps to a stable reason code for the check it affects.

use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum UpstreamError {
    #[error("{upstream} did not answer within {timeout_ms} ms")]
    Timeout {
        upstream: &'static str,
        timeout_ms: u64,
    },
    #[error("the caller's deadline passed before {upstream} could be asked")]
    DeadlineExceeded { upstream: &'static str },
    #[error("cannot connect to {upstream}: {detail}")]
    Connect {
        upstream: &'static str,
        detail: String,
    },
    #[error("{upstream} refused the request: over its rate limit (retry after {retry_after:?})")]
    RateLimited {
        upstream: &'static str,
        retry_after: Option<Duration>,
    },
    #[error("{upstream} answered HTTP {status}: {snippet}")]
    Status {
        upstream: &'static str,
        status: u16,
        snippet: String,
    },
    #[error("{upstream} answered 200 with an error body: {snippet}")]
    ErrorBody {
        upstream: &'static str,
        snippet: String,
    },
    #[error("{upstream} sent a response that is not the expected JSON: {detail}")]
    Malformed {
        upstream: &'static str,
        detail: String,
    },
    #[error("{upstream} broke off the response: {detail}")]
    Body {
        upstream: &'static str,
        detail: String,
    },
    #[error("{upstream} rejected Dossier's credential (HTTP {status}); check its configured token")]
    Unauthorized { upstream: &'static str, status: u16 },
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
        }
    }

    /// The reason code a check reports when this failure made it UNAVAILABLE.
    pub fn reason_code(&self) -> &'static str {
        match self {
            UpstreamError::Timeout { .. } => "UPSTREAM_TIMEOUT",
            UpstreamError::DeadlineExceeded { .. } => "DEADLINE_EXCEEDED",
            UpstreamError::RateLimited { .. } => "UPSTREAM_RATE_LIMITED",
            UpstreamError::Connect { .. } | UpstreamError::Status { .. } => "UPSTREAM_ERROR",
            UpstreamError::Unauthorized { .. } => "UPSTREAM_AUTH_FAILED",
            UpstreamError::ErrorBody { .. }
            | UpstreamError::Malformed { .. }
            | UpstreamError::Body { .. } => "UPSTREAM_BAD_RESPONSE",
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

    pub fn upstream(&self) -> &'static str {
        match self {
            UpstreamError::Timeout { upstream, .. }
            | UpstreamError::DeadlineExceeded { upstream }
            | UpstreamError::Connect { upstream, .. }
            | UpstreamError::RateLimited { upstream, .. }
            | UpstreamError::Status { upstream, .. }
            | UpstreamError::ErrorBody { upstream, .. }
            | UpstreamError::Malformed { upstream, .. }
            | UpstreamError::Body { upstream, .. }
            | UpstreamError::Unauthorized { upstream, .. } => upstream,
        }
    }
}
