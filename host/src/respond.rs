//! Responses the host writes itself: JSON errors with a request id.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};

/// The body type of every response the server sends.
pub type ResponseBody = UnsyncBoxBody<Bytes, BodyError>;

/// Why a response body stopped early.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(Box<dyn std::error::Error + Send + Sync>);

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
pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(BodyError::from)
        .boxed_unsync()
}

/// A JSON response.
pub fn json(status: u16, value: &serde_json::Value) -> hyper::Response<ResponseBody> {
    let mut response = hyper::Response::new(full(value.to_string()));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A JSON error: `{"error": message, "kind": kind, "request_id": id}`.
pub fn error(
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
pub fn overloaded(request_id: &str) -> hyper::Response<ResponseBody> {
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

/// At most `max` bytes of `text` (never cutting a character), with `…` when
/// cut: request text echoed in an error stays short.
pub fn shorten(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end]).into()
}
