//! The request a handler receives and the response it returns.

use crate::bindings::wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use crate::bindings::wasi::io::streams::{OutputStream, StreamError};
use crate::bindings::wasmhouse::clickhouse::query;
use crate::clickhouse::{Rows, describe, kind_for, status_for};

/// A route component's request handler.
///
/// Every request runs in a fresh instance, so a handler may keep per-instance
/// state in statics without it ever leaking into another request.
pub trait Handler {
    /// Answer one request.
    fn handle(request: Request) -> Response;
}

/// Export `$handler` (a type implementing [`Handler`]) as the component's
/// `wasi:http/incoming-handler`.
#[macro_export]
macro_rules! serve {
    ($handler:ty) => {
        #[doc(hidden)]
        pub struct WasmhouseIncomingHandler;

        impl $crate::bindings::exports::wasi::http::incoming_handler::Guest
            for WasmhouseIncomingHandler
        {
            fn handle(
                request: $crate::bindings::wasi::http::types::IncomingRequest,
                response_out: $crate::bindings::wasi::http::types::ResponseOutparam,
            ) {
                $crate::http::dispatch::<$handler>(request, response_out)
            }
        }

        // Exported on wasm32 only: a native build (tests, `cargo build
        // --workspace`) has no WASI imports to link the export against.
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::__export_route!(WasmhouseIncomingHandler with_types_in $crate::bindings);
    };
}

/// Largest request body [`Request::body`] reads, in bytes.
pub const MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;

/// An incoming HTTP request.
pub struct Request {
    method: String,
    path: String,
    query: String,
    inner: IncomingRequest,
}

impl Request {
    fn new(inner: IncomingRequest) -> Self {
        let method = match inner.method() {
            Method::Get => "GET".to_owned(),
            Method::Head => "HEAD".to_owned(),
            Method::Post => "POST".to_owned(),
            Method::Put => "PUT".to_owned(),
            Method::Delete => "DELETE".to_owned(),
            Method::Connect => "CONNECT".to_owned(),
            Method::Options => "OPTIONS".to_owned(),
            Method::Trace => "TRACE".to_owned(),
            Method::Patch => "PATCH".to_owned(),
            Method::Other(other) => other,
        };
        let target = inner.path_with_query().unwrap_or_else(|| "/".to_owned());
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path.to_owned(), query.to_owned()),
            None => (target, String::new()),
        };
        Self {
            method,
            path,
            query,
            inner,
        }
    }

    /// The method, upper case (`GET`, `POST`, ...).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The path, without the query string.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The path below the prefix of the route that matched: `/users` for
    /// `/api/users` on a route at `/api`. The whole path where the runtime
    /// does not say (wasmhouse and Spin do, in `spin-path-info`).
    pub fn path_info(&self) -> String {
        self.header("spin-path-info")
            .unwrap_or_else(|| self.path.clone())
    }

    /// The raw query string, without the `?`.
    pub fn query_string(&self) -> &str {
        &self.query
    }

    /// The first value of query parameter `name`, percent-decoded.
    ///
    /// `None` when the parameter is absent; `Some("")` for `?name` or `?name=`.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }

    /// The first value of header `name` (case-insensitive), if it is UTF-8.
    pub fn header(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        self.inner
            .headers()
            .get(&name)
            .into_iter()
            .find_map(|value| String::from_utf8(value).ok())
    }

    /// Every header, in order, names lower case.
    pub fn headers(&self) -> Vec<(String, Vec<u8>)> {
        self.inner.headers().entries()
    }

    /// Read the whole request body, up to [`MAX_BODY_BYTES`].
    pub fn body(self) -> Result<Vec<u8>, String> {
        self.read_body()
    }

    /// [`Request::body`] without giving the request up (the body can be
    /// read once).
    pub(crate) fn read_body(&self) -> Result<Vec<u8>, String> {
        let body = self
            .inner
            .consume()
            .map_err(|()| "request body already taken".to_owned())?;
        let stream = body
            .stream()
            .map_err(|()| "request body stream unavailable".to_owned())?;
        let mut bytes = Vec::new();
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() as u64 > MAX_BODY_BYTES {
                        return Err(format!("request body over {MAX_BODY_BYTES} bytes"));
                    }
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(err)) => {
                    return Err(format!("reading request body: {}", err.to_debug_string()));
                }
            }
        }
        Ok(bytes)
    }
}

/// Writes a streamed body; `Err(())` aborts the response.
pub type BodyWriter = Box<dyn FnOnce(&OutputStream) -> Result<(), ()>>;

/// What a response carries after its headers.
pub enum Body {
    /// Bytes already in guest memory.
    Bytes(Vec<u8>),
    /// A ClickHouse result, forwarded by the runtime without passing through
    /// guest memory.
    Rows(Rows),
    /// Written piece by piece by a function, after the headers are sent.
    /// Return `Err(())` to abort the response (the client sees an error).
    Stream(BodyWriter),
}

