//! Several ClickHouse servers behind one pool. Each replica has its own
//! address, account, server facts and cancellations; a query goes to the
//! healthy replica with the fewest queries in flight (ties take turns), and
//! a read whose replica fails before answering is sent once more to another.
//! Health checks (`/ping`, then `SELECT 1`, and optionally the replication
//! delay) take a failing replica out and put it back once it answers again;
//! a replica that refuses a connection is taken out at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use tokio::sync::OnceCell;

use super::cancel::Canceller;
use super::config::{ClickHouseConfig, PoolError};
use super::metrics::{ClickHouseMetrics, ReplicaLabels};
use crate::endpoint::Endpoint;

/// What the server can do and what wasmhouse's account there may change,
/// learnt once from the server itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// The version string, e.g. `18.16.1`.
    pub version: String,
    /// Whether the server binds `{name:Type}` itself (19.11 and later).
    pub native_params: bool,
    /// The `readonly` level of the account's profile. At 2 the server
    /// refuses any change to `readonly` itself (it is read-only already);
    /// at 1 it refuses every setting, so the host's caps cannot be applied.
    pub profile_readonly: u8,
}

impl ServerInfo {
    pub(crate) fn from_version(version: &str) -> Self {
        let mut parts = version
            .trim()
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let major = parts.next().unwrap_or(0);
        let minor = parts.next().unwrap_or(0);
        Self {
            version: version.trim().to_owned(),
            native_params: (major, minor) >= (19, 11),
            profile_readonly: 0,
        }
    }

    /// From the `version\treadonly` line the probe query answers.
    pub(crate) fn from_probe(text: &str) -> Self {
        let (version, readonly) = text.trim().split_once('\t').unwrap_or((text, "0"));
        Self {
            profile_readonly: readonly.trim().parse().unwrap_or(0),
            ..Self::from_version(version)
        }
    }
}

/// One ClickHouse server of the pool.
pub struct Replica {
    /// `host:port`, for logs and metric labels.
    pub(crate) label: String,
    /// `http://host:port/`, parsed once.
    pub(crate) base_url: reqwest::Url,
    /// The parts of the query string that never change.
    pub(crate) base_query: String,
    pub(crate) authorization: HeaderValue,
    /// Its version and what the account may do, asked once.
    pub(crate) server: OnceCell<ServerInfo>,
    /// `KILL QUERY` goes to the server that runs the query.
    pub(crate) canceller: Arc<Canceller>,
    in_flight: AtomicUsize,
    healthy: AtomicBool,
    /// Why it was last taken out of rotation.
    out_because: std::sync::Mutex<Option<String>>,
    /// Where it is, for display.
    endpoint: Endpoint,
    healthy_gauge: Gauge,
    in_flight_gauge: Gauge,
    pub(crate) queries: Counter,
}

impl Replica {
    fn new(
        endpoint: Endpoint,
        config: &ClickHouseConfig,
        tls: &Arc<rustls::ClientConfig>,
        metrics: &Arc<ClickHouseMetrics>,
    ) -> Result<Self, PoolError> {
        let address = endpoint.base_url();
        let base_url =
            reqwest::Url::parse(&address).map_err(|err| PoolError::Address(address, err))?;
        let database: String =
            url::form_urlencoded::byte_serialize(endpoint.database.as_bytes()).collect();
        let base_query = format!("database={database}&output_format_json_quote_64bit_integers=0");
        let mut authorization = HeaderValue::from_str(&endpoint.basic_authorization())
            .map_err(|_| PoolError::Credentials)?;
        authorization.set_sensitive(true);
        let canceller = Arc::new(Canceller::new(
            base_url.clone(),
            authorization.clone(),
            super::transport::http_client(config, tls, 1)?,
            metrics.clone(),
        ));
        let labels = ReplicaLabels {
            replica: endpoint.authority(),
        };
        let replica = Self {
            label: endpoint.authority(),
            healthy_gauge: metrics.replica_healthy.get_or_create(&labels).clone(),
            in_flight_gauge: metrics.replica_in_flight.get_or_create(&labels).clone(),
            queries: metrics.replica_queries.get_or_create(&labels).clone(),
            base_url,
            base_query,
            authorization,
            server: OnceCell::new(),
            canceller,
            in_flight: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
            out_because: std::sync::Mutex::new(None),
            endpoint,
        };
        replica.healthy_gauge.set(1);
        Ok(replica)
    }

