//! Requests gim makes to addresses operators give it (webhook endpoints, before-send
//! hooks): how their URLs are read and shown.

use url::Url;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_never_shown() {
        assert_eq!(redacted("https://bob:hunter2@example.com/hook"), "https://***@example.com/hook");
        assert_eq!(redacted("https://token@example.com:8443/h?q=1"), "https://***@example.com:8443/h?q=1");
        assert_eq!(redacted("http://:pw@example.com/"), "http://***@example.com/");
        assert_eq!(redacted("https://example.com/hook"), "https://example.com/hook");
        assert_eq!(redacted("not a url"), "<not a URL>");
    }
}
