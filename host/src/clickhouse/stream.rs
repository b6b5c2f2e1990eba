//! A query's result, streamed chunk by chunk as ClickHouse sends it.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::AUTHORIZATION;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use wasmhouse_sql::HoldBack;
use wasmhouse_sql::holdback::DEFAULT_HOLD_BACK;

use super::error::QueryError;
use super::policy::ErrorContext;
use super::pool::{PoolInner, unavailable};

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// The rows of a running query.
///
/// Holds one of the pool's permits until it is finished or dropped; dropping
/// it before the end cancels the query on the server.
pub struct RowStream {
    body: ByteStream,
    /// The result's tail, held until it is known not to be an exception
    /// ClickHouse appended after `200 OK`.
    held: HoldBack<Bytes>,
    body_done: bool,
    failed: bool,
    guard: QueryGuard,
    deadline: Instant,
    errors: ErrorContext,
    _permit: OwnedSemaphorePermit,
}

impl RowStream {
    pub(super) fn new(
        response: reqwest::Response,
        guard: QueryGuard,
        permit: OwnedSemaphorePermit,
        deadline: Instant,
        errors: ErrorContext,
    ) -> Self {
        Self {
            body: Box::pin(response.bytes_stream()),
            held: HoldBack::new(DEFAULT_HOLD_BACK),
            body_done: false,
            failed: false,
            guard,
            deadline,
            errors,
            _permit: permit,
        }
    }

    /// The id ClickHouse knows this query by.
    pub fn query_id(&self) -> &str {
        &self.guard.query_id
    }

    /// The next chunk of the result, `None` once it is complete.
    ///
    /// Chunks arrive as the server sends them, so memory stays flat however
    /// large the result; the guest pulls, which is the backpressure.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, QueryError> {
        if self.failed {
            return Err(QueryError::Unavailable("the result already failed".into()));
        }
        loop {
            let ready = if self.body_done {
                self.held.pop_any()
            } else {
                self.held.pop_ready()
            };
            if let Some(chunk) = ready {
                return Ok(Some(chunk));
            }
            if self.body_done {
                return Ok(None);
            }
            match tokio::time::timeout_at(self.deadline, self.body.next()).await {
                Err(_) => return Err(self.fail(QueryError::Timeout)),
                Ok(Some(Ok(chunk))) => self.held.push(chunk),
                Ok(Some(Err(err))) => {
                    let err = unavailable(&self.guard.pool.config, &err);
                    return Err(self.fail(err));
                }
                Ok(None) => {
                    self.body_done = true;
                    self.guard.finished();
                    if let Err(exception) = self.held.finish() {
                        let err = self.errors.classify(exception);
                        return Err(self.fail(err));
                    }
                }
            }
        }
    }

    fn fail(&mut self, err: QueryError) -> QueryError {
        self.failed = true;
        self.held.clear();
        err
    }
}

/// Cancels a query on the server unless it is marked finished first: a
/// client that hangs up or a deadline that passes must not leave a query
/// running for nobody.
pub(super) struct QueryGuard {
    pool: Arc<PoolInner>,
    query_id: String,
    done: bool,
}

impl QueryGuard {
    pub(super) fn new(pool: Arc<PoolInner>, query_id: String) -> Self {
        Self {
            pool,
            query_id,
            done: false,
        }
    }

    /// The query ended on the server; nothing to cancel.
    pub(super) fn finished(&mut self) {
        self.done = true;
    }
}

impl Drop for QueryGuard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = self.pool.clone();
        let query_id = std::mem::take(&mut self.query_id);
        runtime.spawn(async move {
            let config = &pool.config;
            let sql = format!("KILL QUERY WHERE query_id = '{query_id}' ASYNC");
            let url = format!("http://{}:{}/", bracket(&config.host), config.port);
            let sent = pool
                .client()
                .post(url)
                .header(AUTHORIZATION, pool.authorization.clone())
                .body(sql)
                .timeout(std::time::Duration::from_secs(5))
                .send()
                .await;
            match sent {
                Ok(response) if response.status().is_success() => {
                    tracing::debug!(%query_id, "cancelled abandoned query");
                }
                Ok(response) => {
                    tracing::warn!(%query_id, status = %response.status(), "KILL QUERY failed");
                }
                Err(err) => tracing::debug!(%query_id, error = %err, "KILL QUERY not sent"),
            }
        });
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}
