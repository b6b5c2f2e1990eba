//! Micro-benchmark: what the sandbox costs per request. A fresh store and
//! instance of the smallest `wasi:http` handler, one call, the response
//! collected: `cargo bench -p wasmhouse --bench instantiate`.

#[path = "../../tests/common/files.rs"]
#[allow(dead_code, reason = "the shared test guests' module needs it")]
mod files;
#[path = "../../tests/common/guests.rs"]
#[allow(dead_code, reason = "the bench uses one of the shared test guests")]
mod guests;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use wasmhouse::bench::Instantiate;

/// The allocator the `wasmhouse` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn instantiate_and_call(c: &mut Criterion) {
    // A single-threaded runtime, like each of the server's worker threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let bench = Instantiate::new(guests::empty());
    c.bench_function("instantiate + empty handler + response", |b| {
        b.to_async(&runtime).iter(|| async {
            assert_eq!(bench.once().await, 200);
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
