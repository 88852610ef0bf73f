//! Every log line of a full flow validates against docs/log-schema.json, the contract
//! a log pipeline (Fluentd, Fluent Bit) parses by, and each call's line tells the
//! truth about how it ended: the status from the trailers, a cancelled call as
//! CANCELLED, a stream cut by shutdown as UNAVAILABLE.

use std::time::Duration;

use dossier_devkit::harness::{evaluate_request, eventually, example_application};
use dossier_devkit::sim::{Behaviour, Upstream};
use dossier_service::proto;
use dossier_service::proto::underwriting_service_client::UnderwritingServiceClient;
use serde_json::Value;
use tokio_stream::StreamExt as _;

use super::{OneReplica, caller_trace};
use crate::fleet::bounded;

const WITHIN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_of_a_full_flow_matches_the_schema_and_each_call_is_logged_as_it_ended() {
    bounded("log_lines", async {
        let replica = OneReplica::start("log_lines", &[]).await;
        let endpoint = replica.fleet.endpoints()[0].clone();
        let mut client = UnderwritingServiceClient::connect(endpoint.clone())
            .await
            .expect("connect");

        // A traced evaluation.
        let (trace_id, caller_span) = caller_trace();
        let mut request = evaluate_request("approve", "logs-approve");
        request.metadata_mut().insert(
            "traceparent",
            format!("00-{trace_id}-{caller_span}-01").parse().unwrap(),
        );
        client
            .evaluate_application(request)
            .await
            .expect("evaluated");

        // A background evaluation and its delivery.
        let submitted = client
            .submit_application(proto::SubmitApplicationRequest {
                idempotency_key: "logs-decline".into(),
                source: Some(proto::submit_application_request::Source::Application(
                    example_application("decline"),
                )),
            })
            .await
            .expect("submitted")
            .into_inner()
            .application_id;
        let submitted: uuid::Uuid = submitted.parse().unwrap();
        eventually("the submitted decision to reach Rails", WITHIN, || async {
            (!replica
                .sims
                .deliveries()
                .for_application(submitted)
                .is_empty())
            .then_some(())
        })
        .await;

        // A failing upstream.
        replica.sims.set_behaviour(
            Upstream::Valuation,
            Behaviour {
                error_rate: 1.0,
                ..Behaviour::default()
            },
        );
        client
            .evaluate_application(evaluate_request("refer", "logs-failing-valuation"))
            .await
            .expect("an evaluation with a failing vendor still answers");
        replica
            .sims
            .set_behaviour(Upstream::Valuation, Behaviour::default());

        // A caller's mistake.
        let missing = client
            .get_report(proto::GetReportRequest {
                application_id: uuid::Uuid::new_v4().to_string(),
            })
            .await
            .expect_err("no such application");
        assert_eq!(missing.code(), tonic::Code::NotFound);

        // A call the caller abandons mid-flight: the identity vendor hangs, the client
        // gives up once the vendor has the request.
        replica.sims.set_behaviour(
            Upstream::Identity,
            Behaviour {
                latency_ms: 60_000,
                ..Behaviour::default()
            },
        );
        let asked = replica.sims.stats(Upstream::Identity).total();
        let mut abandoning = client.clone();
        let abandoned = tokio::spawn(async move {
            let mut request = tonic::Request::new(proto::EvaluateApplicationRequest {
                idempotency_key: "logs-abandoned".into(),
                source: Some(proto::evaluate_application_request::Source::Application(
                    unseen_applicant("Abandoned"),
                )),
            });
            request.set_timeout(Duration::from_secs(30));
            abandoning.evaluate_application(request).await
        });
        eventually("the hung vendor to be asked", WITHIN, || async {
            (replica.sims.stats(Upstream::Identity).total() > asked).then_some(())
        })
        .await;
        abandoned.abort();
        let _ = abandoned.await;

        // A stream cut by the server's shutdown, which ends it UNAVAILABLE in its
        // trailers: an application still being evaluated (identity still hangs) is
        // watched while the replica stops.
        let watched = client
            .submit_application(proto::SubmitApplicationRequest {
                idempotency_key: "logs-watched".into(),
                source: Some(proto::submit_application_request::Source::Application(
                    unseen_applicant("Watched"),
                )),
            })
            .await
            .expect("submitted")
            .into_inner()
            .application_id;
        let mut stream = client
            .watch_report(proto::WatchReportRequest {
                application_id: watched,
            })
            .await
            .expect("watching")
            .into_inner();
        let _first = stream.next().await;

        let metrics = reqwest::get(format!(
            "http://{}/metrics",
            replica.fleet.replicas()[0].admin
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
        let mut fleet = replica.fleet;
        let ending = tokio::spawn(async move {
            let mut last = None;
            while let Some(item) = stream.next().await {
                last = Some(item);
            }
            last
        });
        fleet.terminate(0).await.expect("the replica stops");
        let ended = ending.await.unwrap();
        assert!(
            matches!(&ended, Some(Err(s)) if s.code() == tonic::Code::Unavailable),
            "the watch stream should end UNAVAILABLE at shutdown: {ended:?}"
        );
        drop(fleet);

        // Every line validates.
        let schema: Value = serde_json::from_str(
            &std::fs::read_to_string(
                dossier_devkit::harness::repository_root().join("docs/log-schema.json"),
            )
            .unwrap(),
        )
        .unwrap();
        let validator =
            jsonschema::validator_for(&schema).expect("the schema is valid JSON Schema");
        let lines = std::fs::read_to_string(replica.logs.path().join("dossier-0.log")).unwrap();
        let mut parsed = Vec::new();
        for (n, line) in lines.lines().enumerate() {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("line {} is not JSON ({e}): {line}", n + 1));
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| e.to_string())
                .collect();
            assert!(
                errors.is_empty(),
                "line {} breaks the schema: {errors:?}\n{line}",
                n + 1
            );
            parsed.push(value);
        }
        assert!(parsed.len() > 20, "only {} lines", parsed.len());

        let rpc = |method: &str, code: &str| {
            parsed
                .iter()
                .filter(|l| {
                    l["message"] == "rpc"
                        && l["method"] == format!("/dossier.v1.UnderwritingService/{method}")
                        && l["code"] == code
                })
                .collect::<Vec<_>>()
        };
        let traced = rpc("EvaluateApplication", "Ok");
        assert!(
            traced
                .iter()
                .any(|l| l["trace_id"] == trace_id.as_str() && l["caller"] == "anonymous"),
            "the traced call's line carries the caller's trace id: {traced:?}"
        );
        assert_eq!(rpc("GetReport", "NotFound").len(), 1);
        assert_eq!(
            rpc("EvaluateApplication", "Cancelled").len(),
            1,
            "the abandoned call"
        );
        assert_eq!(
            rpc("WatchReport", "Unavailable").len(),
            1,
            "the stream cut at shutdown"
        );
        assert!(
            parsed
                .iter()
                .any(|l| l["message"] == "job done" && l["job_kind"] == "deliver"),
            "job lines name their job"
        );
        assert!(
            parsed
                .iter()
                .any(|l| l["upstream"] == "valuation" && l["level"] != "INFO"),
            "the failing vendor is named in a warning"
        );
        // And the metric counts the abandoned call as the log does.
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("dossier_rpc_requests_total")
                    && l.contains(
                        r#"method="/dossier.v1.UnderwritingService/EvaluateApplication""#
                    )
                    && l.contains(r#"code="Cancelled""#)
                    && l.ends_with(" 1")),
            "no CANCELLED EvaluateApplication in the metrics"
        );
    })
    .await;
}

/// The approve example with an applicant no earlier call asked about: the identity
/// vendor is asked again (a cached answer would not reach the hung simulator).
fn unseen_applicant(last_name: &str) -> proto::Application {
    let mut application = example_application("approve");
    application.applicants[0].last_name = last_name.to_owned();
    application
}
