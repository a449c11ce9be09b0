//! Input checks at the edge of the use cases; each returns an `InvalidArgument` that
//! names the field and the rule.

use prost::Message as _;

use crate::{
    config::Limits,
    logic::{Error, Result},
    model::MessageBody,
    outbound::{self, AddressPolicy},
    proto::common::v1::message_body::Content,
};

/// Longest URL gim posts to.
const MAX_OUTBOUND_URL_LEN: usize = 2048;

/// Longest user, device and group id.
pub const MAX_ID_LEN: usize = 64;

/// User, device and group ids: 1-64 of `A-Z a-z 0-9 _ - . @ :`.
pub fn id(field: &str, value: &str) -> Result<()> {
    id_up_to(field, value, MAX_ID_LEN)
}

/// An id of the same alphabet, 1 to `max` characters long.
pub fn id_up_to(field: &str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() || value.len() > max {
        return Err(Error::invalid(format!("{field} must be 1-{max} characters long")));
    }
    if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.@:".contains(&b)) {
        return Err(Error::invalid(format!("{field} may contain only A-Z a-z 0-9 _ - . @ :")));
    }
    Ok(())
}

/// A list of ids an RPC takes: 1 to `max` of them (0 too when `may_be_empty`), each an
/// id. Checked before anything reads the list, so that no query ever sees a huge one.
pub fn ids(field: &str, values: &[String], max: usize, may_be_empty: bool) -> Result<()> {
    let min = usize::from(!may_be_empty);
    if values.len() < min || values.len() > max {
        return Err(Error::invalid(format!("{field} takes {min}-{max} ids, got {}", values.len())));
    }
    values.iter().try_for_each(|value| id(field, value))
}

/// A random id for things the caller did not name.
pub fn generated_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let suffix: String = (0..16).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect();
    format!("{prefix}{suffix}")
}

/// Characters a name may not hold because they make it show other than it reads: bidi
/// controls (an override turns "gnp.exe" around), characters that show nothing (a name
/// that looks empty, or like another one), and line breaks. Joiners that emoji and some
/// scripts need (U+200C, U+200D) and emoji tag sequences stay allowed.
fn deceives(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'                        // soft hyphen
            | '\u{034F}'                      // combining grapheme joiner
            | '\u{061C}'                      // Arabic letter mark
            | '\u{115F}' | '\u{1160}'         // Hangul fillers
            | '\u{17B4}' | '\u{17B5}'         // Khmer invisible vowels
            | '\u{180E}'                      // Mongolian vowel separator
            | '\u{200B}'                      // zero-width space
            | '\u{200E}' | '\u{200F}'         // left-to-right and right-to-left marks
            | '\u{2028}' | '\u{2029}'         // line and paragraph separators
            | '\u{202A}'..='\u{202E}'         // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}'         // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}'         // bidi isolates
            | '\u{3164}' | '\u{FFA0}'         // Hangul fillers
            | '\u{FEFF}'                      // zero-width no-break space
            | '\u{FFF9}'..='\u{FFFB}'         // interlinear annotations
        )
}

/// A name people see (nickname, group name, remark): at most `max_name_chars`, and
/// nothing that makes it show other than it reads.
pub fn name(field: &str, value: &str, limits: &Limits) -> Result<()> {
    if value.chars().count() > limits.max_name_chars {
        return Err(Error::invalid(format!("{field} must be at most {} characters", limits.max_name_chars)));
    }
    if let Some(c) = value.chars().find(|c| deceives(*c)) {
        return Err(Error::invalid(format!(
            "{field} must not contain control, bidi-override or invisible characters (found U+{:04X})",
            u32::from(c)
        )));
    }
    Ok(())
}

/// Free text of at most `max` characters, without NUL.
pub fn text(field: &str, value: &str, max: usize) -> Result<()> {
    if value.chars().count() > max {
        return Err(Error::invalid(format!("{field} must be at most {max} characters")));
    }
    no_nul(field, value)
}

/// NUL cuts text short in many clients and databases.
fn no_nul(field: &str, value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::invalid(format!("{field} must not contain NUL (U+0000)")));
    }
    Ok(())
}

