//! Who is calling, and may they: mutual TLS on the gRPC port, the caller's SPIFFE ID
//! read once per connection, and the per-method access policy asked on every call.
//!
//! ```text
//! TCP accept ─▶ TLS handshake (client certificate verified against the trust bundle;
//!              files re-read when they change) ─▶ Connection { caller }
//!   every request: RpcLogLayer (logs the caller) ─▶ AuthorizeLayer (policy) ─▶ handler
//! ```
//! Plaintext, without client authentication, is for `dossier dev` and the tests, or an
//! explicit `--allow-unauthenticated`; callers are then [`Caller::Anonymous`].

pub mod access;
mod authorize;
mod incoming;
pub mod reviewer;
mod spiffe;
mod tls;

use std::fmt;
use std::sync::Arc;

pub use access::{AccessPolicy, Reads};
pub use authorize::{Access, AuthorizeLayer};
pub use incoming::{Connection, ConnectionInfo, incoming};
pub use reviewer::{Reviewer, ReviewerVerifier, TokenError};
pub use spiffe::{SpiffeId, SpiffeIdError};
pub use tls::{ServerTls, TlsFiles};

/// The calling workload, as its connection proved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A client certificate, verified, naming this SPIFFE ID.
    Workload(SpiffeId),
    /// A verified client certificate that names no (or no well-formed) SPIFFE ID.
    Unnamed,
    /// Plaintext, client authentication off (`dev`, tests, `--allow-unauthenticated`).
    Anonymous,
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caller::Workload(id) => f.write_str(id.as_str()),
            Caller::Unnamed => f.write_str("unnamed-certificate"),
            Caller::Anonymous => f.write_str("anonymous"),
        }
    }
}

impl Caller {
    /// The caller of a request, from the connection it came on. Requests the server did
    /// not accept itself (none today) are anonymous.
    pub fn of<B>(request: &http::Request<B>) -> Caller {
        request
            .extensions()
            .get::<ConnectionInfo>()
            .map_or(Caller::Anonymous, |info| info.caller.clone())
    }

    /// The same, from a tonic request inside a handler.
    pub fn of_grpc<T>(request: &tonic::Request<T>) -> Caller {
        request
            .extensions()
            .get::<ConnectionInfo>()
            .map_or(Caller::Anonymous, |info| info.caller.clone())
    }
}

/// Who a call acts for, as the authoriser let it through: the caller, the access
/// policy's name for it, and which applications it may read. Put on every request by
/// [`AuthorizeLayer`].
#[derive(Debug, Clone)]
pub struct Principal {
    pub caller: Caller,
    /// The policy entry's name; "anonymous" when client authentication is off.
    pub name: Arc<str>,
    pub reads: Reads,
}

impl Principal {
    /// Every caller, when client authentication is off: one anonymous party that may
    /// read everything it (everyone) submitted.
    pub fn anonymous() -> Principal {
        Principal {
            caller: Caller::Anonymous,
            name: Arc::from("anonymous"),
            reads: Reads::All,
        }
    }

    /// The principal of a request inside a handler. A request the authoriser did not
    /// see (none are served so) is anonymous and reads only anonymous submissions.
    pub fn of_grpc<T>(request: &tonic::Request<T>) -> Principal {
        request
            .extensions()
            .get::<Principal>()
            .cloned()
            .unwrap_or_else(|| Principal {
                reads: Reads::Own,
                ..Principal::anonymous()
            })
    }

    /// The submitter to confine reads to: None when the caller may read everything.
    pub fn read_scope(&self) -> Option<&str> {
        match self.reads {
            Reads::All => None,
            Reads::Own => Some(&self.name),
        }
    }

    /// The SPIFFE ID the connection proved, if any.
    pub fn spiffe_id(&self) -> Option<String> {
        match &self.caller {
            Caller::Workload(id) => Some(id.as_str().to_owned()),
            Caller::Unnamed | Caller::Anonymous => None,
        }
    }
}
