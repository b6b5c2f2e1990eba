//! One query as one outgoing `wasi:http` request to ClickHouse.

use base64::Engine as _;
use wasmhouse_sql::ServerException;

use crate::bindings::exports::wasmhouse::clickhouse::query;
use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use crate::bindings::wasi::io::streams::{InputStream, StreamError};
use crate::config::Endpoint;

/// How much of the body one read asks for.
const READ_SIZE: u64 = 64 * 1024;
/// Most of an error body that is read.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// ClickHouse's "cannot do this in read-only mode".
const READONLY: u32 = 164;

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
    endpoint: &Endpoint,
    sql: &str,
    options: &query::Options,
    query_id: &str,
) -> Result<ResponseBody, query::Error> {
    let unavailable = |what: &str| {
        query::Error::Unavailable(format!("{what} ({}:{})", endpoint.host, endpoint.port))
    };
    let headers = Fields::new();
    let credentials = format!("{}:{}", endpoint.user, endpoint.password);
    let authorization = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    );
    headers
        .append("authorization", authorization.as_bytes())
        .map_err(|_| unavailable("the platform refused the authorization header"))?;
    let request = OutgoingRequest::new(headers);
    let path = path_and_query(endpoint, options, query_id);
    let parts_ok = request.set_method(&Method::Post).is_ok()
        && request.set_scheme(Some(&Scheme::Http)).is_ok()
        && request
            .set_authority(Some(&format!("{}:{}", endpoint.host, endpoint.port)))
            .is_ok()
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
    Err(match ServerException::parse(&text) {
        Some(exception) => classify(exception),
        None if status >= 500 => {
            query::Error::Unavailable(format!("ClickHouse answered {status}: {}", text.trim()))
        }
        None => query::Error::Server(query::ServerError {
            code: 0,
            message: format!("ClickHouse answered {status}: {}", text.trim()),
        }),
    })
}

/// What an exception means to the guest, as on the host.
pub fn classify(exception: ServerException) -> query::Error {
    if exception.is_timeout() {
        query::Error::Timeout
    } else if exception.code == READONLY {
        query::Error::Refused(format!(
            "read-only ({}); set CLICKHOUSE_ALLOW_WRITES=1 to write",
            exception.message
        ))
    } else {
        query::Error::Server(query::ServerError {
            code: exception.code,
            message: exception.message,
        })
    }
}

fn path_and_query(endpoint: &Endpoint, options: &query::Options, query_id: &str) -> String {
    let mut query = url::form_urlencoded::Serializer::for_suffix(String::from("/?"), 2);
    query
        .append_pair("database", &endpoint.database)
        .append_pair("query_id", query_id)
        .append_pair(
            "default_format",
            options.format.as_deref().unwrap_or("JSONEachRow"),
        )
        .append_pair("output_format_json_quote_64bit_integers", "0");
    if endpoint.readonly {
        query.append_pair("readonly", "2");
    }
    for (name, value) in &options.settings {
        query.append_pair(name, value);
    }
    query.finish()
}

fn describe(code: ErrorCode, endpoint: &Endpoint) -> query::Error {
    let hint = match code {
        ErrorCode::HttpRequestDenied => format!(
            "; allow outbound requests to http://{}:{} (Spin: allowed_outbound_hosts)",
            endpoint.host, endpoint.port
        ),
        _ => String::new(),
    };
    query::Error::Unavailable(format!(
        "cannot reach ClickHouse at {}:{}: {code:?}{hint}",
        endpoint.host, endpoint.port
    ))
}
