//! The parts of ClickHouse's HTTP protocol that both the wasmhouse host and
//! the portable adapter component need, with no I/O and no dependencies, so
//! they behave the same on every runtime:
//!
//! - [`params`]: `{name:Type}` placeholders, values checked against their
//!   types and bound safely.
//! - [`exception`]: ClickHouse's error texts, parsed.
//! - [`settings`]: the settings a guest may pass.
//! - [`holdback`]: holding back the tail of a result until it is known not
//!   to be an exception ClickHouse appended after `200 OK`.

pub mod exception;
pub mod holdback;
pub mod params;
pub mod settings;

pub use exception::ServerException;
pub use holdback::HoldBack;
pub use params::{BindError, BindMode, BoundQuery, bind};
