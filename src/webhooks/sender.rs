//! Posts one signed event to one endpoint, over HTTP or HTTPS (rustls, the web's roots).
//! Redirects are not followed: a receiver that moved must be updated, not guessed at.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

use super::signature;
use crate::outbound::{self, AddressPolicy, GuardedConnector};

/// Of an answer's body, this much is read; the rest is dropped.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// How a receiver answered one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// An HTTP status; with a `Retry-After` in seconds, and the body (its first 64 KiB).
    Status { status: u16, retry_after: Option<Duration>, body: String },
    /// No answer: the connection failed or timed out.
    Failed(String),
}

/// One attempt to post.
#[derive(Debug, Clone, Copy)]
pub struct Post<'a> {
    pub url: &'a str,
    pub webhook_id: &'a str,
    /// Each signs the request (more than one while a rotated secret overlaps the previous).
    pub keys: &'a [Vec<u8>],
    pub payload: &'a str,
    pub timestamp_secs: i64,
}

/// An HTTP client shared by a node's deliveries; it reaches only the addresses the
/// operator's policy allows (`crate::outbound`).
#[derive(Clone)]
pub struct Sender {
    client: Client<HttpsConnector<GuardedConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl Sender {
    pub fn new(timeout: Duration, policy: AddressPolicy) -> Self {
        let http = GuardedConnector::new(policy, |http| {
            http.enforce_http(false);
            http.set_connect_timeout(Some(timeout));
            // Each write goes out at once: with Nagle's algorithm a write may wait for the
            // receiver's delayed ACK of the one before (tens of milliseconds a post).
            http.set_nodelay(true);
        });
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(60)).build(connector);
        Self { client, timeout }
    }

    /// Posts the payload, signed; waits at most the timeout for the whole answer.
    pub async fn post(&self, post: Post<'_>) -> Answer {
        self.post_within(post, self.timeout).await
    }

    /// `post`, waiting at most `timeout`.
    pub async fn post_within(&self, post: Post<'_>, timeout: Duration) -> Answer {
        match tokio::time::timeout(timeout, self.send(post)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(err)) => Answer::Failed(err),
            Err(_) => Answer::Failed(format!("no answer within {} ms", timeout.as_millis())),
        }
    }

    async fn send(&self, post: Post<'_>) -> Result<Answer, String> {
        let timestamp = post.timestamp_secs.to_string();
        let signature =
            signature::sign_with_each(post.keys, post.webhook_id, post.timestamp_secs, post.payload.as_bytes());
        let (url, authorization) = outbound::basic_auth(post.url);
        let mut request = http::Request::post(url);
        if let Some(authorization) = authorization {
            request = request.header(http::header::AUTHORIZATION, authorization);
        }
        let request = request
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, concat!("gim-webhooks/", env!("CARGO_PKG_VERSION")))
            .header("webhook-id", post.webhook_id)
            .header("webhook-timestamp", timestamp)
            .header("webhook-signature", signature)
            .body(Full::new(Bytes::copy_from_slice(post.payload.as_bytes())))
            .map_err(|err| format!("bad request: {err}"))?;
        let response = self.client.request(request).await.map_err(|err| describe(&err))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = match Limited::new(response.into_body(), MAX_BODY_BYTES).collect().await {
            Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
            Err(_) => String::new(),
        };
        Ok(Answer::Status { status, retry_after, body })
    }
}

/// An error with its causes, which hyper keeps apart ("client error (Connect)" alone says little).
fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
