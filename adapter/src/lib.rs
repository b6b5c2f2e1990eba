//! `wasmhouse:clickhouse/query` implemented over outgoing `wasi:http`.
//!
//! Composed with a route component (`wasmhouse compose`), it lets the very
//! same guest run on runtimes that know nothing of wasmhouse: Spin,
//! `wasmtime serve`, `jco serve`. It reads where ClickHouse is from the
//! component's environment, with the host's names:
//!
//! - `CLICKHOUSE_URL` (`http://user:password@host:port/database`), or
//! - `CLICKHOUSE_HOST`, `CLICKHOUSE_PORT`, `CLICKHOUSE_USER`,
//!   `CLICKHOUSE_PASSWORD`, `CLICKHOUSE_DATABASE`;
//! - `CLICKHOUSE_ALLOW_WRITES=1` to lift the read-only default.
//!
//! It also gives the guest `wasi:config/store` (the SQL route component
//! reads its file there): key `sql` is the environment's
//! `WASMHOUSE_CONFIG_SQL`, and so on.
//!
//! Every rule it applies comes from `wasmhouse-clickhouse`, the crate the
//! host uses: URL parsing, the statement allow-list, the setting allow-list,
//! the server-side caps, parameter binding, error classification and the
//! held-back result tail. Only the transport is its own.
//!
//! **Not a security boundary.** The credentials live in the component's
//! environment and the guest shares the component's outgoing `wasi:http`:
//! a hostile guest can read them and talk to ClickHouse directly. The
//! adapter makes an honest guest portable; isolating a hostile one is what
//! the wasmhouse host is for.
//!
//! Compared with the host: parameters are always bound as typed literals
//! (no server-side `param_`), there is no connection pool of its own (the
//! platform decides) and no time budget beyond the platform's.

mod config;
mod request;

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "wasmhouse:clickhouse/adapter",
        generate_all,
    });
}

use std::cell::RefCell;

use bindings::exports::wasmhouse::clickhouse::query::{self, Guest, GuestRows};
use bindings::wasi::io::streams::{OutputStream, StreamError};
use wasmhouse_clickhouse::QueryError;
use wasmhouse_clickhouse::QueryPolicy;
use wasmhouse_clickhouse::params::BindMode;
use wasmhouse_clickhouse::response::{DEFAULT_HOLD_BACK, HoldBack, Next};

use config::Settings;
use request::ResponseBody;

struct Adapter;

impl bindings::exports::wasi::config::store::Guest for Adapter {
    fn get(key: String) -> Result<Option<String>, bindings::exports::wasi::config::store::Error> {
        Ok(config::value(&key))
    }

    fn get_all() -> Result<Vec<(String, String)>, bindings::exports::wasi::config::store::Error> {
        Ok(config::configured())
    }
}

impl Guest for Adapter {
    type Rows = Rows;

    fn execute(sql: String, options: query::Options) -> Result<query::Rows, query::Error> {
        let settings = Settings::from_environment().map_err(query::Error::Unavailable)?;
        // Checked and bound as on the host: the statement check reads the
        // bound text.
        let (_, bound) = settings
            .policy
            .check(&sql, &options.params, &options.settings, BindMode::Inline)
            .map_err(to_wit)?;
        let query_id = request::query_id();
        let body = request::send(&settings, &bound.sql, &options, &query_id)?;
        Ok(query::Rows::new(Rows {
            query_id,
            policy: settings.policy,
            state: RefCell::new(RowsState {
                body: Some(body),
                held: HoldBack::new(DEFAULT_HOLD_BACK),
            }),
        }))
    }

    /// The adapter keeps no cache across requests (a component instance
    /// lives for one): the query runs.
    fn execute_cached(
        sql: String,
        options: query::Options,
        _cache: query::CacheOptions,
    ) -> Result<query::Rows, query::Error> {
        Self::execute(sql, options)
    }

    fn server() -> query::Endpoint {
        match Settings::from_environment() {
            Ok(Settings { endpoint, .. }) => query::Endpoint {
                host: endpoint.host,
                port: endpoint.port,
                database: endpoint.database,
            },
            Err(_) => query::Endpoint {
                host: String::new(),
                port: 0,
                database: String::new(),
            },
        }
    }

    /// The one server the environment names; whether it is up is known only
    /// by querying it.
    fn replicas() -> Vec<query::Replica> {
        match Settings::from_environment() {
            Ok(_) => vec![query::Replica {
                endpoint: Self::server(),
                healthy: true,
                in_flight: 0,
                error: None,
            }],
            Err(_) => Vec::new(),
        }
    }
}

/// A result being read from the response body.
struct Rows {
    query_id: String,
    policy: QueryPolicy,
    state: RefCell<RowsState>,
}

struct RowsState {
    body: Option<ResponseBody>,
    held: HoldBack<Vec<u8>>,
}

impl GuestRows for Rows {
    fn next(&self) -> Result<Option<Vec<u8>>, query::Error> {
        let mut state = self.state.borrow_mut();
        loop {
            match state.held.step() {
                Next::Chunk(chunk) => return Ok(Some(chunk)),
                Next::Done => return Ok(None),
                Next::Read => {}
            }
            // A failed result has no body left: it is over.
            let Some(body) = state.body.as_mut() else {
                return Ok(None);
            };
            match body.read() {
                Ok(Some(chunk)) => state.held.push(chunk),
                Ok(None) => {
                    state.body = None;
                    if let Err(exception) = state.held.end() {
                        return Err(to_wit(self.policy.classify(exception)));
                    }
                }
                Err(err) => {
                    state.held.clear();
                    state.body = None;
                    return Err(err);
                }
            }
        }
    }

    fn forward(&self, out: &OutputStream) -> Result<u64, query::Error> {
        let mut written = 0u64;
        while let Some(chunk) = self.next()? {
            written += chunk.len() as u64;
            write_all(out, &chunk).map_err(|err| {
                query::Error::Unavailable(format!("the response stream closed: {err:?}"))
            })?;
        }
        Ok(written)
    }

    fn query_id(&self) -> String {
        self.query_id.clone()
    }
}

fn write_all(out: &OutputStream, bytes: &[u8]) -> Result<(), StreamError> {
    // WASI's own blocking write takes at most 4096 bytes a call.
    for piece in bytes.chunks(4096) {
        out.blocking_write_and_flush(piece)?;
    }
    Ok(())
}

/// The WIT form of a failure the shared rules report.
fn to_wit(err: QueryError) -> query::Error {
    wasmhouse_clickhouse::wit_error!(err, query)
}

// Exported on wasm32 only: a native build (tests, `cargo build --workspace`)
// has no WASI imports to link the export against.
#[cfg(target_arch = "wasm32")]
#[expect(unsafe_code, reason = "wit-bindgen's generated export glue")]
mod export {
    use super::Adapter;
    crate::bindings::export!(Adapter with_types_in crate::bindings);
}