    /// `host:port`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether queries go to it.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Queries running on it now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Where it is (credentials included: never show them).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Why it is out of rotation; `None` while it is in.
    pub fn out_because(&self) -> Option<String> {
        if self.is_healthy() {
            return None;
        }
        self.out_because
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Take it out of (`false`) or put it back into (`true`) rotation.
    pub(crate) fn set_healthy(&self, healthy: bool, why: &str) {
        if !healthy {
            *self
                .out_because
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why.to_owned());
        }
        if self.healthy.swap(healthy, Ordering::Relaxed) != healthy {
            self.healthy_gauge.set(i64::from(healthy));
            if healthy {
                tracing::info!(
                    replica = self.label,
                    "ClickHouse replica is back in rotation"
                );
            } else {
                tracing::warn!(
                    replica = self.label,
                    why,
                    "ClickHouse replica taken out of rotation"
                );
            }
        }
    }

    /// Count a query on it until the returned guard is dropped.
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.in_flight_gauge.inc();
        self.queries.inc();
        InFlight(self.clone())
    }
}

/// A query running on a replica.
pub(crate) struct InFlight(Arc<Replica>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.in_flight_gauge.dec();
    }
}

/// The pool's replicas and the choice among them.
pub(crate) struct Replicas {
    list: Vec<Arc<Replica>>,
    turn: AtomicUsize,
}

impl Replicas {
    pub(crate) fn new(
        config: &ClickHouseConfig,
        tls: &Arc<rustls::ClientConfig>,
        metrics: &Arc<ClickHouseMetrics>,
    ) -> Result<Self, PoolError> {
        if config.endpoints.is_empty() {
            return Err(PoolError::NoEndpoint);
        }
        let list = config
            .endpoints
            .iter()
            .map(|endpoint| Replica::new(endpoint.clone(), config, tls, metrics).map(Arc::new))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            list,
            turn: AtomicUsize::new(0),
        })
    }

    pub(crate) fn all(&self) -> &[Arc<Replica>] {
        &self.list
    }

    /// The replica for the next query: the healthy one with the fewest
    /// queries in flight, other than `not` (the one that just failed);
    /// when none is healthy, the least busy of the others all the same (a
    /// health check may be behind). `None` only when `not` is the only one.
    pub(crate) fn pick(&self, not: Option<&Arc<Replica>>) -> Option<&Arc<Replica>> {
        if self.list.len() == 1 {
            return match not {
                Some(_) => None,
                None => self.list.first(),
            };
        }
        let start = self.turn.fetch_add(1, Ordering::Relaxed);
        let candidates = || {
            (0..self.list.len())
                .map(move |offset| &self.list[(start + offset) % self.list.len()])
                .filter(move |replica| not.is_none_or(|not| !Arc::ptr_eq(replica, not)))
        };
        candidates()
            .filter(|replica| replica.is_healthy())
            .min_by_key(|replica| replica.in_flight())
            .or_else(|| candidates().min_by_key(|replica| replica.in_flight()))
    }
}

/// Check every replica every `interval` until the task is aborted.
pub(crate) async fn check_health(
    replicas: Vec<Arc<Replica>>,
    client: reqwest::Client,
    interval: Duration,
    timeout: Duration,
    max_delay: Option<Duration>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let checks = replicas.iter().map(|replica| {
            let client = client.clone();
            async move {
                match tokio::time::timeout(timeout, probe(&client, replica, max_delay)).await {
                    Ok(Ok(())) => replica.set_healthy(true, ""),
                    Ok(Err(why)) => replica.set_healthy(false, &why),
                    Err(_) => replica.set_healthy(false, "the health check timed out"),
                }
            }
        });
        futures::future::join_all(checks).await;
    }
}

