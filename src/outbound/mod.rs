//! Requests gim makes to addresses that apps' settings name (webhook endpoints,
//! before-send hooks): how their URLs are read and shown, and which addresses they may
//! reach (`addresses`, enforced at every connect by `connector`).

mod addresses;
mod connector;

pub use addresses::{AddressPolicy, SETTING, Special};
pub use connector::GuardedConnector;
use url::{Host, Url};

/// An `http://` or `https://` URL with a host, as the web reads it (WHATWG): a port past
/// 65535, a missing host or another scheme is refused, and a host written in any of the
/// forms browsers accept (`0x7f.1`, `2130706433`) comes back as the address it means.
pub fn http_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|err| format!("{text:?} is not a URL ({err})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("{text:?} is not an http:// or https:// URL with a host"));
    }
    Ok(url)
}

/// Refuses a URL whose host is an address the policy does not allow, or a name that is
/// one by definition (`localhost`); other names are checked when gim connects.
pub fn check_host(url: &Url, policy: &AddressPolicy) -> Result<(), String> {
    let ip = match url.host() {
        Some(Host::Ipv4(ip)) => ip.into(),
        Some(Host::Ipv6(ip)) => ip.into(),
        Some(Host::Domain(name)) if name == "localhost" || name.ends_with(".localhost") => {
            std::net::Ipv4Addr::LOCALHOST.into()
        }
        _ => return Ok(()),
    };
    policy.check(ip)
}

/// `url` as gim shows it back: any `user:password@` replaced by `***@`, so that
/// credentials an operator put in a URL never come back in a listing or a log.
pub fn redacted(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            // Both setters succeed on URLs with a host, which are the only ones with userinfo.
            let _ = parsed.set_password(None);
            let _ = parsed.set_username("***");
            parsed.into()
        }
        Ok(_) => url.to_owned(),
        // Not a URL gim would have stored; show nothing of it rather than a secret.
        Err(_) => "<not a URL>".to_owned(),
    }
}

/// `url` without its userinfo, and the `Authorization: Basic` value that carries it
/// instead (receivers behind basic authentication are given as `https://user:pw@host/`).
pub fn basic_auth(url: &str) -> (String, Option<String>) {
    use base64::Engine as _;
    let Ok(mut parsed) = Url::parse(url) else { return (url.to_owned(), None) };
    if parsed.username().is_empty() && parsed.password().is_none() {
        return (url.to_owned(), None);
    }
    let decode = |part: &str| percent_encoding::percent_decode_str(part).decode_utf8_lossy().into_owned();
    let credentials = format!("{}:{}", decode(parsed.username()), decode(parsed.password().unwrap_or_default()));
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    (parsed.into(), Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_as_the_web_reads_them() {
        for bad in
            ["https://example.com:99999/", "javascript:alert(1)", "file:///etc/passwd", "https://", "example.com"]
        {
            assert!(http_url(bad).is_err(), "{bad}");
        }
        assert_eq!(http_url("http://2130706433/h").unwrap().host_str(), Some("127.0.0.1"));
        assert_eq!(http_url("http://0x7f.1/h").unwrap().host_str(), Some("127.0.0.1"));
        assert_eq!(http_url("http://0251.0376.0251.0376/").unwrap().host_str(), Some("169.254.169.254"));
        assert_eq!(http_url("HTTPS://Example.COM/x").unwrap().as_str(), "https://example.com/x");
    }

    #[test]
    fn hosts_written_as_addresses_are_checked_at_once() {
        let none = AddressPolicy::default();
        let host = |text: &str| check_host(&http_url(text).unwrap(), &none);
        assert!(host("http://[::ffff:169.254.169.254]/").is_err());
        assert!(host("http://2130706433/").is_err());
        assert!(host("http://localhost:8080/").is_err());
        assert!(host("https://hooks.example.com/").is_ok(), "names are checked when gim connects");
        let loopback = AddressPolicy::new(&["loopback".into()]).unwrap();
        assert!(check_host(&http_url("http://127.0.0.1:9/").unwrap(), &loopback).is_ok());
    }

    #[test]
    fn credentials_in_urls_are_never_shown() {
        assert_eq!(redacted("https://bob:hunter2@example.com/hook"), "https://***@example.com/hook");
        assert_eq!(redacted("https://token@example.com:8443/h?q=1"), "https://***@example.com:8443/h?q=1");
        assert_eq!(redacted("http://:pw@example.com/"), "http://***@example.com/");
        assert_eq!(redacted("https://example.com/hook"), "https://example.com/hook");
        assert_eq!(redacted("not a url"), "<not a URL>");
    }

    #[test]
    fn credentials_in_urls_become_basic_authentication() {
        assert_eq!(
            basic_auth("https://bob:p%40ss@example.com/h"),
            ("https://example.com/h".to_owned(), Some("Basic Ym9iOnBAc3M=".to_owned()))
        );
        assert_eq!(basic_auth("https://example.com/h"), ("https://example.com/h".to_owned(), None));
    }
}
