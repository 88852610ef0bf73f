//! The simulator configuration file and upstream names.

use serde_json::json;

use super::*;

#[test]
fn config_from_toml() {
    let config = SimConfig::from_toml_str(
        r#"
        bind = "127.0.0.1"

        [rails]
        port = 4001
        token = "local-token"

        [valuation]
        port = 4003
        latency_ms = 250
        error_rate = 0.1
        quota_per_second = 5
        fault = "stalled_body"
        fault_rate = 0.5

        [alt_valuation]
        port = 4007
        fault = "html_error"

        [alt_identity]
        error_rate = 0.2
        "#,
    )
    .unwrap();
    assert_eq!(config.rails_token, "local-token");
    assert_eq!(config.rails.port, Some(4001));
    assert_eq!(config.settings(Upstream::Valuation).port, Some(4003));
    assert_eq!(
        config.valuation.behaviour,
        Behaviour {
            latency_ms: 250,
            error_rate: 0.1,
            quota_per_second: Some(5.0),
            fault: Fault::StalledBody,
            fault_rate: 0.5,
        }
    );
    assert_eq!(config.identity, SimulatorSettings::default());
    // The second vendors have settings of their own, not their primary's.
    assert_eq!(config.settings(Upstream::AltValuation).port, Some(4007));
    assert_eq!(config.alt_valuation.behaviour.fault, Fault::HtmlError);
    assert_eq!(config.alt_valuation.behaviour.latency_ms, 0);
    assert_eq!(
        config.settings(Upstream::AltIdentity).behaviour.error_rate,
        0.2
    );

    assert_eq!(SimConfig::from_toml_str("").unwrap(), SimConfig::default());
    assert!(SimConfig::from_toml_str("[valuation]\nlatncy_ms = 5").is_err());
    assert!(SimConfig::from_toml_str("[valuation]\ntoken = \"x\"").is_err());
    assert!(SimConfig::from_toml_str("[alt_identity]\ntoken = \"x\"").is_err());
    assert!(SimConfig::from_toml_str("[alt_valuation]\nlatncy_ms = 5").is_err());
    assert!(SimConfig::from_toml_str("[valuation]\nerror_rate = 3.0").is_err());
    assert!(SimConfig::from_toml_str("[sanctions]\nport = 1").is_err());
}

#[test]
fn upstream_names_round_trip() {
    for upstream in Upstream::HTTP {
        assert_eq!(upstream.as_str().parse::<Upstream>().unwrap(), upstream);
        assert_eq!(
            serde_json::to_value(upstream).unwrap(),
            json!(upstream.as_str())
        );
    }
}
