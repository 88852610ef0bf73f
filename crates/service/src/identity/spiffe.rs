//! SPIFFE IDs: what a workload's X.509-SVID says it is.
//!
//! An X509-SVID carries exactly one URI SAN, `spiffe://<trust domain>/<path>`
//! (SPIFFE-ID and X509-SVID specifications). The chain is verified by rustls against
//! the trust bundle before this module sees the certificate; here the identity is only
//! read and checked for form.

use std::fmt;
use std::sync::Arc;

/// A well-formed SPIFFE ID. Cheap to clone (one shared string): every request of a
/// connection carries it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId(Arc<str>);

/// Why a string or a certificate does not name a workload. The text never repeats the
/// offending value: it may come from anyone who can open a connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeIdError {
    #[error("a SPIFFE ID starts with spiffe://")]
    Scheme,
    #[error("the trust domain is empty or has characters other than a-z 0-9 . - _")]
    TrustDomain,
    #[error(
        "the path has an empty, `.` or `..` segment, or characters other than A-Z a-z 0-9 . - _"
    )]
    Path,
    #[error("a SPIFFE ID is at most 2048 bytes")]
    TooLong,
    #[error("the certificate cannot be parsed")]
    Certificate,
    #[error("the certificate has no spiffe:// URI SAN")]
    Missing,
    #[error("the certificate has more than one URI SAN (an X509-SVID has exactly one)")]
    Several,
}

impl SpiffeId {
    pub fn parse(s: &str) -> Result<SpiffeId, SpiffeIdError> {
        if s.len() > 2048 {
            return Err(SpiffeIdError::TooLong);
        }
        let rest = s.strip_prefix("spiffe://").ok_or(SpiffeIdError::Scheme)?;
        let (domain, path) = rest.split_once('/').unwrap_or((rest, ""));
        let domain_ok = !domain.is_empty()
            && domain
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if !domain_ok {
            return Err(SpiffeIdError::TrustDomain);
        }
        // `spiffe://td` names the trust domain itself; every segment after it is
        // non-empty, so `spiffe://td/` and `spiffe://td/a//b` are refused.
        if rest.contains('/') {
            for segment in path.split('/') {
                let ok = !segment.is_empty()
                    && segment != "."
                    && segment != ".."
                    && segment
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
                if !ok {
                    return Err(SpiffeIdError::Path);
                }
            }
        }
        Ok(SpiffeId(s.into()))
    }

    /// The SPIFFE ID of an X509-SVID (DER). A chain-verified certificate without one
    /// is a workload Dossier cannot name, and is refused like an unknown one.
    pub fn from_certificate(der: &[u8]) -> Result<SpiffeId, SpiffeIdError> {
        use x509_parser::extensions::GeneralName;
        use x509_parser::prelude::{FromDer, X509Certificate};
        let (_, cert) = X509Certificate::from_der(der).map_err(|_| SpiffeIdError::Certificate)?;
        let san = cert
            .subject_alternative_name()
            .map_err(|_| SpiffeIdError::Certificate)?
            .ok_or(SpiffeIdError::Missing)?;
        let mut uris = san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::URI(uri) => Some(*uri),
                _ => None,
            });
        let uri = uris.next().ok_or(SpiffeIdError::Missing)?;
        if uris.next().is_some() {
            return Err(SpiffeIdError::Several);
        }
        if !uri.starts_with("spiffe://") {
            return Err(SpiffeIdError::Missing);
        }
        SpiffeId::parse(uri)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `lender.example` of `spiffe://lender.example/ns/x`.
    pub fn trust_domain(&self) -> &str {
        let rest = &self.0["spiffe://".len()..];
        rest.split_once('/').map_or(rest, |(domain, _)| domain)
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_ids_are_checked_for_form() {
        let cases: &[(&str, Result<(), SpiffeIdError>)] = &[
            ("spiffe://lender.example/ns/origination/sa/api", Ok(())),
            ("spiffe://lender.example", Ok(())),
            ("spiffe://td-1_x.example/a.b/c-d/E_F", Ok(())),
            ("https://lender.example/ns/a", Err(SpiffeIdError::Scheme)),
            ("SPIFFE://lender.example/a", Err(SpiffeIdError::Scheme)),
            ("spiffe:///ns/a", Err(SpiffeIdError::TrustDomain)),
            ("spiffe://Lender.example/a", Err(SpiffeIdError::TrustDomain)),
            (
                "spiffe://lender.example:443/a",
                Err(SpiffeIdError::TrustDomain),
            ),
            (
                "spiffe://user@lender.example/a",
                Err(SpiffeIdError::TrustDomain),
            ),
            ("spiffe://lender.example/", Err(SpiffeIdError::Path)),
            ("spiffe://lender.example/a//b", Err(SpiffeIdError::Path)),
            ("spiffe://lender.example/a/../b", Err(SpiffeIdError::Path)),
            ("spiffe://lender.example/a/./b", Err(SpiffeIdError::Path)),
            ("spiffe://lender.example/a?b=c", Err(SpiffeIdError::Path)),
            ("spiffe://lender.example/a#b", Err(SpiffeIdError::Path)),
            ("spiffe://lender.example/a%2Fb", Err(SpiffeIdError::Path)),
        ];
        for (input, expected) in cases {
            assert_eq!(SpiffeId::parse(input).map(|_| ()), *expected, "{input:?}");
        }
        let long = format!("spiffe://td/{}", "a".repeat(2048));
        assert_eq!(SpiffeId::parse(&long), Err(SpiffeIdError::TooLong));
        let id = SpiffeId::parse("spiffe://lender.example/ns/a").unwrap();
        assert_eq!(id.trust_domain(), "lender.example");
        assert_eq!(
            SpiffeId::parse("spiffe://lender.example")
                .unwrap()
                .trust_domain(),
            "lender.example"
        );
    }

    fn certificate(sans: Vec<rcgen::SanType>) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = sans;
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn uri(s: &str) -> rcgen::SanType {
        rcgen::SanType::URI(s.try_into().unwrap())
    }

    #[test]
    fn the_identity_of_a_certificate_is_its_one_spiffe_uri() {
        let one = certificate(vec![
            rcgen::SanType::DnsName("api.origination".try_into().unwrap()),
            uri("spiffe://lender.example/ns/origination/sa/api"),
        ]);
        assert_eq!(
            SpiffeId::from_certificate(&one).unwrap().as_str(),
            "spiffe://lender.example/ns/origination/sa/api"
        );
        let cases = [
            (
                certificate(vec![rcgen::SanType::DnsName("a".try_into().unwrap())]),
                SpiffeIdError::Missing,
            ),
            (
                certificate(vec![uri("https://a.example/x")]),
                SpiffeIdError::Missing,
            ),
            (
                certificate(vec![
                    uri("spiffe://a.example/x"),
                    uri("spiffe://a.example/y"),
                ]),
                SpiffeIdError::Several,
            ),
            (
                certificate(vec![uri("spiffe://A.example/x")]),
                SpiffeIdError::TrustDomain,
            ),
            (b"not a certificate".to_vec(), SpiffeIdError::Certificate),
        ];
        for (der, expected) in cases {
            assert_eq!(SpiffeId::from_certificate(&der), Err(expected));
        }
    }
}
