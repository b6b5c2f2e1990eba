//! The `wasmhouse` command: parse flags, then hand over to the library.

use std::process::ExitCode;

use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use wasmhouse::ServeArgs;
use wasmhouse::app::App;
use wasmhouse::load::{self, LoadArgs};
use wasmhouse::server::{self, Listener};

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
    let admin_listener = match config.admin.listen {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("listening on {address} (WASMHOUSE_ADMIN_LISTEN)"))?,
        ),
        None => None,
    };
    let app = Arc::new(App::new(&config)?);
    app.watch_component_files();
    let address = listener.local_addr()?;
    tracing::info!(
        %address,
        clickhouse = %format!("{}:{}", config.clickhouse.host, config.clickhouse.port),
        routes = app.routes().routes().len(),
        "ready"
    );
    // Plain lines on stdout that scripts (and the tests) can wait for; the
    // main listener's comes last and means "ready".
    if let Some(admin_listener) = &admin_listener {
        println!(
            "wasmhouse admin listening on http://{}",
            admin_listener.local_addr()?
        );
    }
    println!("wasmhouse listening on http://{address}");

    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            shutdown_signal().await;
            shutdown.cancel();
        }
    });
    tokio::spawn(reload_on_sighup(app.clone()));
    let grace = config.shutdown_grace;
    let admin = admin_listener.map(|admin_listener| {
        let app = app.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            server::run(
                admin_listener,
                app,
                Listener::Admin,
                grace,
                shutdown.cancelled_owned(),
            )
            .await
        })
    });
    let main = server::run(
        listener,
        app,
        Listener::Main,
        grace,
        shutdown.clone().cancelled_owned(),
    )
    .await;
    if let Some(admin) = admin {
        admin.await.context("admin listener task")??;
    }
    main
}

/// Reload the manifest (or component file) on every SIGHUP.
async fn reload_on_sighup(app: Arc<App>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reload with the admin API instead");
            return;
        };
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading routes");
            if let Err(err) = app.reload().await {
                tracing::error!(error = %err, "reload failed; the previous routes keep serving");
            }
        }
    }
    #[cfg(not(unix))]
    drop(app);
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
