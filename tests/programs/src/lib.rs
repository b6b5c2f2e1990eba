//! Paths of the test guests, built for `wasm32-wasip2` by this crate's
//! `build.rs` once per build (as wasmtime's `test-programs` do), so no test
//! run builds a guest itself.
//!
//! - [`HOSTILE_V1`]: `tests/guests/hostile`, the misbehaving guest and the
//!   attacker of the security tests.
//! - [`HOSTILE_V2`]: the same built with its `v2` feature (answers
//!   `/version` with 2), for the hot-swap tests.
//! - [`EMPTY`]: `bench/guests/empty`, the smallest `wasi:http` handler.

/// The hostile test guest.
pub const HOSTILE_V1: &str = env!("WASMHOUSE_TEST_HOSTILE_V1");
/// The hostile test guest, version 2.
pub const HOSTILE_V2: &str = env!("WASMHOUSE_TEST_HOSTILE_V2");
/// The empty handler.
pub const EMPTY: &str = env!("WASMHOUSE_TEST_EMPTY");
