//! The Wasmtime side: engines and linkers, components compiled once, and a
//! fresh store and instance for every request.
//!
//! Compilation is tiered: a component never compiled before is compiled
//! first with Wasmtime's baseline compiler (Winch, about a tenth of the
//! time), serves at once, and is compiled again with the optimising one
//! (Cranelift) in the background at low priority, then upgraded in place
//! ([`component`]). Each compiler has an engine of its own: code from one
//! cannot run in the other's stores.
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
pub(crate) mod reset;
pub(crate) mod store;

use std::sync::{Arc, Weak, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker};
use wasmtime::error::Context as _;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Strategy};

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

/// How route components are compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Compilation {
    /// Baseline code first (Winch: serving within a second), optimised code
    /// (Cranelift) swapped in when the background compile is done. A
    /// component the compile cache holds starts optimised.
    #[default]
    Tiered,
    /// Optimised code only: a new component serves once Cranelift is done.
    Optimized,
    /// Baseline code only, never optimised (to measure what the baseline
    /// compiler's code costs; a component it cannot compile gets optimised
    /// code).
    Baseline,
}

/// Which compiler made a component's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tier {
    /// Winch: fast to compile, slower to run.
    Baseline,
    /// Cranelift.
    Optimized,
}

impl Tier {
    /// How the admin API names it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::Optimized => "optimized",
        }
    }
}

/// One compiler's engine, and the linker made for it.
pub(crate) struct Engines {
    /// The engine code compiled by `tier` runs in.
    pub(crate) engine: Engine,
    /// Its linker: WASI p2, `wasi:http`, ClickHouse, `wasi:config`.
    pub(crate) linker: Linker<RequestState>,
    /// Which compiler it compiles with.
    pub(crate) tier: Tier,
}

/// The engines and linkers every route component is compiled and linked
/// with.
#[derive(Clone)]
pub(crate) struct Runtime {
    optimized: Arc<Engines>,
    /// `None` when compilation is not tiered.
    baseline: Option<Arc<Engines>>,
    cpu: CpuSlots,
    compile_cache: Option<CompileCache>,
    compilation: Compilation,
    /// Where components serving baseline code queue for their optimising
    /// compile; `None` when not tiered, and in the worker's own copy.
    tier_up: Option<mpsc::Sender<TierUp>>,
}

/// A component waiting for its optimised code.
struct TierUp {
    /// Gone if the component was dropped (replaced, evicted) meanwhile.
    component: Weak<RouteComponent>,
    bytes: Vec<u8>,
}

impl Runtime {
    /// Build the engines (pooling allocator, epoch interruption) and their
    /// linkers with WASI p2, `wasi:http`, the ClickHouse capability and
    /// `wasi:config`; start the epoch ticker.
    ///
    /// With `compile_cache`, optimised machine code is kept in that directory
    /// (keyed by the component's hash and the engine's settings), so a
    /// restart loads components instead of compiling them.
    pub(crate) fn new(
        sizing: PoolSizing,
        compile_cache: Option<&std::path::Path>,
        compilation: Compilation,
    ) -> anyhow::Result<Self> {
        let optimized = Engines::new(sizing, Tier::Optimized)?;
        let baseline = match compilation {
            Compilation::Tiered | Compilation::Baseline => {
                Some(Arc::new(Engines::new(sizing, Tier::Baseline)?))
            }
            Compilation::Optimized => None,
        };
        let compile_cache = compile_cache.and_then(|directory| {
            CompileCache::open(directory, &optimized.engine)
                .inspect_err(|err| {
                    tracing::warn!(
                        directory = %directory.display(),
                        error = %format!("{err:#}"),
                        "compile cache unavailable; components are compiled at every start"
                    );
                })
                .ok()
        });
        start_epoch_ticker(
            std::iter::once(&optimized.engine)
                .chain(baseline.as_deref().map(|tier| &tier.engine))
                .collect(),
        );
        let mut runtime = Self {
            optimized: Arc::new(optimized),
            baseline,
            cpu: CpuSlots::for_this_machine(),
            compile_cache,
            compilation,
            tier_up: None,
        };
        if compilation == Compilation::Tiered {
            runtime.tier_up = Some(start_tier_up(runtime.clone())?);
        }
        Ok(runtime)
    }

