//! A query's result, streamed chunk by chunk as ClickHouse sends it, and
//! cancelled on the server when it is abandoned.
//!
//! A client that hangs up, or a deadline that passes, must not leave a query
//! running for nobody: the result's [`QueryGuard`] sends `KILL QUERY` when it
//! is dropped unfinished. Cancellation has connections of its own (the
//! [`Canceller`]), so it never competes with or reaches back into the query
//! pool, and a bound on how many cancellations are in flight: a flood of
//! abandoned requests cannot become a flood of requests to ClickHouse. A
//! query that cannot be cancelled at once still ends at its
//! `max_execution_time`.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::transport::unavailable;
use crate::error::QueryError;
use crate::policy::QueryPolicy;
use crate::response::{DEFAULT_HOLD_BACK, HoldBack};

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
    policy: Arc<QueryPolicy>,
    _permit: OwnedSemaphorePermit,
}

impl RowStream {
    pub(super) fn new(
        response: reqwest::Response,
        guard: QueryGuard,
        permit: OwnedSemaphorePermit,
        deadline: Instant,
        policy: Arc<QueryPolicy>,
    ) -> Self {
        Self {
            body: Box::pin(response.bytes_stream()),
            held: HoldBack::new(DEFAULT_HOLD_BACK),
            body_done: false,
            failed: false,
            guard,
            deadline,
            policy,
            _permit: permit,
        }
    }

    /// The id ClickHouse knows this query by.
    pub fn query_id(&self) -> &str {
        self.guard.query_id()
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
                    let err = unavailable(self.guard.query_id(), err);
                    return Err(self.fail(err));
                }
                Ok(None) => {
                    self.body_done = true;
                    self.guard.finished();
                    if let Err(exception) = self.held.finish() {
                        let err = self.policy.classify(exception);
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

/// Most `KILL QUERY` requests in flight at once.
pub const MAX_CANCELLATIONS_IN_FLIGHT: usize = 16;

/// Budget of one `KILL QUERY` request.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `KILL QUERY` for abandoned queries.
pub struct Canceller {
    client: reqwest::Client,
    url: reqwest::Url,
    authorization: HeaderValue,
    in_flight: Arc<Semaphore>,
}

impl Canceller {
    /// A canceller for the server at `base_url`, logging in with `authorization`.
    pub fn new(
        base_url: reqwest::Url,
        authorization: HeaderValue,
        connect_timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(CANCEL_TIMEOUT)
            .pool_max_idle_per_host(1)
            .http1_only()
            .no_proxy()
            .build()?;
        Ok(Self {
            client,
            url: base_url,
            authorization,
            in_flight: Arc::new(Semaphore::new(MAX_CANCELLATIONS_IN_FLIGHT)),
        })
    }

    /// A guard that cancels query `query_id` when dropped unfinished.
    pub fn guard(self: &Arc<Self>, query_id: String) -> QueryGuard {
        QueryGuard {
            canceller: self.clone(),
            query_id,
            done: false,
        }
    }

    fn cancel(&self, query_id: String) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            tracing::warn!(
                %query_id,
                "too many cancellations in flight; the query ends at its max_execution_time"
            );
            return;
        };
        // The id is the host's own (`wasmhouse-` and hex), never guest text.
        let sql = format!("KILL QUERY WHERE query_id = '{query_id}' ASYNC");
        let request = self
            .client
            .post(self.url.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .body(sql);
        runtime.spawn(async move {
            let _permit = permit;
            match request.send().await {
                Ok(response) if response.status().is_success() => {
                    tracing::debug!(%query_id, "cancelled abandoned query");
                }
                Ok(response) => {
                    tracing::warn!(%query_id, status = %response.status(), "KILL QUERY failed");
                }
                Err(err) => {
                    tracing::debug!(%query_id, error = %err.without_url(), "KILL QUERY not sent");
                }
            }
        });
    }
}

/// Cancels its query on the server unless marked finished first.
pub struct QueryGuard {
    canceller: Arc<Canceller>,
    query_id: String,
    done: bool,
}

impl QueryGuard {
    /// The id ClickHouse knows the query by.
    pub fn query_id(&self) -> &str {
        &self.query_id
    }

    /// The query ended on the server; nothing to cancel.
    pub fn finished(&mut self) {
        self.done = true;
    }
}

impl Drop for QueryGuard {
    fn drop(&mut self) {
        if !self.done {
            self.canceller.cancel(std::mem::take(&mut self.query_id));
        }
    }
}
