//! Route components: compiled once, validated, pre-instantiated.

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use super::{Engines, RequestState, Runtime, Tier};

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
///
/// Its code can change under it once: baseline code serves first, and the
/// optimised code replaces it when its background compile is done (see
/// [`super`]). Requests take the code they start with ([`Self::code`]).
pub(crate) struct RouteComponent {
    code: ArcSwap<Compiled>,
    sha256: String,
    size: usize,
    loaded_at: SystemTime,
}

/// One compile of a component: its code, linked and pre-instantiated.
pub(crate) struct Compiled {
    pre: ProxyPre<RequestState>,
    tier: Tier,
}

impl Compiled {
    /// Link `component`, compiled by `engines`, and check its imports and
    /// exports.
    fn link(engines: &Engines, component: &Component) -> Result<Self, ComponentError> {
        let instance_pre = engines
            .linker
            .instantiate_pre(component)
            .map_err(|err| ComponentError::Imports(format!("{err:#}")))?;
        let pre = ProxyPre::new(instance_pre)
            .map_err(|err| ComponentError::Exports(format!("{err:#}")))?;
        Ok(Self {
            pre,
            tier: engines.tier,
        })
    }

    /// The pre-instantiated component.
    pub(crate) fn pre(&self) -> &ProxyPre<RequestState> {
        &self.pre
    }

    /// The engine its stores are made in.
    pub(crate) fn engine(&self) -> &Engine {
        self.pre.engine()
    }

    /// Which compiler made it.
    pub(crate) fn tier(&self) -> Tier {
        self.tier
    }
}

impl RouteComponent {
    /// Compile `bytes` (whose hex SHA-256 is `sha256`) and check that the
    /// component exports `wasi:http/incoming-handler` and imports only what
    /// the host provides.
    /// Slow (it compiles): keep it off the request path.
    ///
    /// Optimised code from the compile cache is used as it is. Otherwise,
    /// when compilation is tiered, the baseline compiler's code is returned
    /// and the optimising compile is queued; where the baseline compiler
    /// cannot compile the component (a Wasm feature it lacks), the
    /// optimising compiler does, before this returns.
    pub(crate) fn compile(
        runtime: &Runtime,
        bytes: &[u8],
        sha256: String,
    ) -> Result<Arc<Self>, ComponentError> {
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
        let new = |code: Compiled| {
            Arc::new(Self {
                code: ArcSwap::from_pointee(code),
                sha256: sha256.clone(),
                size: bytes.len(),
                loaded_at: SystemTime::now(),
            })
        };
        if let Some(component) = runtime.cached(&sha256) {
            return Ok(new(Compiled::link(runtime.optimized(), &component)?));
        }
        let started = std::time::Instant::now();
        if let Some((engines, compiled)) = runtime.baseline().zip(runtime.compile_baseline(bytes)) {
            match compiled {
                Ok(component) => {
                    tracing::info!(
                        sha256,
                        seconds = started.elapsed().as_secs_f64(),
                        "baseline code compiled"
                    );
                    let route = new(Compiled::link(engines, &component)?);
                    runtime.tier_up(&route, bytes);
                    return Ok(route);
                }
                Err(err) => tracing::info!(
                    sha256,
                    why = %format!("{err:#}"),
                    "the baseline compiler cannot compile this component; compiling optimised code only"
                ),
            }
        }
        let component = runtime
            .compile_optimized(&sha256, bytes, false)
            .map_err(|err| ComponentError::Compile(format!("{err:#}")))?;
        Ok(new(Compiled::link(runtime.optimized(), &component)?))
    }

    /// The code a request starting now runs.
    pub(crate) fn code(&self) -> Arc<Compiled> {
        self.code.load_full()
    }

    /// Which compiler made the code serving now.
    pub(crate) fn tier(&self) -> Tier {
        self.code.load().tier()
    }

    /// Replace baseline code with the optimised `component` (its bytes are
    /// this component's). Requests already running keep the code they
    /// started with.
    pub(crate) fn upgrade(
        &self,
        runtime: &Runtime,
        component: &Component,
    ) -> Result<(), ComponentError> {
        let compiled = Compiled::link(runtime.optimized(), component)?;
        self.code.store(Arc::new(compiled));
        Ok(())
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
