//! A caller's W3C trace followed through Dossier: the RPC, the background evaluation
//! job it queued, every check group and upstream question under it, every HTTP try,
//! the delivery to Rails; exported over OTLP to a real receiver, and passed on to the
//! simulators in `traceparent`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use dossier_devkit::harness::{eventually, example_application};
use dossier_devkit::otlp_receiver::{OtlpReceiver, ReceivedSpan};
use dossier_devkit::sim::Upstream;
use dossier_service::proto;
use dossier_service::proto::underwriting_service_client::UnderwritingServiceClient;

use super::{OneReplica, caller_trace};
use crate::fleet::bounded;

const WITHIN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_trace_covers_every_check_upstream_call_and_job() {
    bounded("traces", async {
        let receiver = OtlpReceiver::start()
            .await
            .expect("the OTLP receiver starts");
        let endpoint = receiver.endpoint();
        let replica = OneReplica::start(
            "traces",
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                // Export every 100 ms rather than every 5 s: the test waits less.
                ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ],
        )
        .await;
        let (trace_id, caller_span) = caller_trace();

        let mut request = tonic::Request::new(proto::SubmitApplicationRequest {
            idempotency_key: "traced-1".into(),
            source: Some(proto::submit_application_request::Source::Application(
                example_application("approve"),
            )),
        });
        request.metadata_mut().insert(
            "traceparent",
            format!("00-{trace_id}-{caller_span}-01").parse().unwrap(),
        );
        let mut client = UnderwritingServiceClient::connect(replica.fleet.endpoints()[0].clone())
            .await
            .expect("connect");
        let application_id = client
            .submit_application(request)
            .await
            .expect("submitted")
            .into_inner()
            .application_id;

        // The background evaluation, then the delivery of its decision to Rails.
        let application: uuid::Uuid = application_id.parse().unwrap();
        eventually("the decision to reach Rails", WITHIN, || async {
            (!replica
                .sims
                .deliveries()
                .for_application(application)
                .is_empty())
            .then_some(())
        })
        .await;

        // Everything below arrives in batches: wait until the delivery's HTTP try has.
        let spans = eventually("the delivery's spans to be exported", WITHIN, || async {
            let spans = receiver.trace(&trace_id);
            spans.iter().any(is_rails_delivery).then_some(spans)
        })
        .await;
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        let by_id: HashMap<&str, &ReceivedSpan> =
            spans.iter().map(|s| (s.span_id.as_str(), s)).collect();

        // One tree under the caller's span: every span's parent is in the trace, or is
        // the caller's own span.
        for span in &spans {
            assert!(
                span.parent_span_id == caller_span
                    || by_id.contains_key(span.parent_span_id.as_str()),
                "span {:?} hangs off {} which is not in the trace: {names:?}",
                span.name,
                span.parent_span_id
            );
            assert_eq!(span.service_name, "dossier");
        }
        let rpc = spans
            .iter()
            .find(|s| s.name == "/dossier.v1.UnderwritingService/SubmitApplication")
            .unwrap_or_else(|| panic!("no RPC span: {names:?}"));
        assert_eq!(
            rpc.parent_span_id, caller_span,
            "the RPC continues the caller's span"
        );
        assert_eq!(rpc.attribute("rpc.grpc.status_code"), Some("0"));

        // The jobs the call queued continue its trace.
        for job in ["job evaluate", "job deliver"] {
            assert!(names.contains(&job), "no {job:?} span: {names:?}");
        }
        // One tier (the built-in policy is parallel), and a span per question asked.
        for group in [
            "checks tier 0",
            "gather property_records",
            "gather valuation",
            "gather licensing",
            "gather registry",
            "gather identity applicant 0",
            "gather income applicant 0",
            "gather bankruptcy applicant 0",
        ] {
            let span = spans
                .iter()
                .find(|s| s.name == group)
                .unwrap_or_else(|| panic!("no {group:?} span: {names:?}"));
            assert!(
                ancestors(span, &by_id).any(|a| a.name == "evaluation"),
                "{group:?} is not under the evaluation"
            );
        }
        // Every upstream was asked under a question span that says where the answer
        // came from; a first evaluation fetches everything.
        let questions: Vec<&ReceivedSpan> = spans
            .iter()
            .filter(|s| s.attribute("question").is_some() && s.name.contains('.'))
            .collect();
        for upstream in [
            "property_records",
            "valuation",
            "licensing",
            "registry",
            "identity",
        ] {
            let asked: Vec<&&ReceivedSpan> = questions
                .iter()
                .filter(|s| s.attribute("upstream") == Some(upstream))
                .collect();
            assert!(!asked.is_empty(), "no question to {upstream}: {names:?}");
            for q in asked {
                assert!(
                    matches!(
                        q.attribute("cache"),
                        Some("fetched" | "coalesced" | "l2_hit")
                    ),
                    "{}: cache {:?}",
                    q.name,
                    q.attribute("cache")
                );
            }
            let tries: Vec<&ReceivedSpan> = spans
                .iter()
                .filter(|s| s.kind == 3 && s.attribute("upstream") == Some(upstream))
                .collect();
            assert!(!tries.is_empty(), "no HTTP try to {upstream}");
            for t in tries {
                assert!(t.attribute("http.response.status_code").is_some(), "{t:?}");
                assert!(
                    ancestors(t, &by_id).any(|a| a.name == "evaluation"),
                    "HTTP try {} is not under the evaluation",
                    t.name
                );
            }
        }

        // And the simulators saw the trace in the traceparent of the requests (the
        // second vendors are asked only by waterfalls, which this test has none of).
        for upstream in Upstream::REQUIRED {
            assert!(
                replica.sims.trace_ids(upstream).contains(&trace_id),
                "{upstream:?} never received traceparent with the caller's trace id"
            );
        }

        // The replica's log lines of the call and of its jobs carry the trace id.
        let traced: HashSet<String> = replica
            .log_lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|l| l["trace_id"] == trace_id.as_str())
            .filter_map(|l| l["message"].as_str().map(str::to_owned))
            .collect();
        for message in ["rpc", "job done"] {
            assert!(
                traced.contains(message),
                "no {message:?} line with the trace id: {traced:?}"
            );
        }
        eprintln!("{} spans in the caller's trace: {names:?}", spans.len());
        replica.fleet.shutdown().await;
    })
    .await;
}

fn is_rails_delivery(span: &ReceivedSpan) -> bool {
    span.kind == 3
        && span.attribute("upstream") == Some("rails")
        && span
            .attribute("endpoint")
            .is_some_and(|e| e.contains("decision"))
}

/// A span's ancestors within the trace, nearest first.
fn ancestors<'a>(
    span: &'a ReceivedSpan,
    by_id: &'a HashMap<&'a str, &'a ReceivedSpan>,
) -> impl Iterator<Item = &'a ReceivedSpan> + 'a {
    std::iter::successors(by_id.get(span.parent_span_id.as_str()).copied(), |s| {
        by_id.get(s.parent_span_id.as_str()).copied()
    })
}
