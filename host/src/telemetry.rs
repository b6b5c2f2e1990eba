//! Logs and traces. Every request runs in a `tracing` span (request id,
//! route, version, status, duration, ClickHouse time), so every log line of
//! a request carries its id. Logs are human-readable by default and JSON
//! with `--log-format json`, filtered by `RUST_LOG`. When the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, the spans also go to that collector
//! over OTLP/HTTP, and an incoming W3C `traceparent` is continued.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_otlp::WithHttpConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// The filter when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info,wasmtime=warn,cranelift=warn";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event, colours on a terminal.
    #[default]
    Human,
    /// One JSON object per event, with the span fields (request id, route…).
    Json,
}

/// Whether spans are exported (so requests' `traceparent` is worth reading).
static EXPORTING: OnceLock<()> = OnceLock::new();

/// Logging (and tracing, when configured) for the process; flushes the
/// spans still buffered when dropped.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(err) = provider.shutdown()
        {
            eprintln!("warning: flushing traces: {err}");
        }
    }
}

/// Install the process's subscriber: `format` logs on stderr filtered by
/// `RUST_LOG`, plus OTLP span export when `OTEL_EXPORTER_OTLP_ENDPOINT` is
/// set. Call once, early in `main`.
pub fn init(format: LogFormat) -> anyhow::Result<Telemetry> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = match format {
        // Every field escaped and cut on its way out (crate::log_text).
        LogFormat::Human => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .fmt_fields(crate::log_text::human_fields())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(crate::log_text::BoundedJson)
            .boxed(),
    };
    let provider = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(endpoint) if !endpoint.trim().is_empty() => Some(tracer_provider(endpoint.trim())?),
        _ => None,
    };
    let traces = provider
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer("wasmhouse")));
    tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(traces)
        .try_init()
        .map_err(|err| anyhow::anyhow!("installing the log subscriber: {err}"))?;
    if provider.is_some() {
        let _ = EXPORTING.set(());
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    } else {
        // Standard variables another tool of the same pod may also read:
        // said, not refused.
        for variable in ["OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_HEADERS"] {
            if std::env::var_os(variable).is_some_and(|value| !value.is_empty()) {
                tracing::warn!(
                    variable,
                    "set, but OTEL_EXPORTER_OTLP_ENDPOINT is not: no spans are exported"
                );
            }
        }
    }
    Ok(Telemetry { provider })
}

/// Whether spans are exported (so the fields only exporters read are worth
/// recording).
pub fn exporting() -> bool {
    EXPORTING.get().is_some()
}

/// Continue the trace an incoming request's `traceparent` names, when
/// spans are exported; whether they are.
pub fn continue_trace(span: &tracing::Span, headers: &hyper::HeaderMap) -> bool {
    if !exporting() {
        return false;
    }
    if headers.contains_key("traceparent") {
        let context = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        let _ = span.set_parent(context);
    }
    true
}

struct HeaderExtractor<'a>(&'a hyper::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .map(hyper::header::HeaderName::as_str)
            .collect()
    }
}

/// Spans batched and sent to `{endpoint}/v1/traces` (OTLP/HTTP, protobuf);
/// the service name from `OTEL_SERVICE_NAME`, else `wasmhouse`.
fn tracer_provider(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(ExportClient::new()?)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|err| anyhow::anyhow!("OTEL_EXPORTER_OTLP_ENDPOINT: {err}"))?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "wasmhouse".into());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The most of an OTLP collector's answer that is read.
const MAX_COLLECTOR_ANSWER: usize = 64 * 1024;

/// The exporter's HTTP client: the host's own reqwest, driven by a small
/// runtime of its own, because the batch processor exports from a plain
/// thread of its own, outside any tokio runtime.
#[derive(Debug)]
struct ExportClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl ExportClient {
    fn new() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("wasmhouse-otlp")
            .enable_all()
            .build()?;
        let client = wasmhouse_clickhouse::host::tls::web_client_builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self { client, runtime })
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ExportClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let mut outgoing = self
            .client
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body);
        if let Some(timeout) = parts.extensions.get::<Duration>() {
            outgoing = outgoing.timeout(*timeout);
        }
        let sent = self.runtime.spawn(async move {
            let response = outgoing.send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            // A collector's answer is a few bytes; more is not kept.
            let (body, _) =
                wasmhouse_clickhouse::host::transport::read_capped(response, MAX_COLLECTOR_ANSWER)
                    .await?;
            Ok::<_, reqwest::Error>((status, headers, Bytes::from(body)))
        });
        let (status, headers, body) = sent.await??;
        let mut response = http::Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}
