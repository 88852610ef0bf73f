//! Request validation and conversion: any bytes as a SubmitApplicationRequest (the
//! gRPC path) or as an application file (the JSON path of `dossier evaluate`), through
//! the same validation the API runs. Nothing may panic; every input is answered.
#![no_main]

use std::sync::LazyLock;

use dossier_core::policy::{LoadedPolicy, Program};
use dossier_service::api::validate;
use dossier_service::proto;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

static PROGRAM: LazyLock<Program> = LazyLock::new(|| LoadedPolicy::default_policy().policy.program);

fn check(application: &proto::Application) {
    let _ = validate::application(application, "application", &PROGRAM);
}

fn check_source(source: &proto::evaluate_application_request::Source) {
    match source {
        proto::evaluate_application_request::Source::Application(a) => check(a),
        proto::evaluate_application_request::Source::RailsApplicationId(id) => {
            let _ = validate::rails_application_id(id, "rails_application_id");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = proto::SubmitApplicationRequest::decode(data) {
        let _ = validate::idempotency_key(&request.idempotency_key, "idempotency_key", true);
        match &request.source {
            Some(proto::submit_application_request::Source::Application(a)) => check(a),
            Some(proto::submit_application_request::Source::RailsApplicationId(id)) => {
                let _ = validate::rails_application_id(id, "rails_application_id");
            }
            None => {}
        }
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(source) = dossier_service::cli::evaluate::parse_file(text)
    {
        check_source(&source);
    }
});
