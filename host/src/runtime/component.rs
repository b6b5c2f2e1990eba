//! Route components: compiled once, validated, pre-instantiated.

use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use super::{RequestState, Runtime};

/// Why a component cannot serve routes. Each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ComponentError {
    /// The bytes are not a WebAssembly component (a core module, say).
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    /// Wasmtime could not compile it.
    #[error("the component does not compile: {0}")]
    Compile(String),
    /// It imports something the host does not provide.
    #[error("the component imports what wasmhouse does not provide: {0}")]
    Imports(String),
    /// It does not export `wasi:http/incoming-handler`.
    #[error("the component does not export wasi:http/incoming-handler@0.2.x: {0}")]
    Exports(String),
    /// Reading the file failed.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// A compiled, validated route component, ready to instantiate per request.
pub(crate) struct RouteComponent {
    pre: ProxyPre<RequestState>,
    sha256: String,
    size: usize,
    loaded_at: SystemTime,
}

impl RouteComponent {
    /// Compile `bytes` and check that the component exports
    /// `wasi:http/incoming-handler` and imports only what the host provides.
    /// Slow (it compiles): keep it off the request path.
    pub(crate) fn compile(runtime: &Runtime, bytes: &[u8]) -> Result<Arc<Self>, ComponentError> {
        if wasmparser::Parser::is_core_wasm(bytes) {
            return Err(ComponentError::NotAComponent(
                "this is a core module; build for wasm32-wasip2 or run `wasm-tools component new`"
                    .into(),
            ));
        }
        if !wasmparser::Parser::is_component(bytes) {
            return Err(ComponentError::NotAComponent(
                "the bytes do not start with the WebAssembly component header".into(),
            ));
        }
        let sha256 = hex_sha256(bytes);
        let component = runtime
            .compile(&sha256, bytes)
            .map_err(|err| ComponentError::Compile(format!("{err:#}")))?;
        let instance_pre = runtime
            .linker()
            .instantiate_pre(&component)
            .map_err(|err| ComponentError::Imports(format!("{err:#}")))?;
        let pre = ProxyPre::new(instance_pre)
            .map_err(|err| ComponentError::Exports(format!("{err:#}")))?;
        Ok(Arc::new(Self {
            pre,
            sha256,
            size: bytes.len(),
            loaded_at: SystemTime::now(),
        }))
    }

    /// The pre-instantiated component.
    pub(crate) fn pre(&self) -> &ProxyPre<RequestState> {
        &self.pre
    }

    /// SHA-256 of the component's bytes, hex.
    pub(crate) fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Size of the component in bytes.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// When this component was compiled.
    pub(crate) fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }
}

/// Hex SHA-256 of `bytes`.
pub(crate) fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
