//! Credentials in request headers: how a bearer token is read, and how a
//! secret is kept from a guest.
//!
//! One reading for the admin API and API keys alike: authentication schemes
//! are case-insensitive (RFC 9110, 11.1), so `bearer`, `BEARER` and `Bearer`
//! are the same scheme, and a check that knew only one spelling would let
//! the others through to a guest.

use hyper::HeaderMap;
use hyper::header::{AUTHORIZATION, HeaderValue};

/// The token of an `Authorization: Bearer <token>` value, whatever the
/// scheme's case; `None` for any other scheme.
pub(crate) fn bearer(value: &HeaderValue) -> Option<&str> {
    let value = value.to_str().ok()?.trim_start();
    let (scheme, token) = value.split_once([' ', '\t'])?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// The bearer token of a request, if it sends one.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers.get_all(AUTHORIZATION).iter().find_map(bearer)
}

/// Remove every header whose value contains `secret`, whatever its name
/// (`Authorization` with any scheme, `Cookie`, `X-Anything`): a secret of
/// the host never reaches a guest, however a client sends it. Returns
/// whether one was removed.
pub(crate) fn strip_secret(headers: &mut HeaderMap, secret: &str) -> bool {
    if secret.is_empty() {
        return false;
    }
    strip_headers_where(headers, |value| {
        value
            .as_bytes()
            .windows(secret.len())
            .any(|window| window == secret.as_bytes())
    })
}

/// Remove every header (all of its values) of which one value `carries` a
/// secret; returns whether one was removed.
pub(crate) fn strip_headers_where(
    headers: &mut HeaderMap,
    carries: impl Fn(&HeaderValue) -> bool,
) -> bool {
    let carrying: Vec<_> = headers
        .iter()
        .filter(|(_, value)| carries(value))
        .map(|(name, _)| name.clone())
        .collect();
    for name in &carrying {
        headers.remove(name);
    }
    !carrying.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_is_read_in_any_case() {
        for value in ["Bearer t0k", "bearer t0k", "BEARER   t0k ", "bEaReR\tt0k"] {
            assert_eq!(
                bearer(&HeaderValue::from_static(value)),
                Some("t0k"),
                "{value}"
            );
        }
        for value in ["Basic t0k", "Bearer", "Bearer  ", "Bearert0k", "t0k"] {
            assert_eq!(bearer(&HeaderValue::from_static(value)), None, "{value}");
        }
    }

    #[test]
    fn a_secret_is_removed_from_every_header_it_is_in() {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_static("bearer s3cret-token"),
        );
        headers.insert("cookie", HeaderValue::from_static("a=1; t=s3cret-token"));
        headers.insert("x-forward", HeaderValue::from_static("s3cret-token"));
        headers.insert("x-other", HeaderValue::from_static("harmless"));
        assert!(strip_secret(&mut headers, "s3cret-token"));
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-other"));
        assert!(!strip_secret(&mut headers, "s3cret-token"));
    }
}
