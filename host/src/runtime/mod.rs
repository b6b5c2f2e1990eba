//! The Wasmtime side: one engine, one linker, components compiled once, and a
//! fresh store and instance for every request.
//!
//! It knows nothing of routes or deployments: it compiles what it is given
//! and runs one request in one fresh instance under the limits it is given.
//!
//! - [`compile_cache`]: compiled components kept on disk and mapped.
//! - [`component`]: compiling and validating route components.
//! - [`instance`]: one request in a fresh instance: its store, memory
//!   budget, share of the CPU (epoch yields, heavy guests), and its run.

pub(crate) mod compile_cache;
pub(crate) mod component;
pub(crate) mod cpu;
pub mod instance;
pub(crate) mod store;

use std::thread;
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::error::Context as _;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub(crate) use compile_cache::CompileCache;
pub(crate) use component::{ComponentError, RouteComponent};
pub(crate) use cpu::CpuSlots;
pub(crate) use instance::{InstanceLimits, Invocation};
pub(crate) use store::RequestState;

/// How often the epoch advances. Guest code yields to other requests at
/// least this often and its deadline is checked at this granularity.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Default most instances alive at once (the in-flight request limit).
pub(crate) const DEFAULT_MAX_INSTANCES: u32 = 512;
/// Default largest linear memory of one instance.
pub(crate) const DEFAULT_MEMORY_LIMIT: usize = 64 << 20;
/// Default bytes of each memory kept resident between instances.
pub(crate) const DEFAULT_KEEP_RESIDENT: usize = 256 << 10;
/// Most bytes of each memory kept resident between instances where the
/// kernel reports which pages were written: only written pages are kept
/// (restored from the image), so a small guest keeps what it always did and
/// a large one (an interpreter's heap) the first runs of what it writes
/// (Wasmtime scans for at most 32 runs). For the Python seed guest this cut
/// page faults per request by a sixth and raised throughput 10–20%; allowing
/// 16 MiB saved no more faults than 4 (BENCHMARKS.md, "Routes in Python").
const PAGEMAP_KEEP_RESIDENT: usize = 4 << 20;

/// Sizing of the pooling allocator, fixed for the life of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolSizing {
    /// Most instances alive at once; the in-flight request limit.
    pub(crate) max_instances: u32,
    /// Largest linear memory any instance may have, in bytes.
    pub(crate) max_memory_bytes: usize,
    /// Bytes of each memory kept resident between instances: reset with
    /// `memset` rather than returned to the kernel, avoiding `madvise` and
    /// the TLB shoot-downs it causes on every request.
    pub(crate) keep_resident_bytes: usize,
}

impl Default for PoolSizing {
    fn default() -> Self {
        Self {
            max_instances: DEFAULT_MAX_INSTANCES,
            max_memory_bytes: DEFAULT_MEMORY_LIMIT,
            keep_resident_bytes: DEFAULT_KEEP_RESIDENT,
        }
    }
}

/// The engine and linker every route component is compiled and linked with.
#[derive(Clone)]
pub(crate) struct Runtime {
    engine: Engine,
    linker: Linker<RequestState>,
    cpu: CpuSlots,
    compile_cache: Option<CompileCache>,
}

impl Runtime {
    /// Build the engine (pooling allocator, epoch interruption) and a linker
    /// with WASI p2, `wasi:http` and the ClickHouse capability; start the
    /// epoch ticker.
    ///
    /// With `compile_cache`, compiled machine code is kept in that directory
    /// (keyed by the component's hash and the engine's settings), so a
    /// restart loads components instead of compiling them.
    pub(crate) fn new(
        sizing: PoolSizing,
        compile_cache: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let mut pool = PoolingAllocationConfig::new();
        // Where the kernel can say which pages an instance wrote
        // (PAGEMAP_SCAN, Linux 6.7+), only those are restored from the image,
        // and they stay mapped for the next instance in the slot: no page
        // faults, no madvise and none of the TLB shootdowns they cost on
        // every core. Without it, everything past the first
        // `keep_resident_bytes` is given back and faulted in again.
        let pagemap = PoolingAllocationConfig::is_pagemap_scan_available();
        let keep_resident = if pagemap {
            pool.pagemap_scan(wasmtime::Enabled::Yes);
            sizing.keep_resident_bytes.max(PAGEMAP_KEEP_RESIDENT)
        } else {
            sizing.keep_resident_bytes
        };
        tracing::debug!(pagemap, keep_resident, "instance memory reset");
        let instances = sizing.max_instances;
        pool.total_component_instances(instances)
            // A Rust guest is a handful of core instances (its module plus
            // the shims wit-component adds); a composed one a few more.
            .max_core_instances_per_component(32)
            .total_core_instances(instances.saturating_mul(8))
            .max_memories_per_component(4)
            .total_memories(instances.saturating_mul(2))
            .max_tables_per_component(32)
            .total_tables(instances.saturating_mul(8))
            .total_stacks(instances)
            .max_memory_size(sizing.max_memory_bytes)
            .linear_memory_keep_resident(keep_resident)
            .table_keep_resident(keep_resident)
            .decommit_batch_size(64);
        let mut config = Config::new();
        config
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .epoch_interruption(true)
            .parallel_compilation(true);
        let engine = Engine::new(&config).context("creating the Wasmtime engine")?;
        let compile_cache = compile_cache.and_then(|directory| {
            CompileCache::open(directory, &engine)
                .inspect_err(|err| {
                    tracing::warn!(
                        directory = %directory.display(),
                        error = %format!("{err:#}"),
                        "compile cache unavailable; components are compiled at every start"
                    );
                })
                .ok()
        });

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .context("linking WASI p2 interfaces")?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .context("linking wasi:http interfaces")?;
        wasmhouse_clickhouse::add_to_linker(&mut linker, RequestState::clickhouse)
            .context("linking the wasmhouse:clickhouse interface")?;
        wasmtime_wasi_config::add_to_linker(&mut linker, RequestState::config)
            .context("linking the wasi:config interface")?;

        start_epoch_ticker(&engine);
        Ok(Self {
            engine,
            linker,
            cpu: CpuSlots::for_this_machine(),
            compile_cache,
        })
    }

