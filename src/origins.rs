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

/// An origin as browsers send it (`https://chat.example`, `http://localhost:5173`):
/// scheme and host in lower case, no default port, no path. Configuration may write
/// `https://Chat.Example/` or `https://chat.example:443`; anything else is refused.
pub fn normalize(entry: &str) -> Result<String, String> {
    let refuse = || format!("{entry:?} is not an origin: write scheme://host[:port], e.g. https://chat.example");
    let uri: http::Uri = entry.parse().map_err(|_| refuse())?;
    let scheme = uri.scheme_str().map(str::to_ascii_lowercase).ok_or_else(refuse)?;
    let host = uri.host().filter(|host| !host.is_empty()).ok_or_else(refuse)?.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https") || uri.query().is_some() || !matches!(uri.path(), "" | "/") {
        return Err(refuse());
    }
    let default_port = if scheme == "https" { 443 } else { 80 };
    Ok(match uri.port_u16() {
        Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

impl Origins {
    /// `["*"]` (or an empty list) allows any origin; entries that are not origins are
    /// left out (configuration validation refuses them before this is reached).
    pub fn from_config(origins: &[String]) -> Self {
        if origins.is_empty() || origins.iter().any(|origin| origin == "*") {
            return Origins::Any;
        }
        Origins::Only(
            origins
                .iter()
                .filter_map(|origin| normalize(origin).ok())
                .filter_map(|origin| HeaderValue::from_str(&origin).ok())
                .collect(),
        )
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
    fn configured_origins_are_written_as_browsers_send_them() {
        assert_eq!(normalize("https://Chat.Example/").unwrap(), "https://chat.example");
        assert_eq!(normalize("https://chat.example:443").unwrap(), "https://chat.example");
        assert_eq!(normalize("http://localhost:5173").unwrap(), "http://localhost:5173");
        for bad in ["chat.example", "https://chat.example/app", "ftp://chat.example", "https://x?y=1", ""] {
            assert!(normalize(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_allowlist_lets_through_its_origins_and_clients_that_are_not_browsers() {
        let origins = Origins::from_config(&["https://Chat.example/".into()]);
        assert!(origins.allows(Some(&HeaderValue::from_static("https://chat.example"))));
        assert!(!origins.allows(Some(&HeaderValue::from_static("https://evil.example"))));
        assert!(origins.allows(None), "no Origin header: not a browser");
        assert!(Origins::from_config(&["*".into()]).allows(Some(&HeaderValue::from_static("https://any"))));
    }
}
