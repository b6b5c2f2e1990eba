//! `wasmhouse load`: send GET requests at one URL and summarise what came back.
//!
//! Two ways to bound a run: `-n` requests (by default all at once, like the
//! seed's `test_concurrent.py`), or `-d` a duration with `-c` requests in
//! flight; given both, whichever ends first. Workers send requests and pass
//! each [`Outcome`] to one collector, which owns the [`Tally`] (an HDR
//! latency histogram, status and error counts, distinct ids) and the progress
//! bar, so nothing on the request path takes a lock.

use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Requests sent when neither `-n` nor `-d` is given: the seed's test.
const DEFAULT_REQUESTS: u64 = 20;

/// Requests in flight with `-d` alone: wrk's default connection count.
const DEFAULT_DURATION_CONCURRENCY: u64 = 10;

/// Longest latency the histogram tells apart; slower answers count as this.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Significant figures the histogram keeps: 0.1 % resolution at any size.
const SIGNIFICANT_FIGURES: u8 = 3;

/// Flags of `wasmhouse load`.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// URL to request (`http://` only).
    #[arg(
        default_value = "http://127.0.0.1:8000/concurrent/test-isolation?delay=1",
        value_parser = parse_url
    )]
    pub url: reqwest::Url,

    /// Total requests [default: 20 when `-d` is not given].
    #[arg(short = 'n', long, value_parser = at_least_one)]
    pub requests: Option<u64>,

    /// Requests in flight at once [default: all of `-n`, or 10 with `-d` alone].
    #[arg(short = 'c', long, value_parser = at_least_one)]
    pub concurrency: Option<u64>,

    /// Keep sending for this long (`10s`, `1m`); with `-n`, whichever ends first.
    #[arg(short = 'd', long, value_parser = positive_duration)]
    pub duration: Option<Duration>,

    /// Give up on a request after this long.
    #[arg(long, default_value = "60s", value_parser = positive_duration)]
    pub timeout: Duration,

    /// Extra request header, `-H 'Name: value'`; repeatable.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<(HeaderName, HeaderValue)>,

    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How much to send, resolved from the flags' defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    /// Requests to send at most; `None` runs until the duration is over.
    requests: Option<u64>,
    /// Stop sending (and drop what is in flight) after this long.
    duration: Option<Duration>,
    /// Requests in flight at once.
    workers: u64,
}

impl LoadArgs {
    fn plan(&self) -> Plan {
        let requests = match (self.requests, self.duration) {
            (None, None) => Some(DEFAULT_REQUESTS),
            (requests, _) => requests,
        };
        let workers = match (self.concurrency, requests) {
            (Some(concurrency), Some(requests)) => concurrency.min(requests),
            (Some(concurrency), None) => concurrency,
            (None, Some(requests)) => requests,
            (None, None) => DEFAULT_DURATION_CONCURRENCY,
        };
        Plan {
            requests,
            duration: self.duration,
            workers,
        }
    }
}

/// What a load run saw.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The URL requested.
    pub url: String,
    /// Requests in flight at once.
    pub concurrency: u64,
    /// Requests that ended, with an answer or a transport error.
    pub requests: u64,
    /// Time from the first request sent to the last one ended, seconds.
    pub wall_s: f64,
    /// `requests` over `wall_s`.
    pub requests_per_s: f64,
    /// Fastest answer, milliseconds. Latencies cover answers only, up to the
    /// last byte of the body.
    pub min_ms: f64,
    /// Mean latency, milliseconds.
    pub mean_ms: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 90th percentile latency, milliseconds.
    pub p90_ms: f64,
    /// 95th percentile latency, milliseconds.
    pub p95_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Slowest answer, milliseconds.
    pub max_ms: f64,
    /// Answers per HTTP status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Answers whose status was not 2xx.
    pub non_2xx: u64,
    /// Requests that got no answer, by kind.
    pub errors: TransportErrors,
    /// Requests still in flight when the duration ran out: dropped, and
    /// counted nowhere else.
    pub unfinished: u64,
    /// Distinct `request_id` values in JSON answers.
    pub distinct_request_ids: usize,
    /// Distinct `instance_id` values in JSON answers.
    pub distinct_instance_ids: usize,
}

