//! The gRPC surface: tonic handlers that validate, convert proto ⇄ domain and map
//! errors to `Status`, plus the layers every call passes (log and metrics, load
//! shedding).

mod accesses;
pub mod convert;
pub mod data;
pub mod error;
mod funding;
mod page_token;
mod rpc_log;
mod shed;
pub mod underwriting;
pub mod validate;
mod watch;
pub mod watch_limits;

use std::collections::HashSet;
use std::sync::LazyLock;
use std::time::Duration;

use prost::Message as _;

pub use rpc_log::{RpcLog, RpcLogLayer};
pub use shed::ShedLayer;

/// Every method the server serves, as `/package.Service/Method`, read once from the
/// descriptor sets it registers (Dossier's, grpc.health.v1, reflection v1 and v1alpha).
static METHODS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    let mut methods = HashSet::new();
    for set in [
        crate::proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ] {
        let set = prost_types::FileDescriptorSet::decode(set)
            .expect("a descriptor set compiled into the binary decodes");
        for file in set.file {
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                    // Leaked once, at first use: a fixed set of a few dozen strings that
                    // lives as long as the process.
                    methods.insert(&*Box::leak(path.into_boxed_str()));
                }
            }
        }
    }
    methods
});

/// Every method the server serves, as `/package.Service/Method`.
pub fn served_methods() -> &'static HashSet<&'static str> {
    &METHODS
}

/// The `method` label and log field of a request: its path when it is a method the
/// server serves, else `unknown`, so made-up paths cannot grow the metrics without
/// bound (one series per path) or fill the logs with caller-chosen strings.
pub fn method_label(path: &str) -> &'static str {
    METHODS.get(path).copied().unwrap_or("unknown")
}

/// The longest a unary call may take, whatever the caller's grpc-timeout says (the
/// server also enforces it: `server.rs`). A caller asking for an hour would otherwise
/// hold a worker-sized share of the server, and of the vendors' quotas, that long.
/// EvaluateApplication needs 30 s at most.
pub const MAX_CALL_DURATION: Duration = Duration::from_secs(60);

/// The time the caller gave this call: its grpc-timeout, at most
/// [`MAX_CALL_DURATION`]; `None` when it sent none.
pub fn caller_budget<T>(request: &tonic::Request<T>) -> Option<Duration> {
    request
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
        .map(|d| d.min(MAX_CALL_DURATION))
}

/// grpc-timeout is "<digits><unit>", unit one of H M S m u n.
pub fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_header() {
        assert_eq!(parse_grpc_timeout("10S"), Some(Duration::from_secs(10)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout(""), None);
        assert_eq!(parse_grpc_timeout("10x"), None);
    }

    #[test]
    fn a_callers_deadline_is_honoured_up_to_the_cap() {
        let with = |timeout: Option<&str>| {
            let mut r = tonic::Request::new(());
            if let Some(t) = timeout {
                r.metadata_mut().insert("grpc-timeout", t.parse().unwrap());
            }
            caller_budget(&r)
        };
        assert_eq!(with(Some("5S")), Some(Duration::from_secs(5)));
        assert_eq!(with(Some("1H")), Some(MAX_CALL_DURATION));
        assert_eq!(with(Some("99999999M")), Some(MAX_CALL_DURATION));
        assert_eq!(with(Some("bogus")), None);
        assert_eq!(with(None), None);
    }

    #[test]
    fn only_served_methods_become_labels() {
        for served in [
            "/dossier.v1.UnderwritingService/SubmitApplication",
            "/dossier.v1.DataService/GetPropertyProfile",
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ] {
            assert_eq!(method_label(served), served);
        }
        for made_up in [
            "/dossier.v1.Bogus1/Call",
            "/dossier.v1.UnderwritingService/NoSuchMethod",
            "/grpc.health.v1.Health/Check/extra",
            "/",
            "",
        ] {
            assert_eq!(method_label(made_up), "unknown", "{made_up:?}");
        }
    }
}
