//! Unix signals for the `wasmhouse` process: SIGINT and SIGTERM shut down
//! gracefully, SIGHUP reloads the routes.

use std::sync::Arc;

use crate::deploy::Deployer;

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown() {
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

/// Reload `deployer`'s routes on every SIGHUP, for as long as it lives.
pub(crate) async fn reload_on_sighup(deployer: Arc<Deployer>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reload with the admin API instead");
            return;
        };
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading routes");
            if let Err(err) = deployer.reload().await {
                tracing::error!(error = %err, "reload failed; the previous routes keep serving");
            }
        }
    }
    #[cfg(not(unix))]
    drop(deployer);
}