/// Requests that got no answer, by why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TransportErrors {
    /// No complete answer within `--timeout`.
    pub timeout: u64,
    /// The connection could not be made.
    pub connect: u64,
    /// Anything else: a reset connection, a malformed answer.
    pub other: u64,
}

impl TransportErrors {
    /// All transport errors together.
    pub fn total(&self) -> u64 {
        self.timeout + self.connect + self.other
    }

    fn count(&mut self, kind: TransportError) {
        match kind {
            TransportError::Timeout => self.timeout += 1,
            TransportError::Connect => self.connect += 1,
            TransportError::Other => self.other += 1,
        }
    }
}

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TransportError {
    Timeout,
    Connect,
    Other,
}

impl TransportError {
    fn of(err: &reqwest::Error) -> Self {
        // A connect that hangs is both; the timeout is what the user set.
        if err.is_timeout() {
            Self::Timeout
        } else if err.is_connect() {
            Self::Connect
        } else {
            Self::Other
        }
    }
}

/// How one request ended.
#[derive(Debug)]
enum Outcome {
    /// A status line and the whole body.
    Answered {
        status: u16,
        latency: Duration,
        ids: AnswerIds,
    },
    /// No answer, or the body broke off.
    Failed(TransportError),
}

/// The ids a seed route puts in its JSON answer.
#[derive(Debug, Default, Deserialize)]
struct AnswerIds {
    #[serde(default, deserialize_with = "id_text")]
    request_id: Option<String>,
    #[serde(default, deserialize_with = "id_text")]
    instance_id: Option<String>,
}

impl AnswerIds {
    fn from_body(body: &[u8]) -> Self {
        // Serde would read an array positionally as the struct's fields.
        if !body.trim_ascii_start().starts_with(b"{") {
            return Self::default();
        }
        // Not JSON after all: an answer without ids, not an error.
        serde_json::from_slice(body).unwrap_or_default()
    }
}

/// An id as text, whether the route sent it as a string or a number.
fn id_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(
        Option::<serde_json::Value>::deserialize(deserializer)?.map(|value| match value {
            serde_json::Value::String(text) => text,
            other => other.to_string(),
        }),
    )
}

/// Everything a run counts.
#[derive(Debug)]
struct Tally {
    latency_us: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    errors: TransportErrors,
    request_ids: HashSet<String>,
    instance_ids: HashSet<String>,
}

impl Tally {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            latency_us: Histogram::new_with_max(MAX_LATENCY_US, SIGNIFICANT_FIGURES)
                .context("creating the latency histogram")?,
            statuses: BTreeMap::new(),
            errors: TransportErrors::default(),
            request_ids: HashSet::new(),
            instance_ids: HashSet::new(),
        })
    }

    fn record(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Answered {
                status,
                latency,
                ids,
            } => {
                let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                self.latency_us.saturating_record(micros);
                *self.statuses.entry(status).or_default() += 1;
                self.request_ids.extend(ids.request_id);
                self.instance_ids.extend(ids.instance_id);
            }
            Outcome::Failed(kind) => self.errors.count(kind),
        }
    }

    fn report(&self, url: &str, concurrency: u64, wall: Duration, unfinished: u64) -> LoadReport {
        let answers: u64 = self.statuses.values().sum();
        let requests = answers + self.errors.total();
        let wall_s = wall.as_secs_f64();
        let ms = |micros: u64| micros as f64 / 1000.0;
        let quantile = |q: f64| ms(self.latency_us.value_at_quantile(q));
        LoadReport {
            url: url.to_owned(),
            concurrency,
            requests,
            wall_s,
            requests_per_s: if wall_s > 0.0 {
                requests as f64 / wall_s
            } else {
                0.0
            },
            min_ms: ms(self.latency_us.min()),
            mean_ms: self.latency_us.mean() / 1000.0,
            p50_ms: quantile(0.50),
            p90_ms: quantile(0.90),
            p95_ms: quantile(0.95),
            p99_ms: quantile(0.99),
            max_ms: ms(self.latency_us.max()),
            statuses: self.statuses.clone(),
            non_2xx: self
                .statuses
                .iter()
                .filter(|(status, _)| !(200..300).contains(*status))
                .map(|(_, count)| count)
                .sum(),
            errors: self.errors,
            unfinished,
            distinct_request_ids: self.request_ids.len(),
            distinct_instance_ids: self.instance_ids.len(),
        }
    }
}

