//! Micro-benchmark: what a route's API key and rate-limit checks cost per
//! request (a key looked up by its hash, a per-key and a per-client token
//! bucket): `cargo bench -p wasmhouse --bench access`.

use criterion::{Criterion, criterion_group, criterion_main};
use wasmhouse::bench::Access;

fn check(c: &mut Criterion) {
    let access = Access::new();
    c.bench_function("api key + per-key + per-client rate limits", |b| {
        b.iter(|| assert!(access.key_and_limits()))
    });
    c.bench_function("api key only", |b| b.iter(|| access.key_only()));
}

#[allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]
mod group {
    use super::*;

    criterion_group!(benches, check);
}

criterion_main!(group::benches);
