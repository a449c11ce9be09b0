//! What every call to the logic port passes through, outside the services: the origin
//! check and CORS for browsers, the count of calls by method and status, and the one
//! status tonic gets wrong for gim (a request over the size limit).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::extract::State;
use futures_util::future::{Either, Ready, ready};
use http::{HeaderName, HeaderValue, Method, StatusCode, header};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use crate::{metrics::Metrics, origins::Origins};

/// CORS for gRPC-Web. Tokens travel in headers, never cookies: credentials are never
/// allowed, so an origin is never reflected together with
/// `Access-Control-Allow-Credentials: true`.
pub fn cors(origins: &Origins) -> CorsLayer {
    let allow_origin = match origins {
        Origins::Any => AllowOrigin::any(),
        Origins::Only(allowed) => AllowOrigin::list(allowed.iter().cloned()),
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers(Any)
        .expose_headers([
            HeaderName::from_static("grpc-status"),
            HeaderName::from_static("grpc-message"),
            HeaderName::from_static("grpc-status-details-bin"),
        ])
        .max_age(Duration::from_secs(24 * 3600))
}

/// Refuses requests from origins that are not allowed with HTTP 403, before gRPC-Web
/// and CORS see them (so a refused preflight is a 403 too).
#[derive(Debug, Clone)]
pub struct OriginCheckLayer(pub Origins);

impl<S> tower::Layer<S> for OriginCheckLayer {
    type Service = OriginCheck<S>;

    fn layer(&self, inner: S) -> OriginCheck<S> {
        OriginCheck { inner, origins: self.0.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct OriginCheck<S> {
    inner: S,
    origins: Origins,
}

impl<S, B, R> tower::Service<http::Request<B>> for OriginCheck<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    R: Default,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Either<Ready<Result<http::Response<R>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if self.origins.allows(request.headers().get(header::ORIGIN)) {
            return Either::Right(self.inner.call(request));
        }
        let mut refused = http::Response::new(R::default());
        *refused.status_mut() = StatusCode::FORBIDDEN;
        Either::Left(ready(Ok(refused)))
    }
}

/// What `track_call` needs.
#[derive(Clone)]
pub struct Calls {
    pub metrics: Arc<Metrics>,
    pub max_request_bytes: usize,
}

/// Counts every call by method and status, with its latency; reports a request over the
/// size limit as RESOURCE_EXHAUSTED (tonic says OUT_OF_RANGE, which gim never means).
pub async fn track_call(
    State(calls): State<Calls>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.uri().path().to_owned();
    let started = Instant::now();
    let mut response = next.run(request).await;
    // A failed unary call answers with headers only, which carry the status; a
    // successful one sends it in trailers, after this point.
    let headers = response.headers_mut();
    if headers.get("grpc-status").is_some_and(|code| code == "11") {
        let message = format!(
            "the request is larger than the limit of {} bytes (logic.max_request_bytes)",
            calls.max_request_bytes
        );
        headers.insert("grpc-status", HeaderValue::from_static("8"));
        headers.insert("grpc-message", HeaderValue::from_str(&message).expect("an ASCII message"));
    }
    let code = headers.get("grpc-status").and_then(|v| v.to_str().ok()).unwrap_or("0").to_owned();
    calls.metrics.grpc_call(&method, &code, started.elapsed());
    response
}