/// The live line on stderr: requests done, rate, failures.
struct Progress {
    bar: ProgressBar,
    errors: u64,
    non_2xx: u64,
}

impl Progress {
    fn new(plan: &Plan) -> anyhow::Result<Self> {
        let progress = Self {
            bar: Self::bar(plan)?,
            errors: 0,
            non_2xx: 0,
        };
        progress.bar.set_message(progress.message());
        if !progress.bar.is_hidden() {
            // Redraw while a slow route keeps every answer away.
            progress.bar.enable_steady_tick(Duration::from_millis(200));
        }
        Ok(progress)
    }

    fn bar(plan: &Plan) -> anyhow::Result<ProgressBar> {
        // Piped or in CI, a bar is only noise in captured output.
        if !std::io::stderr().is_terminal() {
            return Ok(ProgressBar::hidden());
        }
        let (bar, template) = match plan.requests {
            Some(requests) => (
                ProgressBar::new(requests),
                "{bar:30} {pos}/{len} requests  {per_sec:1}  {msg}",
            ),
            None => (
                ProgressBar::no_length(),
                "{spinner} {elapsed} of {prefix}  {pos} requests  {per_sec:1}  {msg}",
            ),
        };
        let bar = bar
            .with_style(ProgressStyle::with_template(template).context("progress bar template")?);
        if let Some(duration) = plan.duration {
            bar.set_prefix(humantime::format_duration(duration).to_string());
        }
        Ok(bar)
    }

    fn record(&mut self, outcome: &Outcome) {
        self.bar.inc(1);
        let failed = match outcome {
            Outcome::Answered { status, .. } if !(200..300).contains(status) => {
                self.non_2xx += 1;
                true
            }
            Outcome::Answered { .. } => false,
            Outcome::Failed(_) => {
                self.errors += 1;
                true
            }
        };
        if failed {
            self.bar.set_message(self.message());
        }
    }

    fn message(&self) -> String {
        format!("{} errors  {} non-2xx", self.errors, self.non_2xx)
    }
}

/// What every worker shares: where to send, and when to stop.
struct Job {
    client: reqwest::Client,
    url: reqwest::Url,
    requests: Option<u64>,
    deadline: Option<Instant>,
    issued: AtomicU64,
}

impl Job {
    /// Claim the next request, or learn that the run is over.
    fn claim(&self) -> bool {
        self.deadline
            .is_none_or(|deadline| Instant::now() < deadline)
            && self
                .requests
                .is_none_or(|limit| self.issued.fetch_add(1, Ordering::Relaxed) < limit)
    }
}

/// Run the load described by `args`.
pub async fn run(args: &LoadArgs) -> anyhow::Result<LoadReport> {
    let plan = args.plan();
    let mut headers = HeaderMap::new();
    for (name, value) in &args.headers {
        headers.append(name.clone(), value.clone());
    }
    let client = wasmhouse_clickhouse::host::tls::web_client_builder()
        .timeout(args.timeout)
        .pool_max_idle_per_host(usize::try_from(plan.workers).unwrap_or(usize::MAX))
        .default_headers(headers)
        // Only the URL given: a redirect is counted as its status rather
        // than followed elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("building the HTTP client")?;
    let mut tally = Tally::new()?;
    let mut progress = Progress::new(&plan)?;

    let started = Instant::now();
    let job = Arc::new(Job {
        client,
        url: args.url.clone(),
        requests: plan.requests,
        deadline: plan.duration.map(|duration| started + duration),
        issued: AtomicU64::new(0),
    });
    let (outcomes, mut received) = mpsc::unbounded_channel();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..plan.workers {
        workers.spawn(work(job.clone(), outcomes.clone()));
    }
    // The channel closes when the last worker is done.
    drop(outcomes);
    while let Some(outcome) = received.recv().await {
        progress.record(&outcome);
        tally.record(outcome);
    }
    let mut unfinished = 0;
    while let Some(joined) = workers.join_next().await {
        unfinished += joined.context("a load worker failed")?;
    }
    let wall = started.elapsed();
    progress.bar.finish_and_clear();
    Ok(tally.report(job.url.as_str(), plan.workers, wall, unfinished))
}