/// An HTTP response.
pub struct Response {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Body,
}

impl Response {
    /// A response with `status`, a `content-type` and `body`.
    pub fn new(status: u16, content_type: &str, body: Body) -> Self {
        Self {
            status,
            headers: vec![("content-type".to_owned(), content_type.as_bytes().to_vec())],
            body,
        }
    }

    /// A JSON response from any serialisable value.
    pub fn json(status: u16, value: &impl serde::Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self::new(status, "application/json", Body::Bytes(body)),
            Err(err) => Self::error(500, "internal", &format!("serialising response: {err}")),
        }
    }

    /// A JSON response from text that is already JSON.
    pub fn json_raw(status: u16, json: String) -> Self {
        Self::new(status, "application/json", Body::Bytes(json.into_bytes()))
    }

    /// A JSON error body: `{"error": message, "kind": kind}`.
    pub fn error(status: u16, kind: &str, message: &str) -> Self {
        let body = serde_json::json!({ "error": message, "kind": kind });
        Self::new(
            status,
            "application/json",
            Body::Bytes(body.to_string().into_bytes()),
        )
    }

    /// The JSON error response that fits a failed query: 502 when ClickHouse
    /// refused it, 503 when ClickHouse is unreachable, 504 on timeout, 403 for
    /// a policy refusal and 422 for a value not of its placeholder's type.
    pub fn from_query_error(err: &query::Error) -> Self {
        Self::error(status_for(err), kind_for(err), &describe(err))
    }

    /// Stream a ClickHouse result as the body.
    pub fn rows(status: u16, content_type: &str, rows: Rows) -> Self {
        Self::new(status, content_type, Body::Rows(rows))
    }

    /// A body written piece by piece by `write` once the headers are sent;
    /// use [`write_all`] inside it. Memory stays flat however large the body.
    pub fn streamed(
        status: u16,
        content_type: &str,
        write: impl FnOnce(&OutputStream) -> Result<(), ()> + 'static,
    ) -> Self {
        Self::new(status, content_type, Body::Stream(Box::new(write)))
    }

    /// Add a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.as_bytes().to_vec()));
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// A header's value, if the response has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The body parsed as JSON, when it is bytes already in memory (error
    /// answers, [`Response::json`]): for tests.
    pub fn json_body(&self) -> Option<serde_json::Value> {
        match &self.body {
            Body::Bytes(bytes) => serde_json::from_slice(bytes).ok(),
            _ => None,
        }
    }
}

/// Status, headers and the body (as text when it is bytes in memory): what
/// a failed test assertion shows.
impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<(&str, String)> = self
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), String::from_utf8_lossy(value).into_owned()))
            .collect();
        let body = match &self.body {
            Body::Bytes(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            Body::Rows(_) => "(a ClickHouse result)".to_owned(),
            Body::Stream(_) => "(streamed)".to_owned(),
        };
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &headers)
            .field("body", &body)
            .finish()
    }
}

/// Run `H` on one incoming request and send its response. Used by [`crate::serve!`].
#[doc(hidden)]
pub fn dispatch<H: Handler>(request: IncomingRequest, out: ResponseOutparam) {
    let response = H::handle(Request::new(request));
    send(response, out);
}

fn send(response: Response, out: ResponseOutparam) {
    let headers = Fields::new();
    for (name, value) in &response.headers {
        // A header the runtime forbids (hop-by-hop ones) is dropped, not fatal.
        let _ = headers.append(name, value);
    }
    let outgoing = OutgoingResponse::new(headers);
    // The status comes from the handler; an invalid one is a bug worth a 500.
    if outgoing.set_status_code(response.status).is_err() {
        let _ = outgoing.set_status_code(500);
    }
    let Ok(body) = outgoing.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(outgoing));
    let Ok(stream) = body.write() else {
        return;
    };
    let complete = match response.body {
        Body::Bytes(bytes) => write_all(&stream, &bytes).is_ok(),
        Body::Rows(rows) => rows.forward(&stream).is_ok(),
        Body::Stream(write) => write(&stream).is_ok(),
    };
    drop(stream);
    if complete {
        let _ = OutgoingBody::finish(body, None);
    }
    // Otherwise the body is dropped unfinished: the runtime aborts the
    // response so the client sees an error instead of a silently short body.
}

/// Write all of `bytes` to `stream`, waiting for room as needed.
pub fn write_all(stream: &OutputStream, bytes: &[u8]) -> Result<(), StreamError> {
    // WASI's own blocking write takes at most 4096 bytes a call.
    for piece in bytes.chunks(4096) {
        stream.blocking_write_and_flush(piece)?;
    }
    Ok(())
}
