//! Per-upstream settings: where it lives and how hard Dossier may lean on it.
//! Read from the upstreams file (`DOSSIER_UPSTREAMS_FILE`, TOML), with the URL flags
//! and environment variables as overrides; anything unset takes the defaults below.

use std::collections::BTreeMap;
use std::time::Duration;

use dossier_core::domain::Upstream;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamPolicy {
    /// Base URL, e.g. "https://api.vendor.example".
    pub base_url: Option<String>,
    /// Name of the environment variable holding the bearer credential (never the
    /// credential itself: files get committed, environments come from secret stores).
    pub credential_env: Option<String>,
    /// Longest a single try may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Sustained requests per second this upstream allows us.
    pub rate_per_second: f64,
    /// Requests that may be sent at once after a quiet period.
    pub burst: u32,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Share `rate_per_second` and `burst` across every pod through PostgreSQL (one
    /// extra round trip per real request), instead of applying them per pod.
    pub fleet_limit: bool,
    /// What one request costs, in cents, for the upstream-usage report.
    pub cost_cents: i32,
    /// How long an answer stays fresh, per kind of answer ("default" for the rest).
    #[serde(with = "ttl_map")]
    pub ttl: BTreeMap<String, Duration>,
    /// After expiry, how long an answer may still be served when the upstream fails.
    #[serde(with = "humantime_serde")]
    pub stale_grace: Duration,
    /// Entries kept in this pod's memory.
    pub l1_capacity: u64,
    pub retry: RetryPolicy,
    pub breaker: BreakerPolicy,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Tries in all, the first included; 1 disables retries.
    pub max_attempts: u32,
    /// Back-off before the first retry; doubles each time, with full jitter.
    #[serde(with = "humantime_serde")]
    pub base_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerPolicy {
    /// Open after this many failures in a row.
    pub consecutive_failures: u32,
    /// …or when at least this share of the requests in the window failed…
    pub error_rate: f64,
    /// …counting only windows with at least this many requests.
    pub min_requests: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// How long to stay open before letting probes through.
    #[serde(with = "humantime_serde")]
    pub open_for: Duration,
    /// Probes allowed at once while half-open.
    pub half_open_probes: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            consecutive_failures: 5,
            error_rate: 0.5,
            min_requests: 20,
            window: Duration::from_secs(30),
            open_for: Duration::from_secs(10),
            half_open_probes: 1,
        }
    }
}

impl Default for UpstreamPolicy {
    fn default() -> Self {
        UpstreamPolicy {
            base_url: None,
            credential_env: None,
            timeout: Duration::from_secs(5),
            rate_per_second: 20.0,
            burst: 20,
            concurrency: 32,
            fleet_limit: false,
            cost_cents: 0,
            ttl: BTreeMap::from([("default".to_owned(), Duration::from_secs(24 * 3600))]),
            stale_grace: Duration::from_secs(7 * 24 * 3600),
            l1_capacity: 10_000,
            retry: RetryPolicy::default(),
            breaker: BreakerPolicy::default(),
        }
    }
}

impl UpstreamPolicy {
    /// The defaults for a named upstream: vendors' typical prices and freshness.
    pub fn default_for(upstream: Upstream) -> UpstreamPolicy {
        let h = |hours: u64| Duration::from_secs(hours * 3600);
        let mut p = UpstreamPolicy::default();
        match upstream {
            Upstream::Rails => {
                // Our own backend: small TTL, the application may still be edited.
                p.ttl = BTreeMap::from([("default".into(), Duration::from_secs(60))]);
                p.rate_per_second = 50.0;
                p.burst = 50;
            }
            Upstream::PropertyRecords => {
                p.cost_cents = 35;
                p.ttl = BTreeMap::from([("default".into(), h(24)), ("not_found".into(), h(1))]);
            }
            Upstream::Valuation | Upstream::AltValuation => {
                p.cost_cents = 50;
                p.ttl = BTreeMap::from([("default".into(), h(24 * 7)), ("not_found".into(), h(1))]);
            }
            Upstream::Identity | Upstream::AltIdentity => {
                p.cost_cents = 75;
                // A 404 from the identity vendor means a wrong URL, not an answer: keep it
                // only briefly.
                p.ttl = BTreeMap::from([
                    ("default".into(), h(24)),
                    ("not_found".into(), Duration::from_secs(60)),
                ]);
            }
            Upstream::Licensing | Upstream::Registry => {
                p.cost_cents = 5;
                p.ttl = BTreeMap::from([("default".into(), h(12)), ("not_found".into(), h(1))]);
            }
            // Screened in-process: no HTTP, so nothing here applies.
            Upstream::Sanctions => {}
        }
        p
    }

