//! The tower layer in front of every gRPC service: it establishes the [`Caller`] of each
//! request (certificate identity, bearer token), asks [`policy::authorize`] and either
//! hands the request on with the caller in its extensions or answers the refusal itself.

use std::task::{Context as TaskContext, Poll};

use apitap_proto::auth::AUTHORIZATION;
use apitap_proto::identity::Identity;
use futures::future::BoxFuture;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::Status;
use tower::{Layer, Service};

use super::{policy, Caller, Mode};
use crate::raft::state_machine::SharedState;

#[derive(Clone)]
pub struct AuthLayer {
    mode: Mode,
    state: SharedState,
}

impl AuthLayer {
    pub fn new(mode: Mode, state: SharedState) -> Self {
        Self { mode, state }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;
    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            mode: self.mode,
            state: self.state.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    mode: Mode,
    state: SharedState,
}

impl<S> Auth<S> {
    fn caller<B>(&self, req: &http::Request<B>) -> Result<Caller, Status> {
        let cert = match req
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|i| i.peer_certs())
        {
            Some(certs) => match certs.first() {
                Some(c) => Some(Identity::from_cert(c).map_err(Status::unauthenticated)?),
                None => None,
            },
            None => None,
        };
        if self.mode == Mode::Enforced && cert.is_none() {
            return Err(Status::unauthenticated(
                "no client certificate: this cluster uses mutual TLS (--tls-ca/--tls-cert/--tls-key)",
            ));
        }
        let header = req.headers().get(AUTHORIZATION);
        let Some(header) = header else {
            return Ok(cert.map_or(Caller::Anonymous, Caller::Node));
        };
        let presented = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                Status::unauthenticated("the authorization header is not `Bearer <token>`")
            })?;
        let token = super::verify_token(&self.state, presented)?;
        Ok(Caller::Token { token, cert })
    }

    fn members(&self) -> Vec<u64> {
        let a = self
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        a.membership
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .collect()
    }
}

impl<S, B> Service<http::Request<B>> for Auth<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_string();
        let decided = self.caller(&req).and_then(|caller| {
            let members = self.members();
            let ctx = policy::Context {
                mode: self.mode,
                members: &members,
            };
            policy::authorize(&ctx, &caller, &path).map(|()| caller)
        });
        match decided {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
                Box::pin(self.inner.call(req))
            }
            Err(status) => {
                tracing::warn!(rpc = %path, code = ?status.code(), reason = %status.message(), "call refused");
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}
