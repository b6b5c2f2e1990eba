//! Cancelling abandoned queries: a [`QueryGuard`] sends `KILL QUERY` to the
//! server that runs its query when it is dropped unfinished, through a
//! [`Canceller`] with connections of its own and a bound on cancellations
//! in flight.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use tokio::sync::Semaphore;

use super::metrics::{CancelOutcome, ClickHouseMetrics};

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
    metrics: Arc<ClickHouseMetrics>,
}

impl Canceller {
    /// A canceller for the server at `base_url`, logging in with
    /// `authorization`, on connections of its own (`client`).
    pub fn new(
        base_url: reqwest::Url,
        authorization: HeaderValue,
        client: reqwest::Client,
        metrics: Arc<ClickHouseMetrics>,
    ) -> Self {
        Self {
            client,
            url: base_url,
            authorization,
            in_flight: Arc::new(Semaphore::new(MAX_CANCELLATIONS_IN_FLIGHT)),
            metrics,
        }
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
            self.metrics.cancelled(CancelOutcome::skipped);
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
            .timeout(CANCEL_TIMEOUT)
            .body(sql);
        let metrics = self.metrics.clone();
        runtime.spawn(async move {
            let _permit = permit;
            match request.send().await {
                Ok(response) if response.status().is_success() => {
                    metrics.cancelled(CancelOutcome::sent);
                    tracing::debug!(%query_id, "cancelled abandoned query");
                }
                Ok(response) => {
                    metrics.cancelled(CancelOutcome::failed);
                    tracing::warn!(%query_id, status = %response.status(), "KILL QUERY failed");
                }
                Err(err) => {
                    metrics.cancelled(CancelOutcome::failed);
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