    pub fn ttl_for(&self, kind: &str) -> Duration {
        self.ttl
            .get(kind)
            .or_else(|| self.ttl.get("default"))
            .copied()
            .unwrap_or(Duration::from_secs(3600))
    }

    /// Refuses settings that cannot work, naming the upstream and the setting.
    pub fn validate(&self, name: Upstream) -> Result<(), String> {
        let mut problems = Vec::new();
        if !(self.rate_per_second > 0.0 && self.rate_per_second.is_finite()) {
            problems.push("rate_per_second must be a positive number");
        }
        if self.burst == 0 {
            problems.push("burst must be at least 1");
        }
        if self.concurrency == 0 {
            problems.push("concurrency must be at least 1");
        }
        if self.timeout.is_zero() {
            problems.push("timeout must be more than zero");
        }
        if self.retry.max_attempts == 0 {
            problems.push("retry.max_attempts must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.breaker.error_rate) {
            problems.push("breaker.error_rate must be between 0 and 1");
        }
        if self.breaker.half_open_probes == 0 {
            problems.push("breaker.half_open_probes must be at least 1");
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("upstream `{name}`: {}", problems.join("; ")))
        }
    }
}

mod ttl_map {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Duration>, D::Error> {
        let raw = BTreeMap::<String, String>::deserialize(d)?;
        raw.into_iter()
            .map(|(k, v)| {
                humantime::parse_duration(&v)
                    .map(|d| (k, d))
                    .map_err(serde::de::Error::custom)
            })
            .collect()
    }
}

/// The upstreams file: one table per upstream.
/// Whether Dossier may talk to `base_url`: `https://`, or plain `http://` to a loopback
/// address only (the simulators, a local sidecar proxy). Requests carry SSNs and bearer
/// credentials, which must never cross a network in the clear. The error names the
/// problem, never a token (URLs carry none).
pub fn check_base_url(base_url: &str) -> Result<(), String> {
    let url = url::Url::parse(base_url)
        .map_err(|e| format!("base URL {base_url:?} is not a URL ({e})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "base URL of host {:?} carries credentials; use credential_env instead",
            url.host_str().unwrap_or("")
        ));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        "http" => Err(format!(
            "base URL {base_url:?} is plain http to a host that is not loopback; use https:// (requests carry personal data and credentials)"
        )),
        other => Err(format!(
            "base URL {base_url:?} has scheme {other:?}; only https:// (or http:// to loopback) is used"
        )),
    }
}

/// A loopback host: 127.0.0.0/8, ::1 or `localhost`.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        // Non-special schemes (postgres://) leave an IP address as an opaque host.
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost")
                || d.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        None => false,
    }
}

pub fn parse_file(text: &str) -> anyhow::Result<BTreeMap<Upstream, UpstreamPolicy>> {
    let raw: BTreeMap<String, toml::Value> = toml::from_str(text)?;
    let mut out = BTreeMap::new();
    for (key, value) in raw {
        // Read by `waterfall::Waterfalls::parse_file`.
        if key == "waterfalls" {
            continue;
        }
        let name = match Upstream::parse(&key) {
            Some(u) if Upstream::HTTP.contains(&u) => u,
            _ => {
                let known: Vec<&str> = Upstream::HTTP.iter().map(|u| u.as_str()).collect();
                anyhow::bail!(
                    "unknown upstream `{key}` in the upstreams file; known: {}",
                    known.join(", ")
                );
            }
        };
        // Start from the upstream's defaults, then apply what the file sets.
        let mut merged = toml::Value::try_from(DefaultsView(&UpstreamPolicy::default_for(name)))?;
        merge(&mut merged, value);
        let policy: UpstreamPolicy = merged
            .try_into()
            .map_err(|e| anyhow::anyhow!("upstream `{name}`: {e}"))?;
        policy.validate(name).map_err(anyhow::Error::msg)?;
        out.insert(name, policy);
    }
    Ok(out)
}

fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) if existing.is_table() && v.is_table() && k != "ttl" => {
                        merge(existing, v)
                    }
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// Serialises a policy in the file's own shape, so defaults and file merge cleanly.
struct DefaultsView<'a>(&'a UpstreamPolicy);