/// Empty, or an `http://` or `https://` URL with a host of at most `max_url_len` bytes:
/// clients open what bodies and profiles link to, and no other scheme (`javascript:`,
/// `file:`, `data:`) is safe to open.
pub fn url(field: &str, value: &str, limits: &Limits) -> Result<()> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > limits.max_url_len {
        return Err(Error::invalid(format!("{field} must be at most {} bytes", limits.max_url_len)));
    }
    if value.chars().any(char::is_whitespace) {
        return Err(Error::invalid(format!("{field} must not contain whitespace")));
    }
    crate::outbound::http_url(value).map(drop).map_err(|why| Error::invalid(format!("{field}: {why}")))
}

/// A URL gim will post to (a webhook endpoint, a before-send hook), as gim stores it
/// (read as the web reads it); `field` names it in refusals. Its host is checked against
/// the operator's policy now if it is an address, and at every connect whatever it is.
pub fn outbound_url(field: &str, url: &str, policy: &AddressPolicy) -> Result<String> {
    if url.len() > MAX_OUTBOUND_URL_LEN {
        return Err(Error::invalid(format!("{field} is longer than {MAX_OUTBOUND_URL_LEN} bytes")));
    }
    let parsed = outbound::http_url(url).map_err(|why| Error::invalid(format!("{field}: {why}")))?;
    outbound::check_host(&parsed, policy).map_err(|why| Error::invalid(format!("{field}: {why}")))?;
    Ok(parsed.into())
}

pub fn required_url(field: &str, value: &str, limits: &Limits) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(format!("{field} is required")));
    }
    url(field, value, limits)
}

/// Empty, or a JSON object of at most `max_extra_bytes`.
pub fn extra(field: &str, value: &str, limits: &Limits) -> Result<()> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > limits.max_extra_bytes {
        return Err(Error::invalid(format!("{field} must be at most {} bytes", limits.max_extra_bytes)));
    }
    match serde_json::from_str::<serde_json::Value>(value) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        _ => Err(Error::invalid(format!("{field} must be a JSON object"))),
    }
}

pub fn client_msg_id(value: &str, limits: &Limits) -> Result<()> {
    let max = limits.max_client_msg_id_len;
    if value.is_empty() || value.len() > max {
        return Err(Error::invalid(format!("client_msg_id must be 1-{max} characters long")));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid("client_msg_id must be printable ASCII without spaces"));
    }
    Ok(())
}

/// A body a user or business may send. `SystemBody` is written by gim alone.
pub fn body(body: Option<&MessageBody>, limits: &Limits) -> Result<()> {
    let Some(content) = body.and_then(|b| b.content.as_ref()) else {
        return Err(Error::invalid("body is required: set exactly one of its typed bodies"));
    };
    let size = body.map_or(0, |b| b.encoded_len());
    if size > limits.max_message_bytes {
        return Err(Error::invalid(format!(
            "body is {size} bytes encoded; the limit is {} bytes",
            limits.max_message_bytes
        )));
    }
    match content {
        Content::Text(text) => text_body(text, limits),
        Content::Image(image) => {
            required_url("image.url", &image.url, limits)?;
            url("image.thumbnail_url", &image.thumbnail_url, limits)
        }
        Content::Audio(audio) => required_url("audio.url", &audio.url, limits),
        Content::Video(video) => {
            required_url("video.url", &video.url, limits)?;
            url("video.cover_url", &video.cover_url, limits)
        }
        Content::File(file) if file.name.is_empty() => Err(Error::invalid("file.name is required")),
        Content::File(file) => required_url("file.url", &file.url, limits),
        Content::Sticker(sticker) if sticker.sticker_id.is_empty() => {
            Err(Error::invalid("sticker.sticker_id is required"))
        }
        Content::Sticker(sticker) => url("sticker.url", &sticker.url, limits),
        Content::Location(location) => {
            if !(-90.0..=90.0).contains(&location.latitude) || !(-180.0..=180.0).contains(&location.longitude) {
                return Err(Error::invalid("location needs latitude in [-90, 90] and longitude in [-180, 180]"));
            }
            Ok(())
        }
        Content::Custom(custom) if custom.kind.is_empty() => Err(Error::invalid("custom.kind is required")),
        Content::Custom(_) => Ok(()),
        Content::System(_) | Content::Revision(_) => {
            Err(Error::invalid("system and revision bodies are written by gim itself, not sent"))
        }
    }
}