    /// The engine.
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The linker components are instantiated with.
    pub(crate) fn linker(&self) -> &Linker<RequestState> {
        &self.linker
    }

    /// The CPU slots heavy guests share.
    pub(crate) fn cpu(&self) -> &CpuSlots {
        &self.cpu
    }

    /// Compile the component `bytes` (SHA-256 `sha256`), or map it from the
    /// compile cache when it was compiled before.
    ///
    ///
    /// A large component (an interpreter's, [`LARGE_COMPILE_BYTES`] or more)
    /// compiles for many seconds: it does so at a lower CPU priority than
    /// serving, on a thread and a compile pool of its own, so a deploy under
    /// load costs the requests little and takes longer instead, in the time
    /// they leave. A small one compiles at normal priority: it is done in a
    /// fraction of a second, and a swap should be too.
    pub(crate) fn compile(&self, sha256: &str, bytes: &[u8]) -> wasmtime::Result<Component> {
        let compile = || match &self.compile_cache {
            Some(cache) => cache.component(&self.engine, sha256, bytes),
            None => {
                let component = Component::new(&self.engine, bytes);
                release_compile_memory();
                component
            }
        };
        let Some(pool) = (bytes.len() >= LARGE_COMPILE_BYTES)
            .then(background_compile_pool)
            .flatten()
        else {
            return compile();
        };
        thread::scope(|scope| {
            let compiling = thread::Builder::new()
                .name("wasmhouse-compile".into())
                .spawn_scoped(scope, || {
                    lower_this_thread_priority();
                    // Wasmtime's parallel compile runs on the pool it is
                    // called from.
                    pool.install(compile)
                })
                .map_err(|err| wasmtime::format_err!("starting a compile thread: {err}"))?;
            compiling
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

/// Components at least this big compile at low priority
/// ([`Runtime::compile`]): a Rust route is well under it (0.3–1.5 MB, compiled
/// in a few hundred ms), one embedding a JavaScript or Python interpreter
/// (14–19 MB, 5–15 s of compiling) over it.
const LARGE_COMPILE_BYTES: usize = 4 << 20;

/// The nice value of low-priority compile threads: where requests want the
/// cores, such a compile gets about a tenth of one, and all that they leave.
const COMPILE_NICE: i32 = 10;

/// The rayon pool large components compile on, its threads at
/// [`COMPILE_NICE`]; made on first use. `None` (compile at normal priority)
/// if it cannot be made.
fn background_compile_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("wasmhouse-compile-{i}"))
            .start_handler(|_| lower_this_thread_priority())
            .build()
            .inspect_err(|err| {
                tracing::warn!(error = %err, "no low-priority compile pool; large components compile at normal priority");
            })
            .ok()
    })
    .as_ref()
}

/// Lower the calling thread's CPU priority to [`COMPILE_NICE`] (on Linux a
/// nice value is per thread). Best effort: where it is refused, the thread
/// keeps its priority.
fn lower_this_thread_priority() {
    // SAFETY: setpriority takes no pointers; `who` 0 is the calling thread.
    #[expect(unsafe_code, reason = "a call into libc")]
    let refused = unsafe { libc::setpriority(libc::PRIO_PROCESS as _, 0, COMPILE_NICE) } != 0;
    if refused {
        tracing::debug!(error = %std::io::Error::last_os_error(), "could not lower a compile thread's priority");
    }
}

/// Give the memory compiling used back to the system now.
///
/// Cranelift frees what it used on its compile threads, and those threads
/// end; mimalloc (the binary's allocator) would purge the freed pages after a
/// delay, but only when a thread using that memory allocates again, which no
/// thread does: a host that compiled one component at start kept about
/// 10 MiB more resident for the rest of its life (BENCHMARKS.md). A forced
/// collection purges them. Harmless where mimalloc is not the allocator
/// (tests): it then tidies only mimalloc's own unused arenas.
pub(crate) fn release_compile_memory() {
    // SAFETY: `mi_collect` takes no pointers and may be called from any
    // thread at any time; it only returns mimalloc's free memory.
    #[expect(unsafe_code, reason = "a call into mimalloc's C API")]
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}

/// Advance the engine's epoch every [`EPOCH_TICK`] until the engine is gone.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = thread::Builder::new()
        .name("wasmhouse-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                thread::sleep(EPOCH_TICK);
            }
        });
    if let Err(err) = spawned {
        tracing::error!(error = %err, "could not start the epoch ticker; guest deadlines rely on wall-clock timeouts only");
    }
}
