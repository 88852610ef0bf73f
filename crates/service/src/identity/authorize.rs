//! The authoriser: a tower layer that asks the access policy about every call before
//! any handler decodes it. A denied call gets PERMISSION_DENIED naming the method and
//! never the policy (a caller learns what it may not do, not who may).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::access::{AccessPolicy, Decision};
use super::{Caller, Principal};

/// How calls are authorised.
#[derive(Debug, Clone)]
pub enum Access {
    /// Every call is allowed: plaintext without client authentication (`dev`, tests,
    /// `serve --allow-unauthenticated`).
    Open,
    /// Calls are allowed as the policy says.
    Enforced(Arc<AccessPolicy>),
}

impl Access {
    /// May this principal look a person up for `purpose`? Everyone may when callers
    /// are not authenticated at all.
    pub fn may_state_purpose(&self, principal: &Principal, purpose: &str) -> bool {
        match self {
            Access::Open => true,
            Access::Enforced(policy) => policy.may_state_purpose(&principal.name, purpose),
        }
    }

    /// May `caller` submit applications by `rails_application_id`? Everyone may when
    /// callers are not authenticated at all.
    pub fn may_name_rails_applications(&self, caller: &Caller) -> bool {
        match self {
            Access::Open => true,
            Access::Enforced(policy) => policy.may_name_rails_applications(caller),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthorizeLayer {
    access: Access,
}

impl AuthorizeLayer {
    pub fn new(access: Access) -> AuthorizeLayer {
        AuthorizeLayer { access }
    }
}

impl<S> tower::Layer<S> for AuthorizeLayer {
    type Service = Authorize<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Authorize {
            inner,
            access: self.access.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Authorize<S> {
    inner: S,
    access: Access,
}

type BoxFuture<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, B, RB> tower::Service<http::Request<B>> for Authorize<S>
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

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let Access::Enforced(policy) = &self.access else {
            request.extensions_mut().insert(Principal::anonymous());
            return Box::pin(self.inner.call(request));
        };
        let caller = Caller::of(&request);
        let path = request.uri().path();
        let method = crate::api::method_label(path);
        let refusal = match policy.decide(&caller, path) {
            Decision::Allowed(name) => {
                let principal = Principal {
                    reads: policy.reads_of(name),
                    name: Arc::from(name),
                    caller,
                };
                request.extensions_mut().insert(principal);
                return Box::pin(self.inner.call(request));
            }
            Decision::NotGranted(name) => {
                tracing::warn!(target: "dossier::authz", %caller, caller_name = name, method, "call refused: the access policy does not grant this method to this caller");
                "not granted"
            }
            Decision::UnknownCaller => {
                tracing::warn!(target: "dossier::authz", %caller, method, "call refused: the caller is not in the access policy");
                "unknown caller"
            }
        };
        metrics::counter!("dossier_authz_denied_total", "method" => method, "reason" => refusal)
            .increment(1);
        let status = tonic::Status::permission_denied(format!(
            "this caller may not call {}",
            method.trim_start_matches('/')
        ));
        Box::pin(std::future::ready(Ok(status.into_http())))
    }
}
