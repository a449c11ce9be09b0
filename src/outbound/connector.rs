//! A connector for hyper's client that reaches only the addresses the operator allows:
//! names are resolved here and their addresses checked at every connect (so that a
//! name that later resolves to a private address, DNS rebinding, is refused too), and
//! addresses written in URLs are checked before any packet leaves.

use std::{
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::Uri;
use hyper_util::client::legacy::connect::{HttpConnector, dns::Name};

use super::AddressPolicy;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// The system's resolver, keeping only the addresses the policy allows.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<AddressPolicy>,
}

impl tower::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = BoxFuture<Self::Response, io::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.policy.clone();
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let mut refusal = None;
            let allowed: Vec<SocketAddr> = found
                .filter(|addr| match policy.check(addr.ip()) {
                    Ok(()) => true,
                    Err(why) => {
                        refusal.get_or_insert(why);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let why = refusal.unwrap_or_else(|| "it has no address".to_owned());
                return Err(io::Error::new(io::ErrorKind::PermissionDenied, format!("{name} refused: {why}")));
            }
            Ok(allowed.into_iter())
        })
    }
}

/// hyper's HTTP connector behind the policy.
#[derive(Debug, Clone)]
pub struct GuardedConnector {
    inner: HttpConnector<GuardedResolver>,
    policy: Arc<AddressPolicy>,
}

impl GuardedConnector {
    pub fn new(policy: AddressPolicy, configure: impl FnOnce(&mut HttpConnector<GuardedResolver>)) -> Self {
        let policy = Arc::new(policy);
        let mut inner = HttpConnector::new_with_resolver(GuardedResolver { policy: policy.clone() });
        configure(&mut inner);
        Self { inner, policy }
    }
}

impl tower::Service<Uri> for GuardedConnector {
    type Response = <HttpConnector<GuardedResolver> as tower::Service<Uri>>::Response;
    type Error = BoxError;
    type Future = BoxFuture<Self::Response, BoxError>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        // hyper connects to an address written in the URL without asking the resolver.
        let literal =
            uri.host().and_then(|host| host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok());
        if let Some(refusal) = literal.and_then(|ip| self.policy.check(ip).err()) {
            return Box::pin(async move { Err(io::Error::new(io::ErrorKind::PermissionDenied, refusal).into()) });
        }
        let connecting = self.inner.call(uri);
        Box::pin(async move { connecting.await.map_err(Into::into) })
    }
}
