//! Load shedding: at most so many unary calls in flight in this process. Past it a call
//! is answered at once with UNAVAILABLE and a RetryInfo, instead of queueing behind
//! the others until every caller's deadline has passed: a saturated pod answers
//! quickly, and the caller's retry (UNAVAILABLE is retryable) goes to another replica.
//! Health is never shed (a probe must see the pod serving while it is busy), nor are
//! WatchReport streams, which have caps of their own (`watch_limits`).
//!
//! While the health task finds the database unreachable (the pod is NOT_SERVING), every
//! call but health is refused the same way at once: it could only wait for the pool's
//! acquire timeout and fail, and its retry belongs on another replica.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Semaphore;
use tonic_types::{ErrorDetails, StatusExt as _};

/// How long a shed caller is asked to wait before it tries again.
const RETRY_AFTER: Duration = Duration::from_millis(250);
/// The same, while this pod cannot reach its database (the health task looks every
/// second).
const RETRY_AFTER_DATABASE: Duration = Duration::from_secs(1);

fn is_health(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
}

/// Paths that are not counted against the limit of calls in flight.
fn unlimited(path: &str) -> bool {
    is_health(path) || path == "/dossier.v1.UnderwritingService/WatchReport"
}

#[derive(Debug, Clone)]
pub struct ShedLayer {
    permits: Arc<Semaphore>,
    max: usize,
    database_up: Arc<AtomicBool>,
}

impl ShedLayer {
    /// `database_up`: set by the health task; false refuses every call but health.
    pub fn new(max_in_flight: usize, database_up: Arc<AtomicBool>) -> ShedLayer {
        ShedLayer {
            permits: Arc::new(Semaphore::new(max_in_flight)),
            max: max_in_flight,
            database_up,
        }
    }
}

fn refuse(
    path: &str,
    reason: &'static str,
    message: String,
    retry_after: Duration,
) -> tonic::Status {
    let method = super::method_label(path);
    metrics::counter!("dossier_rpc_shed_total", "method" => method, "reason" => reason)
        .increment(1);
    tonic::Status::with_error_details(
        tonic::Code::Unavailable,
        message,
        ErrorDetails::with_retry_info(Some(retry_after)),
    )
}

impl<S> tower::Layer<S> for ShedLayer {
    type Service = Shed<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Shed {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Shed<S> {
    inner: S,
    layer: ShedLayer,
}

type BoxFuture<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, B, RB> tower::Service<http::Request<B>> for Shed<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        if is_health(path) {
            return Box::pin(self.inner.call(request));
        }
        if !self.layer.database_up.load(Ordering::Relaxed) {
            let status = refuse(
                path,
                "database",
                "this replica cannot reach its database; retry after the RetryInfo delay (another replica may answer)".into(),
                RETRY_AFTER_DATABASE,
            );
            return Box::pin(std::future::ready(Ok(status.into_http())));
        }
        if unlimited(path) {
            return Box::pin(self.inner.call(request));
        }
        match self.layer.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let call = self.inner.call(request);
                Box::pin(async move {
                    // Held until the handler has answered: a unary call's whole work.
                    let response = call.await;
                    drop(permit);
                    response
                })
            }
            Err(_) => {
                let status = refuse(
                    path,
                    "saturated",
                    format!(
                        "this server has {} calls in flight, its limit; retry after the RetryInfo delay (another replica may answer)",
                        self.layer.max
                    ),
                    RETRY_AFTER,
                );
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}