/// `/ping`, then `SELECT 1` as wasmhouse's account, then (when a bound is
/// set) the replication delay.
async fn probe(
    client: &reqwest::Client,
    replica: &Replica,
    max_delay: Option<Duration>,
) -> Result<(), String> {
    let ping = replica
        .base_url
        .join("ping")
        .map_err(|err| err.to_string())?;
    let answer = client
        .get(ping)
        .send()
        .await
        .map_err(|err| format!("/ping: {}", super::transport::explain(&err)))?;
    if !answer.status().is_success() {
        return Err(format!("/ping answered {}", answer.status()));
    }
    let one = query(client, replica, "SELECT 1").await?;
    if one.trim() != "1" {
        return Err(format!("SELECT 1 answered {:?}", one.trim()));
    }
    if let Some(max_delay) = max_delay {
        let delay = query(
            client,
            replica,
            "SELECT max(absolute_delay) FROM system.replicas",
        )
        .await?;
        let delay: u64 = delay.trim().parse().unwrap_or(0);
        if delay > max_delay.as_secs() {
            return Err(format!(
                "replication delay {delay} s is over the bound of {} s",
                max_delay.as_secs()
            ));
        }
    }
    Ok(())
}

async fn query(client: &reqwest::Client, replica: &Replica, sql: &str) -> Result<String, String> {
    let response = client
        .post(replica.base_url.clone())
        .header(AUTHORIZATION, replica.authorization.clone())
        .body(format!("{sql} FORMAT TabSeparated"))
        .send()
        .await
        .map_err(|err| format!("{sql}: {}", super::transport::explain(&err)))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|err| format!("{sql}: {}", err.without_url()))?;
    if !status.is_success() {
        return Err(format!(
            "{sql} answered {status}: {}",
            crate::response::truncate(text.trim(), 200)
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_parameters_start_at_19_11() {
        assert!(!ServerInfo::from_version("18.16.1").native_params);
        assert!(!ServerInfo::from_version("19.10.1.5").native_params);
        assert!(ServerInfo::from_version("19.11.3.11").native_params);
        assert!(ServerInfo::from_version("24.8.4.13\n").native_params);
    }

    fn replicas(hosts: &[&str]) -> Replicas {
        let mut config = ClickHouseConfig::new(Endpoint::default());
        config.endpoints = hosts
            .iter()
            .map(|host| Endpoint {
                host: (*host).to_owned(),
                ..Endpoint::default()
            })
            .collect();
        let tls = crate::host::tls::client_config(&Default::default()).expect("TLS");
        Replicas::new(&config, &tls, &Arc::new(ClickHouseMetrics::default())).expect("replicas")
    }

    #[test]
    fn the_least_busy_healthy_replica_is_picked() {
        let set = replicas(&["a", "b", "c"]);
        let [a, b, c] = [0, 1, 2].map(|i| set.all()[i].clone());
        let _busy_a = a.begin();
        let _busy_c = c.begin();
        for _ in 0..6 {
            assert_eq!(set.pick(None).map(|r| r.label()), Some(b.label()));
        }
        b.set_healthy(false, "test");
        let picked = set.pick(None).map(|r| r.label().to_owned());
        assert!(picked.as_deref() != Some(b.label()), "{picked:?}");
        // Not the one that just failed, even if it is the least busy.
        assert!(set.pick(Some(&a)).is_some_and(|r| !Arc::ptr_eq(r, &a)));
    }

    #[test]
    fn turns_are_taken_when_all_are_idle() {
        let set = replicas(&["a", "b"]);
        let picks: std::collections::HashSet<String> = (0..4)
            .filter_map(|_| set.pick(None).map(|r| r.label().to_owned()))
            .collect();
        assert_eq!(picks.len(), 2, "{picks:?}");
    }

    #[test]
    fn with_every_replica_down_the_least_busy_is_still_tried() {
        let set = replicas(&["a", "b"]);
        for replica in set.all() {
            replica.set_healthy(false, "test");
        }
        assert!(set.pick(None).is_some());
        let single = replicas(&["only"]);
        let only = single.all()[0].clone();
        assert!(single.pick(Some(&only)).is_none());
    }
}
