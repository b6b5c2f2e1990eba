//! The `wasmhouse` command: parse flags, then hand over to the library.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use wasmhouse::ServeArgs;
use wasmhouse::load::{self, LoadArgs};

/// Serve HTTP APIs over ClickHouse with route logic as WebAssembly components.
#[derive(Parser)]
#[command(name = "wasmhouse", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve routes: a fresh sandboxed instance of the component per request.
    Serve(Box<ServeArgs>),
    /// Fire N requests at once at a URL and summarise latency, statuses and
    /// distinct instance ids.
    Load(LoadArgs),
}

fn main() -> ExitCode {
    // Must happen before anything reads the environment on another thread.
    prepare_environment();
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(*args).await,
            Command::Load(args) => {
                let report = load::run(&args).await?;
                if args.json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    println!("{report}");
                }
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let listen = args.listen;
    let config = args.into_config()?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen} (WASMHOUSE_LISTEN)"))?;
    let app = std::sync::Arc::new(wasmhouse::server::App::new(&config)?);
    let address = listener.local_addr()?;
    tracing::info!(
        %address,
        clickhouse = %format!("{}:{}", config.clickhouse.host, config.clickhouse.port),
        "ready"
    );
    // One plain line on stdout that scripts (and the tests) can wait for.
    println!("wasmhouse listening on http://{address}");
    wasmhouse::server::run(listener, app, config.shutdown_grace, shutdown_signal()).await
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Load `.env` (or the file `WASMHOUSE_ENV_FILE` names) without overriding
/// the real environment, and keep error backtraces off the request path.
fn prepare_environment() {
    let loaded = match std::env::var_os("WASMHOUSE_ENV_FILE") {
        Some(path) => dotenvy::from_path(&path).map(|()| Some(path.into())),
        None => dotenvy::dotenv().map(Some),
    };
    match loaded {
        Ok(_) => {}
        Err(err) if err.not_found() => {}
        Err(err) => {
            eprintln!("error: reading the .env file: {err}");
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

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,wasmtime=warn,cranelift=warn")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
