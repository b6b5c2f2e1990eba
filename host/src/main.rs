//! The `wasmhouse` command: parse flags, then hand over to the library.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use wasmhouse::ServeArgs;
use wasmhouse::healthcheck::{self, HealthcheckArgs};
use wasmhouse::load::{self, LoadArgs};
use wasmhouse::project;

/// Serve HTTP APIs over ClickHouse with route logic as WebAssembly components.
/// Every request allocates a store, resource tables and buffers and frees
/// them soon after; mimalloc's thread-local free lists beat glibc's malloc on
/// that pattern (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "wasmhouse", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Log lines as human-readable text or one JSON object each.
    #[arg(
        long,
        global = true,
        env = "WASMHOUSE_LOG_FORMAT",
        value_name = "WASMHOUSE_LOG_FORMAT",
        default_value = "human"
    )]
    log_format: wasmhouse::telemetry::LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Serve routes: a fresh sandboxed instance of the component per request.
    Serve(Box<ServeArgs>),
    /// Send GET requests at a URL (`-n` in total, `-c` at once, or for `-d`)
    /// and summarise latency percentiles, statuses, errors and distinct ids.
    Load(LoadArgs),
    /// Plug the ClickHouse adapter into a route component so it runs on
    /// Spin, `wasmtime serve` or `jco serve`.
    Compose(ComposeArgs),
    /// GET /health on the local server: exit 0 on a 2xx answer, 1 otherwise
    /// (a container HEALTHCHECK without curl).
    Healthcheck(HealthcheckArgs),
    /// Write a new route project (Rust, JavaScript or Python) into a directory.
    New(project::NewArgs),
    /// Build the route project here; its component's path is the last line.
    Build(project::BuildArgs),
    /// Push a component to an OCI registry (the Wasm OCI format Spin and
    /// `serve oci://…` read), or point a tag at one already there.
    Push(wasmhouse::publish::PushArgs),
    /// Build the route project, serve it with a local ClickHouse (unless
    /// one is configured) and rebuild and swap it on every save.
    Dev(Box<project::DevArgs>),
}

#[derive(clap::Args)]
struct ComposeArgs {
    /// The route component; the built-in seed routes when absent.
    #[arg(conflicts_with = "sql")]
    guest: Option<std::path::PathBuf>,
    /// Compose the built-in SQL route component instead: it serves the
    /// `.sql` text of the environment's `WASMHOUSE_CONFIG_SQL` (and reads
    /// `WASMHOUSE_CONFIG_NAME`, `WASMHOUSE_CONFIG_PATH`) where the runtime
    /// has no `wasi:config/store` of its own.
    #[arg(long)]
    sql: bool,
    /// Where to write the composed component.
    #[arg(short, long)]
    output: std::path::PathBuf,
}

fn main() -> ExitCode {
    // Must happen before anything reads the environment on another thread.
    prepare_environment();
    // Every HTTP client of the process (ClickHouse, OTLP, `load`) uses rustls.
    wasmhouse_clickhouse::host::tls::install_crypto_provider();
    let cli = Cli::parse();
    let format = cli.log_format;
    let result = match cli.command {
        Command::Serve(args) => with_telemetry(format, || serve(*args)),
        Command::Compose(args) => with_telemetry(format, || compose(&args)),
        Command::Load(args) => with_telemetry(format, || load(&args)),
        Command::New(args) => project::new_project(&args),
        Command::Build(args) => project::build(&args),
        Command::Push(args) => wasmhouse::publish::push(&args),
        Command::Dev(args) => with_telemetry(format, || project::dev(*args)),
        // No telemetry: a probe run every few seconds exports no spans and
        // prints one line, nothing else.
        Command::Healthcheck(args) => return healthcheck(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Run `command` with logging and tracing set up; dropping the guard at the
/// end flushes the spans still buffered.
fn with_telemetry(
    format: wasmhouse::telemetry::LogFormat,
    command: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let _telemetry = wasmhouse::telemetry::init(format)?;
    command()
}

fn healthcheck(args: &HealthcheckArgs) -> ExitCode {
    let (line, healthy) = healthcheck::run(args);
    println!("{line}");
    if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn load(args: &LoadArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(load::run(args))?;
    let text = if args.json {
        serde_json::to_string_pretty(&report)?
    } else {
        report.to_string()
    };
    // A closed pipe (`wasmhouse load … | head`) is not an error worth a panic.
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}") {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(err.into()),
        _ => Ok(()),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let listen = args.listen;
    let config = args.into_config()?;
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("listening on {listen} (WASMHOUSE_LISTEN)"))?;
    // Requests are served on worker threads of their own; this small runtime
    // runs signals, the admin API and file watching.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the control runtime")?
        .block_on(wasmhouse::serve_until_signalled(listener, config))
}

fn compose(args: &ComposeArgs) -> anyhow::Result<()> {
    let guest = match &args.guest {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None if args.sql => wasmhouse::SQL_COMPONENT.to_vec(),
        None => wasmhouse::BUILTIN_COMPONENT.to_vec(),
    };
    let composed = wasmhouse::compose::compose(&guest)?;
    std::fs::write(&args.output, &composed)
        .with_context(|| format!("writing {}", args.output.display()))?;
    let imports = wasmhouse::compose::imports(&composed).map_err(anyhow::Error::msg)?;
    println!(
        "wrote {} ({} bytes); it imports {}",
        args.output.display(),
        composed.len(),
        imports.join(", ")
    );
    Ok(())
}

/// Load `.env` from the working directory (or the file `WASMHOUSE_ENV_FILE`
/// names) without overriding the real environment, and keep error
/// backtraces off the request path.
fn prepare_environment() {
    let (path, explicit) = wasmhouse::env_file();
    match dotenvy::from_path(&path) {
        Ok(()) => {}
        Err(err) if err.not_found() && !explicit => {}
        Err(err) => {
            eprintln!(
                "error: reading {} (WASMHOUSE_ENV_FILE): {err}",
                path.display()
            );
            std::process::exit(2);
        }
    }
    // `anyhow` captures a backtrace for every error when RUST_BACKTRACE is
    // set, which costs microseconds on every guest failure. Keep panics'
    // backtraces, drop errors' unless asked for explicitly.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        set_env("RUST_LIB_BACKTRACE", "0");
    }
}

#[expect(
    unsafe_code,
    reason = "set_var is unsafe in edition 2024; called before any thread starts"
)]
fn set_env(key: &str, value: &str) {
    // SAFETY: called at the start of main, before the runtime or any other
    // thread exists, so nothing reads the environment concurrently.
    unsafe { std::env::set_var(key, value) };
}
