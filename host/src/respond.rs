//! Responses the host writes itself: JSON errors with a request id.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};

/// The body type of every response the server sends.
pub(crate) type ResponseBody = UnsyncBoxBody<Bytes, BodyError>;

/// Why a response body stopped early.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BodyError(Box<dyn std::error::Error + Send + Sync>);

impl From<wasmtime_wasi_http::Error> for BodyError {
    fn from(err: wasmtime_wasi_http::Error) -> Self {
        Self(Box::new(err))
    }
}

impl From<std::convert::Infallible> for BodyError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// A complete body from bytes.
pub(crate) fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(BodyError::from)
        .boxed_unsync()
}

/// A JSON response.
pub(crate) fn json(status: u16, value: &serde_json::Value) -> hyper::Response<ResponseBody> {
    let mut response = hyper::Response::new(full(value.to_string()));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A JSON error: `{"error": message, "kind": kind, "request_id": id}`.
pub(crate) fn error(
    status: u16,
    kind: &str,
    message: &str,
    request_id: &str,
) -> hyper::Response<ResponseBody> {
    json(
        status,
        &serde_json::json!({ "error": message, "kind": kind, "request_id": request_id }),
    )
}

/// 503 with `Retry-After`: every instance slot is busy.
pub(crate) fn overloaded(request_id: &str) -> hyper::Response<ResponseBody> {
    let mut response = error(
        503,
        "overloaded",
        "the server is at its limit of concurrent requests; retry shortly",
        request_id,
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// The answer to a request a route's access rules turned away: 401 with
/// `WWW-Authenticate`, 403, or 429 with `Retry-After` and `RateLimit-*`.
pub(crate) fn denied(
    denied: &crate::access::Denied,
    request_id: &str,
) -> hyper::Response<ResponseBody> {
    use crate::access::Denied;
    match *denied {
        Denied::Unauthorized => {
            let mut response = error(
                401,
                "unauthorized",
                "this route needs an API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`",
                request_id,
            );
            response.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"wasmhouse\""),
            );
            response
        }
        Denied::Forbidden => error(
            403,
            "forbidden",
            "this API key may not call this route",
            request_id,
        ),
        Denied::TooManyRequests {
            limit,
            retry_after,
            window,
        } => {
            let mut response = error(
                429,
                "rate_limited",
                &format!(
                    "over the rate limit of {limit} requests per {window} s; retry after {retry_after} s"
                ),
                request_id,
            );
            let headers = response.headers_mut();
            headers.insert(RETRY_AFTER, HeaderValue::from(retry_after));
            rate_limit_headers(headers, limit, 0, retry_after.max(1));
            response
        }
    }
}

/// The `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`
/// headers (the IETF draft's names): `limit` requests per window,
/// `remaining` left, a full bucket again within `reset` seconds.
pub(crate) fn rate_limit_headers(
    headers: &mut hyper::HeaderMap,
    limit: u32,
    remaining: u32,
    reset: u64,
) {
    headers.insert("ratelimit-limit", HeaderValue::from(limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(reset));
}

/// At most `max` bytes of `text` (never cutting a character), with `…` when
/// cut: request text echoed in an error stays short.
pub(crate) fn shorten(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end]).into()
}
