//! Which browser origins may reach gim: pages of other origins are refused with HTTP 403
//! on the logic port (gRPC-Web) and on connect's WebSocket handshake. Clients that are
//! not browsers send no `Origin` header and are not concerned.

use std::sync::Arc;

use http::HeaderValue;

/// From any origin, or from the listed ones only.
#[derive(Debug, Clone)]
pub enum Origins {
    Any,
    Only(Arc<[HeaderValue]>),
}

impl Origins {
    /// `["*"]` (or an empty list) allows any origin.
    pub fn from_config(origins: &[String]) -> Self {
        if origins.is_empty() || origins.iter().any(|origin| origin == "*") {
            return Origins::Any;
        }
        Origins::Only(origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()).collect())
    }

    /// No browser page at all: for ports only servers call.
    pub fn none() -> Self {
        Origins::Only(Arc::from([]))
    }

    /// Whether a request with this `Origin` header (none: not a browser) may go on.
    pub fn allows(&self, origin: Option<&HeaderValue>) -> bool {
        match (self, origin) {
            (Origins::Any, _) | (_, None) => true,
            (Origins::Only(allowed), Some(origin)) => allowed.contains(origin),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allowlist_lets_through_its_origins_and_clients_that_are_not_browsers() {
        let origins = Origins::from_config(&["https://chat.example".into()]);
        assert!(origins.allows(Some(&HeaderValue::from_static("https://chat.example"))));
        assert!(!origins.allows(Some(&HeaderValue::from_static("https://evil.example"))));
        assert!(origins.allows(None), "no Origin header: not a browser");
        assert!(Origins::from_config(&["*".into()]).allows(Some(&HeaderValue::from_static("https://any"))));
    }
}
