//! A query's result, streamed chunk by chunk as ClickHouse sends it.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::cancel::QueryGuard;
use super::client::unavailable;
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
