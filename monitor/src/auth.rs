//! Who may see the page: the address rule (anything but loopback needs a token) and the
//! token check of each request.

use std::net::SocketAddr;

use crate::MonitorError;

/// The environment variable read for the token when `--token` is not given.
pub const TOKEN_ENV: &str = "ECGFLOW_TOKEN";

/// Checks a token's form: printable ASCII without spaces (it travels in headers and URLs).
pub fn check_token_form(token: &str) -> Result<(), MonitorError> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(MonitorError::BadToken);
    }
    Ok(())
}

/// Binding anything but a loopback address (127.0.0.0/8, ::1) exposes the page to the
/// network, and with it patient data: that needs an access token.
pub fn check_bind(addr: &SocketAddr, token: Option<&str>) -> Result<(), MonitorError> {
    match token {
        Some(t) => check_token_form(t),
        None if addr.ip().is_loopback() => Ok(()),
        None => Err(MonitorError::TokenRequired { addr: *addr }),
    }
}

/// Compares without an early exit, so that response times do not tell how much of a
/// guessed token was right.
pub fn same_token(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for (i, &e) in expected.iter().enumerate() {
        let g = given.get(i).copied().unwrap_or(0);
        diff |= usize::from(g ^ e);
    }
    diff == 0
}

/// The token a request carries: `Authorization: Bearer T`, or `token=T` in the query (so a
/// browser can open the page, and the page pass it on to its event stream, where headers
/// cannot be set).
pub fn request_token<'a>(authorization: Option<&'a str>, query: Option<&'a str>) -> Option<String> {
    if let Some(value) = authorization {
        let value = value.trim();
        if let Some((scheme, rest)) = value.split_once(' ') {
            if scheme.eq_ignore_ascii_case("bearer") {
                return Some(rest.trim().to_owned());
            }
        }
    }
    query_param(query?, "token")
}

/// Whether a request may pass: always when no token is set.
pub fn authorized(expected: Option<&str>, authorization: Option<&str>, query: Option<&str>) -> bool {
    match expected {
        None => true,
        Some(expected) => {
            request_token(authorization, query).is_some_and(|given| same_token(given.as_bytes(), expected.as_bytes()))
        }
    }
}

/// The first value of a query parameter, percent-decoded.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k)? == name).then(|| percent_decode(v)).flatten()
    })
}

/// Decodes `%XX` escapes and `+` (as a space); `None` for a bad escape or bad UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_needs_no_token_anything_else_does() {
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let lo6: SocketAddr = "[::1]:8080".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let lan: SocketAddr = "192.168.1.5:80".parse().unwrap();
        assert!(check_bind(&lo, None).is_ok());
        assert!(check_bind(&lo6, None).is_ok());
        for addr in [any, lan] {
            let e = check_bind(&addr, None).unwrap_err().to_string();
            assert!(e.contains("--token") && e.contains(TOKEN_ENV), "{e}");
            assert!(check_bind(&addr, Some("s3cret-token")).is_ok());
        }
        assert!(matches!(
            check_bind(&any, Some("has space")),
            Err(MonitorError::BadToken)
        ));
        assert!(matches!(check_bind(&any, Some("")), Err(MonitorError::BadToken)));
    }

    #[test]
    fn tokens_from_the_header_or_the_query() {
        let t = Some("abc123");
        assert!(authorized(None, None, None));
        assert!(!authorized(t, None, None));
        assert!(authorized(t, Some("Bearer abc123"), None));
        assert!(authorized(t, Some("bearer   abc123 "), None));
        assert!(!authorized(t, Some("Basic abc123"), None));
        assert!(!authorized(t, Some("Bearer abc12"), None));
        assert!(!authorized(t, Some("Bearer abc1234"), None));
        assert!(authorized(t, None, Some("stream=x&token=abc123")));
        assert!(authorized(t, None, Some("token=abc%31%323")));
        assert!(!authorized(t, None, Some("token=")));
        assert!(!authorized(t, None, Some("tokenx=abc123")));
        // A wrong header does not hide a right query (the page's own requests use the query).
        assert!(authorized(t, Some("Basic zzz"), Some("token=abc123")));
    }

    #[test]
    fn comparison_and_decoding() {
        assert!(same_token(b"abc", b"abc"));
        assert!(!same_token(b"abd", b"abc"));
        assert!(!same_token(b"", b"abc"));
        assert!(!same_token(b"abc\0", b"abc"));
        assert_eq!(percent_decode("a%20b+c").as_deref(), Some("a b c"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(query_param("a=1&b=2&a=3", "a").as_deref(), Some("1"));
        assert_eq!(query_param("a", "a").as_deref(), Some(""));
    }
}
