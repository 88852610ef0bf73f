//! WatchReport: a report's checks as they finish, then its decision, on one stream.

use std::collections::HashSet;
use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use tonic::{Request, Response, Status};

use super::error::ApiError;
use super::underwriting::{UnderwritingApi, WATCH, note_application, parse_id};
use super::{accesses, convert};
use crate::identity::Principal;
use crate::proto;

/// How often a watcher re-reads the report even without a notification.
const WATCH_RESYNC: Duration = Duration::from_secs(5);

pub type WatchStream =
    Pin<Box<dyn Stream<Item = Result<proto::WatchReportResponse, Status>> + Send>>;

pub(super) async fn watch_report(
    api: &UnderwritingApi,
    request: Request<proto::WatchReportRequest>,
) -> Result<Response<WatchStream>, Status> {
    let id = parse_id(&request.get_ref().application_id, "application_id")?;
    note_application(&request, id);
    let permit = api
        .watch_limits
        .try_open(&crate::identity::Caller::of_grpc(&request))?;
    // Subscribe before the first read, so no change between the two is missed.
    let mut changes = api.notifications.subscribe_reports();
    // Fail fast with NOT_FOUND rather than an empty stream.
    let principal = Principal::of_grpc(&request);
    api.load_report(&principal, id).await?;
    accesses::applications(&api.access_log, &principal, WATCH, [id]).await?;
    let store = api.underwriter.store.clone();
    let notices = api.underwriter.notices.clone();
    let stopping = api.stopping.clone();
    let stream = async_stream_from(move |tx| async move {
        let _permit = permit; // held while the stream is open
        let mut sent: HashSet<(dossier_core::domain::CheckKind, String)> = HashSet::new();
        loop {
            let report = match store.report(id).await {
                Ok(Some(r)) => r,
                Ok(None) => {
                    let _ = tx
                        .send(Err(Status::not_found(format!(
                            "application {id} was deleted"
                        ))))
                        .await;
                    return;
                }
                Err(e) => {
                    let _ = tx.send(Err(ApiError::from(e).into())).await;
                    return;
                }
            };
            for check in &report.checks {
                if sent.insert((check.kind, check.subject.clone())) {
                    let event = proto::WatchReportResponse {
                        event: Some(proto::watch_report_response::Event::Check(
                            convert::check_result(check),
                        )),
                    };
                    if tx.send(Ok(event)).await.is_err() {
                        return; // the caller went away
                    }
                }
            }
            if report.decision.is_some() {
                let event = proto::WatchReportResponse {
                    event: Some(proto::watch_report_response::Event::Decided(
                        convert::report(&report, &notices),
                    )),
                };
                let _ = tx.send(Ok(event)).await;
                return;
            }
            // Wait for a change to this application, or resync periodically.
            let wait = async {
                loop {
                    match changes.recv().await {
                        Ok(changed) if changed == id => return,
                        Ok(_) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await
                        }
                    }
                }
            };
            tokio::select! {
                _ = wait => {}
                _ = tokio::time::sleep(WATCH_RESYNC) => {}
                _ = tx.closed() => return,
                _ = stopping.cancelled() => {
                    let _ = tx.send(Err(Status::unavailable("this server is shutting down; call WatchReport again to continue"))).await;
                    return;
                }
            }
        }
    });
    Ok(Response::new(Box::pin(stream)))
}

/// A stream fed by a spawned task through a small channel (back-pressure included).
fn async_stream_from<F, Fut>(f: F) -> impl Stream<Item = Result<proto::WatchReportResponse, Status>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<proto::WatchReportResponse, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