impl serde::Serialize for DefaultsView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let p = self.0;
        let d = |d: Duration| humantime::format_duration(d).to_string();
        let mut m = s.serialize_map(None)?;
        if let Some(u) = &p.base_url {
            m.serialize_entry("base_url", u)?;
        }
        if let Some(c) = &p.credential_env {
            m.serialize_entry("credential_env", c)?;
        }
        m.serialize_entry("timeout", &d(p.timeout))?;
        m.serialize_entry("rate_per_second", &p.rate_per_second)?;
        m.serialize_entry("burst", &p.burst)?;
        m.serialize_entry("concurrency", &p.concurrency)?;
        m.serialize_entry("fleet_limit", &p.fleet_limit)?;
        m.serialize_entry("cost_cents", &p.cost_cents)?;
        m.serialize_entry(
            "ttl",
            &p.ttl
                .iter()
                .map(|(k, v)| (k.clone(), d(*v)))
                .collect::<BTreeMap<_, _>>(),
        )?;
        m.serialize_entry("stale_grace", &d(p.stale_grace))?;
        m.serialize_entry("l1_capacity", &p.l1_capacity)?;
        m.serialize_entry(
            "retry",
            &BTreeMap::from([
                (
                    "max_attempts",
                    toml::Value::Integer(p.retry.max_attempts.into()),
                ),
                ("base_backoff", toml::Value::String(d(p.retry.base_backoff))),
                ("max_backoff", toml::Value::String(d(p.retry.max_backoff))),
            ]),
        )?;
        m.serialize_entry(
            "breaker",
            &BTreeMap::from([
                (
                    "consecutive_failures",
                    toml::Value::Integer(p.breaker.consecutive_failures.into()),
                ),
                ("error_rate", toml::Value::Float(p.breaker.error_rate)),
                (
                    "min_requests",
                    toml::Value::Integer(p.breaker.min_requests.into()),
                ),
                ("window", toml::Value::String(d(p.breaker.window))),
                ("open_for", toml::Value::String(d(p.breaker.open_for))),
                (
                    "half_open_probes",
                    toml::Value::Integer(p.breaker.half_open_probes.into()),
                ),
            ]),
        )?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_are_https_unless_they_are_on_loopback() {
        for ok in [
            "https://records.vendor.example",
            "https://10.0.0.7:8443/api",
            "http://127.0.0.1:8080",
            "http://127.9.9.9",
            "http://[::1]:9000",
            "http://localhost:3000/rails",
        ] {
            assert_eq!(check_base_url(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("http://records.vendor.example", "plain http"),
            ("http://10.0.0.7", "plain http"),
            ("http://127.0.0.1.evil.example", "plain http"),
            ("ftp://records.vendor.example", "scheme"),
            (
                "https://user:pw@records.vendor.example",
                "carries credentials",
            ),
            ("records.vendor.example", "not a URL"),
        ] {
            let e = check_base_url(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("pw@"), "{e}");
        }
    }

    #[test]
    fn file_overrides_merge_over_defaults() {
        let parsed = parse_file(
            r#"
            [property_records]
            base_url = "https://records.example"
            rate_per_second = 5
            [property_records.retry]
            max_attempts = 1
            [property_records.ttl]
            default = "2h"
            "#,
        )
        .unwrap();
        let p = &parsed[&Upstream::PropertyRecords];
        assert_eq!(p.base_url.as_deref(), Some("https://records.example"));
        assert_eq!(p.rate_per_second, 5.0);
        assert_eq!(p.retry.max_attempts, 1);
        assert_eq!(
            p.retry.base_backoff,
            Duration::from_millis(100),
            "unset keys keep defaults"
        );
        assert_eq!(p.cost_cents, 35);
        assert_eq!(p.ttl_for("default"), Duration::from_secs(7200));
        assert_eq!(
            p.ttl_for("not_found"),
            Duration::from_secs(7200),
            "a ttl table replaces the defaults"
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_upstream_named() {
        let e = parse_file("[vendorx]\nrate_per_second = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("vendorx"), "{e}");
        let e = parse_file("[sanctions]\nrate_per_second = 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown upstream `sanctions`"),
            "the SDN list is screened in-process and has no HTTP settings: {e}"
        );
        let e = parse_file("[identity]\nrate_per_second = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("identity") && e.contains("rate_per_second"),
            "{e}"
        );
        let e = parse_file("[identity]\nrate = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("identity") && e.contains("rate"), "{e}");
    }
}
