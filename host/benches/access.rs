//! Micro-benchmark: what a route's API key and rate-limit checks cost per
//! request (a key looked up by its hash, a per-key and a per-client token
//! bucket): `cargo bench -p wasmhouse --bench access`.

use std::net::IpAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use wasmhouse::access::{AccessRules, KeySource, Rate, RouteAccess};

fn check(c: &mut Criterion) {
    let keys = KeySource {
        file: None,
        inline: Some("bench=bench-key-0123456789,other=other-key".into()),
    }
    .load()
    .expect("keys");
    let generous = Rate::parse("1000000000/s", None).expect("rate");
    let access = RouteAccess::new(AccessRules {
        api_key: true,
        per_key: Some(generous),
        per_client: Some(generous),
    });
    let client: IpAddr = "203.0.113.7".parse().expect("address");
    c.bench_function("api key + per-key + per-client rate limits", |b| {
        b.iter(|| {
            let admitted = access.check("route", &keys, Some("bench-key-0123456789"), client);
            assert!(admitted.is_ok());
        })
    });
    let key_only = RouteAccess::new(AccessRules {
        api_key: true,
        ..AccessRules::default()
    });
    c.bench_function("api key only", |b| {
        b.iter(|| key_only.check("route", &keys, Some("bench-key-0123456789"), client))
    });
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
