//! What the hot-swap and fleet tests share: the admin API's token and
//! calls, continuous `/version` load on the two test guest builds, and
//! waiting for a version to be served.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Wasmhouse, client, get, send};

/// The admin token the tests start hosts with.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// An admin API request to `host`, with the token.
pub fn admin(host: &Wasmhouse, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    client()
        .request(method, host.url(path))
        .bearer_auth(ADMIN_TOKEN)
}

/// Poll until `/version` answers `version`; the time since `since`.
pub async fn wait_for_version(host: &Wasmhouse, version: i64, since: Instant) -> Duration {
    let deadline = since + Duration::from_secs(20);
    loop {
        let reply = get(&host.url("/version")).await;
        if reply.json["version"] == version {
            return since.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "version {version} never served; log:\n{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One answer under load: when it arrived, its status, the version it named
/// (-1 for none).
pub type Seen = (Instant, u16, i64);

/// Requests `/version` from several workers until finished.
pub struct VersionLoad {
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<Vec<Seen>>>,
}

impl VersionLoad {
    /// `workers` clients asking `host` without pause.
    pub fn start(host: &Wasmhouse, workers: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..workers)
            .map(|_| {
                let url = host.url("/version");
                let stop = stop.clone();
                tokio::spawn(async move {
                    let client = client();
                    let mut seen = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let reply = send(client.get(&url)).await;
                        let version = reply.json["version"].as_i64().unwrap_or(-1);
                        seen.push((Instant::now(), reply.status, version));
                    }
                    seen
                })
            })
            .collect();
        Self { stop, workers }
    }

    /// Stop; every answer in order of arrival, after checking that each was
    /// a 200 from version 1 or 2 (`label` names the host in messages).
    pub async fn finish(self, label: &str) -> Vec<Seen> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for worker in self.workers {
            all.extend(worker.await.expect("load worker"));
        }
        all.sort_by_key(|(at, _, _)| *at);
        let failed: Vec<_> = all.iter().filter(|(_, status, _)| *status != 200).collect();
        assert!(
            failed.is_empty(),
            "{label}: {} of {} requests failed: {:?}",
            failed.len(),
            all.len(),
            &failed[..failed.len().min(5)]
        );
        assert!(
            all.iter().all(|(_, _, version)| matches!(version, 1 | 2)),
            "{label} answered with an unknown version"
        );
        eprintln!("{label}: {} requests under load, none failed", all.len());
        all
    }
}
