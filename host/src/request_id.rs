//! Request ids: every response carries `X-Request-Id`, the client's when it
//! is well-formed, a new one otherwise; the guest, the logs and ClickHouse's
//! query log all see the same id.

use std::sync::atomic::{AtomicU64, Ordering};

use hyper::header::{HeaderName, HeaderValue};

use crate::respond::ResponseBody;

/// The header requests and responses carry their id in.
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The incoming `X-Request-Id`, when it is one wasmhouse can pass on (to the
/// guest, to ClickHouse's query log, to logs): 1 to 64 letters, digits,
/// `.`, `_` or `-`.
pub(crate) fn request_id(headers: &hyper::HeaderMap) -> Option<String> {
    let value = headers.get(REQUEST_ID)?.to_str().ok()?;
    let well_formed = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    well_formed.then(|| value.to_owned())
}

/// Put `request_id` on `response`.
pub(crate) fn set_request_id(response: &mut hyper::Response<ResponseBody>, request_id: &str) {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
}

/// Short unique ids for requests: a random per-process prefix and a counter.
pub(crate) struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl RequestIds {
    /// Ids with a fresh random prefix.
    pub(crate) fn new() -> Self {
        Self {
            prefix: uuid::Uuid::new_v4().as_u128() as u32,
            next: AtomicU64::new(1),
        }
    }

    /// The next id.
    pub(crate) fn next(&self) -> String {
        format!(
            "{:08x}-{:x}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}
