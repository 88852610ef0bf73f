//! Where the upstreams are and how Dossier talks to them: URLs, the upstreams file,
//! credentials.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use dossier_upstream::{Upstream, UpstreamSettings};

use super::{Secret, duration};

/// No `Debug`: it holds the Rails token.
#[derive(Clone, Args)]
pub struct UpstreamArgs {
    /// Base URL of the Rails backend.
    #[arg(long, env = "DOSSIER_RAILS_URL")]
    pub rails_url: Option<String>,
    /// Bearer token Dossier presents to the Rails backend. Environment only:
    /// DOSSIER_RAILS_TOKEN or DOSSIER_RAILS_TOKEN_FILE.
    #[arg(skip = Secret::from_env("DOSSIER_RAILS_TOKEN"))]
    pub rails_token: Secret,
    /// Base URL of the property records vendor.
    #[arg(long, env = "DOSSIER_PROPERTY_RECORDS_URL")]
    pub property_records_url: Option<String>,
    /// Base URL of the AVM vendor.
    #[arg(long, env = "DOSSIER_VALUATION_URL")]
    pub valuation_url: Option<String>,
    /// Base URL of the identity vendor.
    #[arg(long, env = "DOSSIER_IDENTITY_URL")]
    pub identity_url: Option<String>,
    /// Base URL of the contractor licence board.
    #[arg(long, env = "DOSSIER_LICENSING_URL")]
    pub licensing_url: Option<String>,
    /// Base URL of the business registry.
    #[arg(long, env = "DOSSIER_REGISTRY_URL")]
    pub registry_url: Option<String>,
    /// Base URL of the second AVM vendor (needed only when a valuation waterfall names
    /// `alt_valuation`).
    #[arg(long, env = "DOSSIER_ALT_VALUATION_URL")]
    pub alt_valuation_url: Option<String>,
    /// Base URL of the second identity vendor (needed only when an identity or
    /// bankruptcy waterfall names `alt_identity`).
    #[arg(long, env = "DOSSIER_ALT_IDENTITY_URL")]
    pub alt_identity_url: Option<String>,
    /// Per-upstream settings file (TOML): rates, timeouts, TTLs, retries, breaker.
    /// See docs/configuration.md; URLs given by flags override the file's.
    #[arg(long, env = "DOSSIER_UPSTREAMS_FILE")]
    pub upstreams_file: Option<PathBuf>,
    /// Longest a single upstream request may take, for every upstream (overrides the
    /// file).
    #[arg(long, env = "DOSSIER_UPSTREAM_TIMEOUT", value_parser = duration)]
    pub upstream_timeout: Option<Duration>,
}

impl UpstreamArgs {
    /// Tests: every upstream `serve` requires at `url`.
    #[cfg(test)]
    pub(crate) fn point_every_required_url_at(&mut self, url: &str) {
        for u in [
            &mut self.rails_url,
            &mut self.property_records_url,
            &mut self.valuation_url,
            &mut self.identity_url,
            &mut self.licensing_url,
            &mut self.registry_url,
        ] {
            *u = Some(url.to_owned());
        }
    }

    /// The upstream settings: defaults, then the file, then flags; an error names every
    /// upstream left without a URL.
    pub fn settings(&self) -> anyhow::Result<UpstreamSettings> {
        use dossier_upstream::settings::{UpstreamPolicy, parse_file};
        use dossier_upstream::waterfall::Waterfalls;
        let (mut policies, waterfalls) = match &self.upstreams_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!("cannot read upstreams file {}: {e}", path.display())
                })?;
                let refused = |e: String| {
                    anyhow::anyhow!("upstreams file {} is refused: {e}", path.display())
                };
                (
                    parse_file(&text).map_err(|e| refused(e.to_string()))?,
                    Waterfalls::parse_file(&text).map_err(refused)?,
                )
            }
            None => Default::default(),
        };
        let flags = [
            (
                Upstream::Rails,
                &self.rails_url,
                "--rails-url / DOSSIER_RAILS_URL",
            ),
            (
                Upstream::PropertyRecords,
                &self.property_records_url,
                "--property-records-url / DOSSIER_PROPERTY_RECORDS_URL",
            ),
            (
                Upstream::Valuation,
                &self.valuation_url,
                "--valuation-url / DOSSIER_VALUATION_URL",
            ),
            (
                Upstream::Identity,
                &self.identity_url,
                "--identity-url / DOSSIER_IDENTITY_URL",
            ),
            (
                Upstream::Licensing,
                &self.licensing_url,
                "--licensing-url / DOSSIER_LICENSING_URL",
            ),
            (
                Upstream::Registry,
                &self.registry_url,
                "--registry-url / DOSSIER_REGISTRY_URL",
            ),
            (
                Upstream::AltValuation,
                &self.alt_valuation_url,
                "--alt-valuation-url / DOSSIER_ALT_VALUATION_URL",
            ),
            (
                Upstream::AltIdentity,
                &self.alt_identity_url,
                "--alt-identity-url / DOSSIER_ALT_IDENTITY_URL",
            ),
        ];
        let mut missing = Vec::new();
        let mut credentials = std::collections::BTreeMap::new();
        for (name, url, flag) in flags {
            let policy = policies
                .entry(name)
                .or_insert_with(|| UpstreamPolicy::default_for(name));
            if let Some(url) = url {
                policy.base_url = Some(url.clone());
            }
            if let Some(timeout) = self.upstream_timeout {
                policy.timeout = timeout;
            }
            match &policy.base_url {
                // A fallback vendor is configured only when a waterfall names it (checked
                // with the waterfalls below).
                None if !Upstream::REQUIRED.contains(&name) => {}
                None => missing.push(flag),
                Some(url) => dossier_upstream::settings::check_base_url(url)
                    .map_err(|e| anyhow::anyhow!("upstream `{name}`: {e}"))?,
            }
            if let Some(var) = &policy.credential_env {
                let value = Secret::from_env(var)
                    .get()
                    .map_err(|e| anyhow::anyhow!("upstream `{name}`: {e}"))?
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "upstream `{name}` takes its credential from ${var} (or ${var}_FILE), which is not set"
                        )
                    })?
                    .to_owned();
                credentials.insert(name, value);
            }
        }
        if let Some(token) = self.rails_token.get()? {
            credentials.insert(Upstream::Rails, token.to_owned());
        }
        // A vendor a waterfall falls back to (or starts from, instead of the kind's own)
        // is a separate contract: it must be reachable and authenticated.
        for (vendor, key) in waterfalls.named_vendors() {
            if Upstream::REQUIRED.contains(&vendor) {
                continue;
            }
            let policy = &policies[&vendor];
            if policy.base_url.is_none() {
                anyhow::bail!(
                    "{key} names `{vendor}`, which has no URL: set [{vendor}] base_url in the upstreams file or DOSSIER_{}_URL",
                    vendor.as_str().to_uppercase()
                );
            }
            if !credentials.contains_key(&vendor) {
                anyhow::bail!(
                    "{key} names `{vendor}`, which has no credentials: set [{vendor}] credential_env in the upstreams file to the variable holding its token"
                );
            }
        }
        if !missing.is_empty() {
            anyhow::bail!(
                "upstream URLs are not configured: {}. Set them (or base_url in DOSSIER_UPSTREAMS_FILE), or run `dossier dev` to use the built-in simulators",
                missing.join(", ")
            );
        }
        Ok(UpstreamSettings {
            policies,
            credentials,
            waterfalls,
        })
    }
}
