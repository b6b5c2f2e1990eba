//! Entry points for this crate's benchmarks (`host/benches/`), which measure
//! parts of the request path that have no public API of their own. Not a
//! stable interface: hidden from the docs, and only what the benchmarks call.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use http_body_util::{BodyExt, Empty};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use wasmhouse_clickhouse::{ClickHouseConfig, ClickHousePool, Endpoint, QueryContext};

use crate::access::{AccessRules, KeySource, KeyStore, Rate, RouteAccess};
use crate::config::ServeConfig;
use crate::manifest::ComponentSource;
use crate::runtime::{Invocation, instance};
use crate::server::Server;

/// A fresh instance of one component, called once per [`Instantiate::once`]
/// the way the dispatcher runs a request (hyper left out): what the sandbox
/// costs per request.
pub struct Instantiate {
    server: Server,
    pool: Arc<ClickHousePool>,
    permits: Arc<Semaphore>,
}

impl Instantiate {
    /// Serve `component` (queries go nowhere: port 9).
    pub fn new(component: PathBuf) -> Self {
        let mut config = ServeConfig::new(ClickHouseConfig::new(Endpoint {
            host: "127.0.0.1".into(),
            port: 9,
            ..Endpoint::default()
        }));
        config.routes[0].source = ComponentSource::File(component);
        let pool = Arc::new(ClickHousePool::new(config.clickhouse.clone()).expect("pool"));
        let server = Server::new(config).expect("server");
        Self {
            server,
            pool,
            permits: Arc::new(Semaphore::new(1024)),
        }
    }

    /// One request on a fresh instance, its whole response read; its status.
    pub async fn once(&self) -> u16 {
        let deployer = self.server.dispatcher().deployer();
        let route = deployer.routes().routes()[0].clone();
        let request = hyper::Request::builder()
            .uri("/")
            .header("host", "localhost")
            .body(
                Empty::new()
                    .map_err(|never: std::convert::Infallible| match never {})
                    .boxed_unsync(),
            )
            .expect("request");
        let permit = self.permits.clone().acquire_owned().await.expect("permit");
        let deadline = Instant::now() + route.limits().timeout;
        let invocation = Invocation {
            label: route.name(),
            request_id: "bench",
            limits: route.limits(),
            deadline,
            query: QueryContext::new(self.pool.clone(), route.policy().clone(), deadline),
            slot: deployer.metrics().slot(permit),
            metrics: route.current().metrics.clone(),
            config: route.config().clone(),
        };
        let response =
            instance::run(deployer.runtime(), route.component(), invocation, request).await;
        let status = response.status().as_u16();
        response.into_body().collect().await.expect("body");
        status
    }
}

/// A route's access checks with two keys loaded.
pub struct Access {
    keys: KeyStore,
    client: IpAddr,
    limited: RouteAccess,
    key_only: RouteAccess,
}

impl Access {
    /// Keys `bench-key-0123456789` and another; a route with an API key and
    /// generous per-key and per-client rate limits, and one with a key only.
    pub fn new() -> Self {
        let keys = KeySource {
            file: None,
            inline: Some("bench=bench-key-0123456789,other=other-key".into()),
        }
        .load()
        .expect("keys");
        let generous = Rate::parse("1000000000/s", None).expect("rate");
        Self {
            keys,
            client: "203.0.113.7".parse().expect("address"),
            limited: RouteAccess::new(AccessRules {
                api_key: true,
                per_key: Some(generous),
                per_client: Some(generous),
            }),
            key_only: RouteAccess::new(AccessRules {
                api_key: true,
                ..AccessRules::default()
            }),
        }
    }

    /// The key looked up, then both rate limits; whether it was let in.
    pub fn key_and_limits(&self) -> bool {
        self.limited
            .check(
                "route",
                &self.keys,
                Some("bench-key-0123456789"),
                self.client,
            )
            .is_ok()
    }

    /// The key looked up; whether it was let in.
    pub fn key_only(&self) -> bool {
        self.key_only
            .check(
                "route",
                &self.keys,
                Some("bench-key-0123456789"),
                self.client,
            )
            .is_ok()
    }
}

impl Default for Access {
    fn default() -> Self {
        Self::new()
    }
}