    /// Queue the optimising compile of `component` (serving baseline code;
    /// `bytes` are its bytes).
    pub(crate) fn tier_up(&self, component: &Arc<RouteComponent>, bytes: &[u8]) {
        let Some(queue) = &self.tier_up else { return };
        let job = TierUp {
            component: Arc::downgrade(component),
            bytes: bytes.to_vec(),
        };
        if queue.send(job).is_err() {
            tracing::warn!(
                sha256 = component.sha256(),
                "the optimising compiler is gone; this component keeps its baseline code"
            );
        }
    }

    /// The optimising compiler's engine and linker.
    pub(crate) fn optimized(&self) -> &Engines {
        &self.optimized
    }

    /// The baseline compiler's engine and linker, when it is used
    /// (`tiered` or `baseline` compilation).
    pub(crate) fn baseline(&self) -> Option<&Engines> {
        self.baseline.as_deref()
    }

    /// The CPU slots heavy guests share.
    pub(crate) fn cpu(&self) -> &CpuSlots {
        &self.cpu
    }

    /// The optimised code of the component with SHA-256 `sha256`, if the
    /// compile cache holds it (mapped from its file: fast) and optimised
    /// code may serve.
    pub(crate) fn cached(&self, sha256: &str) -> Option<Component> {
        if self.compilation == Compilation::Baseline {
            return None;
        }
        self.compile_cache
            .as_ref()?
            .cached(&self.optimized.engine, sha256)
    }

    /// Compile the component `bytes` with the baseline compiler, at normal
    /// priority (it takes a tenth of the optimising compile). Not cached: it
    /// serves only until the optimised code is ready. `None` when the
    /// baseline compiler is not used.
    pub(crate) fn compile_baseline(&self, bytes: &[u8]) -> Option<wasmtime::Result<Component>> {
        let baseline = self.baseline.as_ref()?;
        let compile = || Component::new(&baseline.engine, bytes);
        let component = match baseline_compile_pool() {
            Some(pool) => pool.install(compile),
            None => compile(),
        };
        release_compile_memory();
        Some(component)
    }

    /// Compile the component `bytes` (SHA-256 `sha256`) with the optimising
    /// compiler, or map it from the compile cache when it was compiled
    /// before. With `background`, or for a large component, the compile
    /// runs at low priority.
    ///
    /// A large component (an interpreter's, [`LARGE_COMPILE_BYTES`] or more)
    /// compiles for many seconds: it does so at a lower CPU priority than
    /// serving, on a thread and a compile pool of its own, so a deploy under
    /// load costs the requests little and takes longer instead, in the time
    /// they leave. A small one compiles at normal priority: it is done in a
    /// fraction of a second, and a swap should be too.
    pub(crate) fn compile_optimized(
        &self,
        sha256: &str,
        bytes: &[u8],
        background: bool,
    ) -> wasmtime::Result<Component> {
        let engine = &self.optimized.engine;
        let compile = || match &self.compile_cache {
            Some(cache) => cache.component(engine, sha256, bytes),
            None => {
                let component = Component::new(engine, bytes);
                release_compile_memory();
                component
            }
        };
        let Some(pool) = (background || bytes.len() >= LARGE_COMPILE_BYTES)
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

impl Engines {
    /// An engine compiling with `tier`'s compiler, and its linker.
    fn new(sizing: PoolSizing, tier: Tier) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(sizing)))
            .epoch_interruption(true)
            .parallel_compilation(true)
            // Routes are WASI 0.2 components: no component-model async.
            // Said here, not left to the default, which follows the crate
            // features of whatever else links Wasmtime into the same build
            // (the test suite's `wasmtime serve` turns them on).
            .concurrency_support(false)
            .strategy(match tier {
                Tier::Baseline => Strategy::Winch,
                Tier::Optimized => Strategy::Cranelift,
            });
        let engine = Engine::new(&config)
            .with_context(|| format!("creating the Wasmtime engine ({} code)", tier.name()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .context("linking WASI p2 interfaces")?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .context("linking wasi:http interfaces")?;
        wasmhouse_clickhouse::add_to_linker(&mut linker, RequestState::clickhouse)
            .context("linking the wasmhouse:clickhouse interface")?;
        wasmtime_wasi_config::add_to_linker(&mut linker, RequestState::config)
            .context("linking the wasi:config interface")?;
        Ok(Self {
            engine,
            linker,
            tier,
        })
    }
}

/// The pooling allocator's configuration for `sizing`.
fn pooling(sizing: PoolSizing) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    // Where the kernel can say which pages an instance wrote and nothing of
    // this process can be swapped out ([`reset`]), only written pages are
    // restored from the image, and they stay mapped for the next instance
    // in the slot: no page faults, no madvise and none of the TLB
    // shootdowns they cost on every core. Otherwise everything past the
    // first `keep_resident_bytes` is given back and faulted in again.
    let reset = memory_reset();
    let keep_resident = if reset.pagemap_scan {
        pool.pagemap_scan(wasmtime::Enabled::Yes);
        sizing.keep_resident_bytes.max(PAGEMAP_KEEP_RESIDENT)
    } else {
        pool.pagemap_scan(wasmtime::Enabled::No);
        sizing.keep_resident_bytes
    };
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
    pool
}