/// Send requests one after another until the job is over; returns how many
/// were cut off by the deadline (0 or 1).
async fn work(job: Arc<Job>, outcomes: mpsc::UnboundedSender<Outcome>) -> u64 {
    while job.claim() {
        let request = send(&job.client, &job.url);
        let outcome = match job.deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, request).await {
                Ok(outcome) => outcome,
                Err(_) => return 1,
            },
            None => request.await,
        };
        if outcomes.send(outcome).is_err() {
            break;
        }
    }
    0
}

async fn send(client: &reqwest::Client, url: &reqwest::Url) -> Outcome {
    let sent = Instant::now();
    let response = match client.get(url.clone()).send().await {
        Ok(response) => response,
        Err(err) => return Outcome::Failed(TransportError::of(&err)),
    };
    let status = response.status().as_u16();
    match response.bytes().await {
        Ok(body) => Outcome::Answered {
            status,
            latency: sent.elapsed(),
            ids: AnswerIds::from_body(&body),
        },
        Err(err) => Outcome::Failed(TransportError::of(&err)),
    }
}

fn parse_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text).map_err(|err| err.to_string())?;
    // The host's client is built without TLS: https would fail every request.
    if url.scheme() != "http" {
        return Err(format!(
            "only http:// URLs are supported, not {}://",
            url.scheme()
        ));
    }
    Ok(url)
}

fn at_least_one(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(count) => Ok(count),
        Err(err) => Err(err.to_string()),
    }
}

fn positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err("must be longer than 0s".into()),
        Ok(duration) => Ok(duration),
        Err(err) => Err(err.to_string()),
    }
}

fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| "expected 'Name: value'".to_owned())?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|err| format!("header name {:?}: {err}", name.trim()))?;
    let value = HeaderValue::from_str(value.trim())
        .map_err(|err| format!("value of header {name}: {err}"))?;
    Ok((name, value))
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} requests to {}, {} at a time",
            self.requests, self.url, self.concurrency
        )?;
        writeln!(f, "  wall time     {:.3} s", self.wall_s)?;
        writeln!(f, "  throughput    {:.1} req/s", self.requests_per_s)?;
        writeln!(
            f,
            "  latency (ms)  min {:.2}  mean {:.2}  p50 {:.2}  p90 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
            self.min_ms,
            self.mean_ms,
            self.p50_ms,
            self.p90_ms,
            self.p95_ms,
            self.p99_ms,
            self.max_ms
        )?;
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(status, count)| format!("{status} x{count}"))
            .collect();
        let statuses = if statuses.is_empty() {
            "none".to_owned()
        } else {
            statuses.join(", ")
        };
        writeln!(f, "  statuses      {statuses}")?;
        if self.errors.total() == 0 {
            writeln!(f, "  errors        none")?;
        } else {
            writeln!(
                f,
                "  errors        timeout x{}, connect x{}, other x{}",
                self.errors.timeout, self.errors.connect, self.errors.other
            )?;
        }
        if self.unfinished > 0 {
            writeln!(
                f,
                "  unfinished    {} in flight when the duration ran out",
                self.unfinished
            )?;
        }
        writeln!(f, "  request ids   {} distinct", self.distinct_request_ids)?;
        write!(f, "  instance ids  {} distinct", self.distinct_instance_ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        load: LoadArgs,
    }

    fn parse(flags: &[&str]) -> Result<LoadArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("load").chain(flags.iter().copied())).map(|c| c.load)
    }

    fn answer(ms: u64, status: u16, request: &str, instance: &str) -> Outcome {
        Outcome::Answered {
            status,
            latency: Duration::from_millis(ms),
            ids: AnswerIds {
                request_id: Some(request.into()),
                instance_id: Some(instance.into()),
            },
        }
    }

    fn tally(outcomes: impl IntoIterator<Item = Outcome>) -> Tally {
        let mut tally = Tally::new().expect("histogram");
        for outcome in outcomes {
            tally.record(outcome);
        }
        tally
    }

    /// Within the histogram's 0.1 % resolution.
    fn assert_close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() <= expected * 0.001,
            "{actual} is not {expected}"
        );
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let outcomes = (1..=100).map(|ms| answer(ms, 200, &ms.to_string(), "i"));
        let report = tally(outcomes).report("http://x/", 4, Duration::from_secs(2), 0);
        assert_close(report.min_ms, 1.0);
        assert_close(report.mean_ms, 50.5);
        assert_close(report.p50_ms, 50.0);
        assert_close(report.p90_ms, 90.0);
        assert_close(report.p95_ms, 95.0);
        assert_close(report.p99_ms, 99.0);
        assert_close(report.max_ms, 100.0);
        assert_eq!(report.requests, 100);
        assert_close(report.requests_per_s, 50.0);
    }

    #[test]
    fn microseconds_are_kept() {
        let outcomes = [250, 251, 252].map(|us| Outcome::Answered {
            status: 200,
            latency: Duration::from_micros(us),
            ids: AnswerIds::default(),
        });
        let report = tally(outcomes).report("http://x/", 1, Duration::from_secs(1), 0);
        assert_close(report.min_ms, 0.250);
        assert_close(report.p50_ms, 0.251);
        assert_close(report.max_ms, 0.252);
    }

    #[test]
    fn statuses_and_distinct_ids_are_counted() {
        let outcomes = (1..=20).map(|i| {
            answer(
                i * 10,
                if i == 20 { 503 } else { 200 },
                &format!("r{i}"),
                if i % 2 == 0 { "a" } else { "b" },
            )
        });
        let report = tally(outcomes).report("http://x/", 20, Duration::from_secs(1), 0);
        assert_eq!(report.statuses, BTreeMap::from([(200, 19), (503, 1)]));
        assert_eq!(report.non_2xx, 1);
        assert_eq!(report.distinct_request_ids, 20);
        assert_eq!(report.distinct_instance_ids, 2);
        let json = serde_json::to_value(&report).expect("JSON");
        assert_eq!(json["statuses"]["200"], 19);
        assert_eq!(json["statuses"]["503"], 1);
    }

    #[test]
    fn transport_errors_are_counted_by_kind_apart_from_statuses() {
        let outcomes = [
            answer(5, 200, "r", "i"),
            Outcome::Failed(TransportError::Timeout),
            Outcome::Failed(TransportError::Timeout),
            Outcome::Failed(TransportError::Connect),
            Outcome::Failed(TransportError::Other),
        ];
        let report = tally(outcomes).report("http://x/", 1, Duration::from_secs(1), 3);
        assert_eq!(report.requests, 5);
        assert_eq!(report.statuses, BTreeMap::from([(200, 1)]));
        assert_eq!(
            report.errors,
            TransportErrors {
                timeout: 2,
                connect: 1,
                other: 1
            }
        );
        assert_eq!(report.unfinished, 3);
        // Latency describes answers; a timeout's would only echo --timeout.
        assert_close(report.max_ms, 5.0);
        assert!(
            report
                .to_string()
                .contains("timeout x2, connect x1, other x1")
        );
    }

    #[test]
    fn an_empty_run_reports_zeroes() {
        let report = tally([]).report("http://x/", 1, Duration::ZERO, 0);
        assert_eq!(report.requests, 0);
        assert_eq!(report.requests_per_s, 0.0);
        assert_eq!(report.p99_ms, 0.0);
        assert_eq!(report.max_ms, 0.0);
    }

    #[test]
    fn ids_are_read_from_json_answers_only() {
        let ids = AnswerIds::from_body(br#"{"request_id":"r1","instance_id":7,"x":[1]}"#);
        assert_eq!(ids.request_id.as_deref(), Some("r1"));
        assert_eq!(ids.instance_id.as_deref(), Some("7"));
        let ids = AnswerIds::from_body(br#"{"request_id":null}"#);
        assert_eq!(ids.request_id, None);
        assert_eq!(AnswerIds::from_body(b"OK").request_id, None);
        assert_eq!(AnswerIds::from_body(b"[1,2]").instance_id, None);
    }

    #[test]
    fn the_default_is_twenty_requests_at_once() {
        let plan = parse(&[]).expect("flags").plan();
        assert_eq!(
            plan,
            Plan {
                requests: Some(20),
                duration: None,
                workers: 20
            }
        );
    }

    #[test]
    fn concurrency_and_duration_shape_the_plan() {
        let plan = parse(&["-n", "100", "-c", "4"]).expect("flags").plan();
        assert_eq!((plan.requests, plan.workers), (Some(100), 4));
        let plan = parse(&["-n", "2", "-c", "8"]).expect("flags").plan();
        assert_eq!(plan.workers, 2, "no idle workers");
        let plan = parse(&["-d", "10s", "-c", "4"]).expect("flags").plan();
        assert_eq!(
            (plan.requests, plan.duration, plan.workers),
            (None, Some(Duration::from_secs(10)), 4)
        );
        let plan = parse(&["-d", "1m"]).expect("flags").plan();
        assert_eq!(plan.workers, 10);
        let plan = parse(&["-d", "10s", "-n", "500"]).expect("flags").plan();
        assert_eq!((plan.requests, plan.workers), (Some(500), 500));
    }

    #[test]
    fn zero_counts_and_durations_are_refused_by_name() {
        for (flags, named) in [
            (&["-c", "0"][..], "--concurrency"),
            (&["-n", "0"][..], "--requests"),
            (&["-d", "0s"][..], "--duration"),
            (&["--timeout", "0ms"][..], "--timeout"),
        ] {
            let err = parse(flags).expect_err("zero accepted").to_string();
            assert!(err.contains(named), "{err}");
            assert!(
                err.contains("at least 1") || err.contains("longer than 0s"),
                "{err}"
            );
        }
    }

    #[test]
    fn only_http_urls_are_accepted() {
        assert!(parse(&["http://127.0.0.1:1/health"]).is_ok());
        let err = parse(&["https://127.0.0.1/"]).expect_err("https accepted");
        assert!(err.to_string().contains("only http://"), "{err}");
        assert!(parse(&["not a url"]).is_err());
    }

    #[test]
    fn headers_parse_as_name_and_value() {
        let args = parse(&["-H", "Authorization: Bearer t", "-H", "x-a:b"]).expect("flags");
        let headers: Vec<(&str, &str)> = args
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.to_str().unwrap_or_default()))
            .collect();
        assert_eq!(headers, [("authorization", "Bearer t"), ("x-a", "b")]);
        assert!(parse(&["-H", "no colon"]).is_err());
        assert!(parse(&["-H", "bad name: v"]).is_err());
    }

    #[tokio::test]
    async fn a_closed_port_counts_as_connect_errors() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        drop(listener);
        let args = parse(&[&format!("http://{address}/"), "-n", "3", "-c", "1"]).expect("flags");
        let report = run(&args).await.expect("run");
        assert_eq!(report.requests, 3);
        assert_eq!(report.errors.connect, 3, "{:?}", report.errors);
        assert!(report.statuses.is_empty());
    }

    /// A server that accepts connections and never answers.
    async fn silent_server() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let silent = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        (address, silent)
    }

    #[tokio::test]
    async fn a_silent_server_counts_as_timeouts() {
        let (address, silent) = silent_server().await;
        let url = format!("http://{address}/");
        let args = parse(&[&url, "-n", "2", "--timeout", "200ms"]).expect("flags");
        let report = run(&args).await.expect("run");
        silent.abort();
        assert_eq!(report.errors.timeout, 2, "{:?}", report.errors);
    }

    #[tokio::test]
    async fn the_duration_ends_the_run_and_drops_what_is_in_flight() {
        let (address, silent) = silent_server().await;
        let url = format!("http://{address}/");
        let args = parse(&[&url, "-d", "300ms", "-c", "2"]).expect("flags");
        let report = run(&args).await.expect("run");
        silent.abort();
        assert_eq!(report.requests, 0);
        assert_eq!(report.unfinished, 2);
        assert!(report.wall_s >= 0.3, "{}", report.wall_s);
    }
}
