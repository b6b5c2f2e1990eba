//! `wasmhouse load`: fire N requests at once at a route and summarise them,
//! like the seed service's `test_concurrent.py`.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

/// Flags of `wasmhouse load`.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// URL to request.
    #[arg(default_value = "http://127.0.0.1:8000/concurrent/test-isolation?delay=1")]
    pub url: String,

    /// Number of requests.
    #[arg(short = 'n', long, default_value_t = 20)]
    pub requests: usize,

    /// Requests in flight at once (default: all of them).
    #[arg(short = 'c', long)]
    pub concurrency: Option<usize>,

    /// Give up on a request after this long.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What a load run saw.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The URL requested.
    pub url: String,
    /// Requests sent.
    pub requests: usize,
    /// Time from the first request sent to the last answer, seconds.
    pub wall_s: f64,
    /// Fastest answer, milliseconds.
    pub min_ms: f64,
    /// Mean latency, milliseconds.
    pub mean_ms: f64,
    /// 95th percentile latency, milliseconds.
    pub p95_ms: f64,
    /// Slowest answer, milliseconds.
    pub max_ms: f64,
    /// Answers per status code (`"error"` for transport failures).
    pub statuses: BTreeMap<String, usize>,
    /// Distinct `request_id` values in JSON answers.
    pub distinct_request_ids: usize,
    /// Distinct `instance_id` values in JSON answers.
    pub distinct_instance_ids: usize,
}

struct Outcome {
    latency: Duration,
    status: String,
    request_id: Option<String>,
    instance_id: Option<String>,
}

/// Run the load described by `args`.
pub async fn run(args: &LoadArgs) -> anyhow::Result<LoadReport> {
    anyhow::ensure!(args.requests > 0, "--requests must be at least 1");
    let concurrency = args.concurrency.unwrap_or(args.requests).max(1);
    let client = reqwest::Client::builder()
        .timeout(args.timeout)
        .pool_max_idle_per_host(concurrency)
        .no_proxy()
        .build()?;
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.requests {
        let client = client.clone();
        let url = args.url.clone();
        let semaphore = semaphore.clone();
        tasks.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            let sent = Instant::now();
            match client.get(&url).send().await {
                Ok(response) => {
                    let status = response.status().as_u16().to_string();
                    let body = response.bytes().await.unwrap_or_default();
                    let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
                    let field = |name: &str| {
                        json.as_ref()
                            .and_then(|j| j.get(name))
                            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    };
                    Outcome {
                        latency: sent.elapsed(),
                        status,
                        request_id: field("request_id"),
                        instance_id: field("instance_id"),
                    }
                }
                Err(_) => Outcome {
                    latency: sent.elapsed(),
                    status: "error".into(),
                    request_id: None,
                    instance_id: None,
                },
            }
        });
    }
    let mut outcomes = Vec::with_capacity(args.requests);
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(joined?);
    }
    let wall = started.elapsed();
    Ok(summarise(&args.url, wall, &outcomes))
}

fn summarise(url: &str, wall: Duration, outcomes: &[Outcome]) -> LoadReport {
    let mut latencies: Vec<f64> = outcomes
        .iter()
        .map(|o| o.latency.as_secs_f64() * 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let n = latencies.len().max(1);
    let p95_index = ((n as f64) * 0.95).ceil() as usize;
    let mut statuses = BTreeMap::new();
    for outcome in outcomes {
        *statuses.entry(outcome.status.clone()).or_insert(0) += 1;
    }
    let distinct = |pick: fn(&Outcome) -> Option<&String>| {
        outcomes
            .iter()
            .filter_map(pick)
            .collect::<HashSet<_>>()
            .len()
    };
    LoadReport {
        url: url.to_owned(),
        requests: outcomes.len(),
        wall_s: wall.as_secs_f64(),
        min_ms: latencies.first().copied().unwrap_or(0.0),
        mean_ms: latencies.iter().sum::<f64>() / n as f64,
        p95_ms: latencies
            .get(p95_index.saturating_sub(1).min(n - 1))
            .copied()
            .unwrap_or(0.0),
        max_ms: latencies.last().copied().unwrap_or(0.0),
        statuses,
        distinct_request_ids: distinct(|o| o.request_id.as_ref()),
        distinct_instance_ids: distinct(|o| o.instance_id.as_ref()),
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} requests to {}", self.requests, self.url)?;
        writeln!(f, "  wall time     {:.3} s", self.wall_s)?;
        writeln!(
            f,
            "  latency (ms)  min {:.1}  mean {:.1}  p95 {:.1}  max {:.1}",
            self.min_ms, self.mean_ms, self.p95_ms, self.max_ms
        )?;
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(status, count)| format!("{status} x{count}"))
            .collect();
        writeln!(f, "  statuses      {}", statuses.join(", "))?;
        writeln!(f, "  request ids   {} distinct", self.distinct_request_ids)?;
        write!(f, "  instance ids  {} distinct", self.distinct_instance_ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(ms: u64, status: &str, instance: &str) -> Outcome {
        Outcome {
            latency: Duration::from_millis(ms),
            status: status.into(),
            request_id: Some(format!("r{ms}")),
            instance_id: Some(instance.into()),
        }
    }

    #[test]
    fn summary_counts_statuses_and_distinct_ids() {
        let outcomes: Vec<Outcome> = (1..=20)
            .map(|i| {
                outcome(
                    i * 10,
                    if i == 20 { "503" } else { "200" },
                    if i % 2 == 0 { "a" } else { "b" },
                )
            })
            .collect();
        let report = summarise("http://x", Duration::from_secs(1), &outcomes);
        assert_eq!(report.statuses.get("200"), Some(&19));
        assert_eq!(report.statuses.get("503"), Some(&1));
        assert_eq!(report.distinct_request_ids, 20);
        assert_eq!(report.distinct_instance_ids, 2);
        assert_eq!(report.min_ms, 10.0);
        assert_eq!(report.max_ms, 200.0);
        assert_eq!(report.p95_ms, 190.0);
    }
}