pub fn text_body(text: &crate::proto::common::v1::TextBody, limits: &Limits) -> Result<()> {
    if text.text.trim().is_empty() {
        return Err(Error::invalid("text must not be empty"));
    }
    no_nul("text", &text.text)?;
    let chars = text.text.chars().count();
    if chars > limits.max_text_chars {
        return Err(Error::invalid(format!("text is {chars} characters; the limit is {}", limits.max_text_chars)));
    }
    ids("mention_user_ids", &text.mention_user_ids, limits.max_page_size as usize, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::common::v1::{LocationBody, TextBody};

    fn text_body(s: &str) -> MessageBody {
        MessageBody { content: Some(Content::Text(TextBody { text: s.into(), ..Default::default() })) }
    }

    #[test]
    fn names_refuse_what_would_make_them_show_other_than_they_read() {
        let limits = Limits::default();
        for fine in ["Ann", "Zoë", "李雷", "مرحبا", "👨\u{200D}👩\u{200D}👧", "می\u{200C}خواهم", "a b"]
        {
            assert!(name("nickname", fine, &limits).is_ok(), "{fine:?}");
        }
        for bad in
            ["evil\u{202E}gpj.exe", "\u{200B}", "ad\u{2066}min", "a\u{FEFF}", "\u{3164}", "two\nlines", "\u{200F}x"]
        {
            assert!(name("nickname", bad, &limits).is_err(), "{bad:?}");
        }
        assert!(text("greeting", "hi\0there", 100).is_err());
        assert!(body(Some(&text_body("hi\0")), &limits).is_err(), "message text refuses NUL");
        assert!(body(Some(&text_body("right-to-left \u{202E} is fine in a message")), &limits).is_ok());
    }

    #[test]
    fn ids_follow_the_documented_alphabet() {
        assert!(id("user_id", "alice.smith@example:1_2-3").is_ok());
        assert!(id("user_id", "").is_err());
        assert!(id("user_id", &"a".repeat(65)).is_err());
        assert!(id("user_id", "with space").is_err());
        assert!(id("user_id", "émile").is_err());
    }

    #[test]
    fn bodies_are_checked_against_the_limits() {
        let limits = Limits { max_text_chars: 5, max_message_bytes: 64, ..Limits::default() };
        assert!(body(Some(&text_body("hello")), &limits).is_ok());
        assert!(body(Some(&text_body("hello!")), &limits).is_err());
        assert!(body(Some(&text_body("   ")), &limits).is_err());
        assert!(body(None, &limits).is_err());
        assert!(body(Some(&MessageBody::default()), &limits).is_err());
        let far = MessageBody {
            content: Some(Content::Location(LocationBody { latitude: 91.0, longitude: 0.0, ..Default::default() })),
        };
        assert!(body(Some(&far), &limits).is_err());
        let big = Limits { max_text_chars: 1000, max_message_bytes: 64, ..Limits::default() };
        assert!(body(Some(&text_body(&"x".repeat(100))), &big).is_err());
    }

    #[test]
    fn extra_must_be_a_json_object() {
        let limits = Limits::default();
        assert!(extra("extra", "", &limits).is_ok());
        assert!(extra("extra", r#"{"a":1}"#, &limits).is_ok());
        assert!(extra("extra", "[1]", &limits).is_err());
        assert!(extra("extra", "{", &limits).is_err());
    }

    #[test]
    fn endpoint_urls_are_http_with_a_host_the_policy_allows() {
        let loopback = AddressPolicy::new(&["loopback".into()]).unwrap();
        let url = |text: &str| outbound_url("url", text, &loopback);
        assert_eq!(url("https://Hooks.Example.com/gim").unwrap(), "https://hooks.example.com/gim");
        assert!(url("http://127.0.0.1:8080/x?y=1").is_ok());
        for bad in ["ftp://example.com", "example.com/x", "http://", "", "https://example.com:99999/"] {
            assert!(url(bad).is_err(), "{bad}");
        }
        let refused = outbound_url("url", "http://169.254.169.254/latest", &loopback).unwrap_err().to_string();
        assert!(refused.contains("outbound.allowed_ranges"), "the refusal names the setting: {refused}");
        assert!(outbound_url("url", "http://127.0.0.1/", &AddressPolicy::default()).is_err());
    }
}
