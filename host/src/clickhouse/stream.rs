//! A query's result, streamed chunk by chunk as ClickHouse sends it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use reqwest::header::AUTHORIZATION;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::error::{QueryError, find_trailing_exception};
use super::policy::ErrorContext;
use super::pool::{PoolInner, unavailable};

/// How many trailing bytes are held back until the next chunk arrives.
///
/// ClickHouse reports an error that happens after it has sent `200 OK` by
/// appending `Code: N, … DB::Exception …` to the body. Holding the tail back
/// lets us turn that into an error instead of handing it on as data.
const HOLD_BACK: usize = 16 * 1024;

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// The rows of a running query.
///
/// Holds one of the pool's permits until it is finished or dropped; dropping
/// it before the end cancels the query on the server.
pub struct RowStream {
    body: ByteStream,
    held: VecDeque<Bytes>,
    held_len: usize,
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
            held: VecDeque::new(),
            held_len: 0,
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
            if let Some(front) = self.held.front()
                && (self.body_done || self.held_len - front.len() >= HOLD_BACK)
            {
                let chunk = self.held.pop_front().unwrap_or_default();
                self.held_len -= chunk.len();
                return Ok(Some(chunk));
            }
            if self.body_done {
                self.guard.finished();
                return Ok(None);
            }
            match tokio::time::timeout_at(self.deadline, self.body.next()).await {
                Err(_) => return Err(self.fail(QueryError::Timeout)),
                Ok(Some(Ok(chunk))) => {
                    if !chunk.is_empty() {
                        self.held_len += chunk.len();
                        self.held.push_back(chunk);
                    }
                }
                Ok(Some(Err(err))) => {
                    let err = unavailable(&self.guard.pool.config, &err);
                    return Err(self.fail(err));
                }
                Ok(None) => {
                    self.body_done = true;
                    self.guard.finished();
                    if let Some(err) = self.trailing_exception() {
                        return Err(self.fail(err));
                    }
                }
            }
        }
    }

    fn fail(&mut self, err: QueryError) -> QueryError {
        self.failed = true;
        self.held.clear();
        self.held_len = 0;
        err
    }

    /// An exception ClickHouse appended after the rows it had sent.
    fn trailing_exception(&mut self) -> Option<QueryError> {
        if self.held.is_empty() {
            return None;
        }
        let mut tail = BytesMut::with_capacity(self.held_len);
        for chunk in &self.held {
            tail.extend_from_slice(chunk);
        }
        let (_, exception) = find_trailing_exception(&tail)?;
        Some(self.errors.classify(exception))
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
                .client
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