/// The memory reset of this process, chosen once and logged once.
pub(crate) fn memory_reset() -> &'static reset::MemoryReset {
    static RESET: std::sync::OnceLock<reset::MemoryReset> = std::sync::OnceLock::new();
    RESET.get_or_init(|| {
        let chosen = reset::MemoryReset::for_this_machine();
        tracing::info!(
            pagemap_scan = chosen.pagemap_scan,
            why = %chosen.why,
            "instance memory reset"
        );
        chosen
    })
}

/// Components at least this big compile at low priority
/// ([`Runtime::compile_optimized`]): a Rust route (0.3–1.5 MB) compiles in a
/// few hundred ms, one embedding an interpreter (14–19 MB) in 5–15 s. The
/// same line as the one for start turns ([`cpu::LARGE_COMPONENT_BYTES`]).
const LARGE_COMPILE_BYTES: usize = cpu::LARGE_COMPONENT_BYTES;

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

/// Threads of the baseline compile pool per core.
const BASELINE_THREADS_PER_CORE: usize = 4;

/// The rayon pool baseline code compiles on, made on first use: more
/// threads than cores, at normal priority, so that under full load the
/// compile gets most of the machine (the scheduler shares the cores per
/// thread) for the second or two it takes, and a new component serves
/// soon. `None` (the global pool) if it cannot be made.
fn baseline_compile_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let cores = thread::available_parallelism().map_or(1, usize::from);
        rayon::ThreadPoolBuilder::new()
            .num_threads(cores * BASELINE_THREADS_PER_CORE)
            .thread_name(|i| format!("wasmhouse-baseline-{i}"))
            .build()
            .inspect_err(|err| {
                tracing::warn!(error = %err, "no baseline compile pool; baseline code compiles on the global pool");
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

/// Start the thread that compiles optimised code for components serving
/// baseline code, one at a time, at low priority, and swaps it in. It ends
/// when every other copy of `runtime` is gone (the queue closes).
fn start_tier_up(runtime: Runtime) -> anyhow::Result<mpsc::Sender<TierUp>> {
    let (queue, jobs) = mpsc::channel::<TierUp>();
    thread::Builder::new()
        .name("wasmhouse-tier-up".into())
        .spawn(move || {
            for job in jobs {
                // Not worth compiling for a component nothing serves.
                let Some(sha256) = job.component.upgrade().map(|c| c.sha256().to_owned()) else {
                    continue;
                };
                let started = Instant::now();
                let compiled = runtime.compile_optimized(&sha256, &job.bytes, true);
                let Some(component) = job.component.upgrade() else {
                    continue;
                };
                let upgraded = compiled
                    .map_err(|err| ComponentError::Compile(format!("{err:#}")))
                    .and_then(|compiled| component.upgrade(&runtime, &compiled));
                match upgraded {
                    Ok(()) => tracing::info!(
                        sha256,
                        seconds = started.elapsed().as_secs_f64(),
                        "optimised code compiled; it serves from now on"
                    ),
                    Err(err) => tracing::warn!(
                        sha256,
                        error = %err,
                        "the optimising compile failed; the component keeps its baseline code"
                    ),
                }
            }
        })
        .context("starting the optimising compiler's thread")?;
    Ok(queue)
}

/// Advance the engines' epochs every [`EPOCH_TICK`] until they are gone.
fn start_epoch_ticker(engines: Vec<&Engine>) {
    let weak: Vec<_> = engines.into_iter().map(Engine::weak).collect();
    let spawned = thread::Builder::new()
        .name("wasmhouse-epoch".into())
        .spawn(move || {
            loop {
                let mut alive = false;
                for engine in weak.iter().filter_map(|weak| weak.upgrade()) {
                    engine.increment_epoch();
                    alive = true;
                }
                if !alive {
                    break;
                }
                thread::sleep(EPOCH_TICK);
            }
        });
    if let Err(err) = spawned {
        tracing::error!(error = %err, "could not start the epoch ticker; guest deadlines rely on wall-clock timeouts only");
    }
}
