//! One query as one outgoing `wasi:http` request to ClickHouse.

use wasmhouse_clickhouse::policy::classify_error_body;

use crate::bindings::exports::wasmhouse::clickhouse::query;
use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use crate::bindings::wasi::io::streams::{InputStream, StreamError};
use crate::config::Settings;

/// How much of the body one read asks for.
const READ_SIZE: u64 = 64 * 1024;
/// Most of an error body that is read.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A response body being read.
pub struct ResponseBody {
    // The stream is a child of the body and must be dropped first.
    stream: InputStream,
    _body: IncomingBody,
}

impl ResponseBody {
    /// The next chunk; `None` at the end.
    pub fn read(&mut self) -> Result<Option<Vec<u8>>, query::Error> {
        match self.stream.blocking_read(READ_SIZE) {
            Ok(chunk) => Ok(Some(chunk)),
            Err(StreamError::Closed) => Ok(None),
            Err(StreamError::LastOperationFailed(err)) => Err(query::Error::Unavailable(format!(
                "the connection to ClickHouse failed mid-result: {}",
                err.to_debug_string()
            ))),
        }
    }
}

/// A query id ClickHouse can be asked about (`system.processes`).
pub fn query_id() -> String {
    let random = crate::bindings::wasi::random::random::get_random_u64();
    format!("wasmhouse-adapter-{random:016x}")
}

/// Send `sql` and wait for the response head. A non-200 answer becomes the
/// error ClickHouse reported.
pub fn send(
    settings: &Settings,
    sql: &str,
    options: &query::Options,
    query_id: &str,
) -> Result<ResponseBody, query::Error> {
    let endpoint = &settings.endpoint;
    let unavailable =
        |what: &str| query::Error::Unavailable(format!("{what} ({})", endpoint.authority()));
    let headers = Fields::new();
    let authorization = endpoint.basic_authorization();
    headers
        .append("authorization", authorization.as_bytes())
        .map_err(|_| unavailable("the platform refused the authorization header"))?;
    let request = OutgoingRequest::new(headers);
    let path = path_and_query(settings, options, query_id);
    // TLS when the URL says https: never plaintext to a TLS port.
    let scheme = match endpoint.scheme {
        wasmhouse_clickhouse::Scheme::Http => Scheme::Http,
        wasmhouse_clickhouse::Scheme::Https => Scheme::Https,
    };
    let parts_ok = request.set_method(&Method::Post).is_ok()
        && request.set_scheme(Some(&scheme)).is_ok()
        && request.set_authority(Some(&endpoint.authority())).is_ok()
        && request.set_path_with_query(Some(&path)).is_ok();
    if !parts_ok {
        return Err(unavailable("could not build the request to ClickHouse"));
    }
    let body = request
        .body()
        .map_err(|()| unavailable("could not open the request body"))?;
    let future =
        outgoing_handler::handle(request, None).map_err(|code| describe(code, endpoint))?;
    {
        let stream = body
            .write()
            .map_err(|()| unavailable("could not write the request body"))?;
        crate::write_all(&stream, sql.as_bytes())
            .map_err(|_| unavailable("sending the query failed"))?;
    }
    OutgoingBody::finish(body, None).map_err(|code| describe(code, endpoint))?;

    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(describe(code, endpoint)),
        Some(Err(())) | None => return Err(unavailable("the response was lost")),
    };
    let status = response.status();
    let incoming = response
        .consume()
        .map_err(|()| unavailable("the response body was unavailable"))?;
    let stream = incoming
        .stream()
        .map_err(|()| unavailable("the response body was unavailable"))?;
    let mut body = ResponseBody {
        stream,
        _body: incoming,
    };
    if status == 200 {
        return Ok(body);
    }
    let mut text = Vec::new();
    while let Ok(Some(chunk)) = body.read() {
        text.extend_from_slice(&chunk);
        if text.len() > MAX_ERROR_BODY {
            break;
        }
    }
    let text = String::from_utf8_lossy(&text);
    Err(crate::to_wit(classify_error_body(
        &settings.policy,
        status,
        &text,
    )))
}

fn path_and_query(settings: &Settings, options: &query::Options, query_id: &str) -> String {
    let mut query = url::form_urlencoded::Serializer::for_suffix(String::from("/?"), 2);
    query
        .append_pair("database", &settings.endpoint.database)
        .append_pair("query_id", query_id)
        .append_pair(
            "default_format",
            options.format.as_deref().unwrap_or("JSONEachRow"),
        )
        .append_pair("output_format_json_quote_64bit_integers", "0");
    for (name, value) in &options.settings {
        query.append_pair(name, value);
    }
    // The caps after the guest's settings, as on the host.
    for (name, value) in settings.policy.settings(None) {
        query.append_pair(name, &value);
    }
    query.finish()
}

fn describe(code: ErrorCode, endpoint: &wasmhouse_clickhouse::Endpoint) -> query::Error {
    let hint = match code {
        ErrorCode::HttpRequestDenied => format!(
            "; allow outbound requests to {} (Spin: allowed_outbound_hosts)",
            endpoint.base_url().trim_end_matches('/')
        ),
        _ => String::new(),
    };
    query::Error::Unavailable(format!(
        "cannot reach ClickHouse at {}: {code:?}{hint}",
        endpoint.authority()
    ))
}
