//! Micro-benchmark: what the sandbox costs per request. A fresh store and
//! instance of the smallest `wasi:http` handler, one call, the response
//! collected: `cargo bench -p wasmhouse --bench instantiate`.

#[path = "../../tests/common/guests.rs"]
#[allow(dead_code, reason = "the bench uses one of the shared test guests")]
mod guests;

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Empty};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use wasmhouse::manifest::ComponentSource;
use wasmhouse::runtime::{Invocation, instance};
use wasmhouse::{ServeConfig, Server};
use wasmhouse_clickhouse::{ClickHouseConfig, ClickHousePool, Endpoint, QueryContext};

/// The allocator the `wasmhouse` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn instantiate_and_call(c: &mut Criterion) {
    // A single-threaded runtime, like each of the server's worker threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut config = ServeConfig::new(ClickHouseConfig::new(Endpoint {
        host: "127.0.0.1".into(),
        port: 9,
        ..Endpoint::default()
    }));
    config.routes[0].source = ComponentSource::File(guests::empty());
    let pool = Arc::new(ClickHousePool::new(config.clickhouse.clone()).expect("pool"));
    let server = Server::new(config).expect("server");
    let deployer = server.dispatcher().deployer().clone();
    let route = deployer.routes().routes()[0].clone();
    let permits = Arc::new(Semaphore::new(1024));

    c.bench_function("instantiate + empty handler + response", |b| {
        b.to_async(&runtime).iter(|| async {
            let request = hyper::Request::builder()
                .uri("/")
                .header("host", "localhost")
                .body(
                    Empty::new()
                        .map_err(|never: std::convert::Infallible| match never {})
                        .boxed_unsync(),
                )
                .expect("request");
            let permit = permits.clone().acquire_owned().await.expect("permit");
            let deadline = Instant::now() + route.limits().timeout;
            let invocation = Invocation {
                label: route.name(),
                request_id: "bench",
                limits: route.limits(),
                deadline,
                query: QueryContext::new(pool.clone(), route.policy().clone(), deadline),
                slot: deployer.metrics().slot(permit),
                metrics: route.current().metrics.clone(),
            };
            let response =
                instance::run(deployer.runtime(), route.component(), invocation, request).await;
            assert_eq!(response.status(), 200);
            response.into_body().collect().await.expect("body");
        });
    });
}

#[allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]
mod group {
    use super::*;

    criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = instantiate_and_call
    }
}

criterion_main!(group::benches);
