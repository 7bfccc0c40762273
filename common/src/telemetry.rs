//! Logs and traces, shared by the binaries.
//!
//! - Logs: `tracing` events as JSON lines (default) or text, filtered by `RUST_LOG`, with the
//!   `log` crate (pingora's logging) bridged in. Lines inside a request carry its `trace_id`.
//! - Traces: every span `MAPLE_TRACE_FILTER` lets through (`RUST_LOG` filters log lines
//!   only) is an OpenTelemetry span. W3C
//!   `traceparent` is read from incoming requests ([`extract`]) and written into outgoing ones
//!   ([`inject`]), so one trace runs client → core → proxy → Nexon. Spans are exported by OTLP
//!   over HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (e.g. `http://otel-collector:4318`);
//!   otherwise trace ids are still made and propagated, and nothing is sent.
//! - Access log ([`access`]): one line per request, in the log format, on unless
//!   `MAPLE_ACCESS_LOG=off`, formatted directly (not a `tracing` event) and written by a thread
//!   of its own: a request never waits for the terminal or the pipe, and when the writer falls
//!   64k lines behind, lines are dropped rather than requests slowed.
//! - Third-party crates log only warnings at the default level (no exporter chatter at start).

use std::io::IsTerminal as _;
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::{ConfigError, Env};
use crate::setting::{Derived, Describe, Optional, Setting};

pub mod access;

/// `json` (one JSON object per line, for collectors) or `text` (for a terminal); each
/// binary picks the default.
pub const LOG_FORMAT: Derived<LogFormat> = Derived::new(
    "MAPLE_LOG_FORMAT",
    "`json` (`text` in the launcher)",
    "log lines as JSON objects or text",
);

/// The log filter (an `EnvFilter`, read by `tracing-subscriber` itself); not the access log.
pub const LOG_FILTER: Derived<String> = Derived::new(
    "RUST_LOG",
    "`info` (third-party crates `warn`)",
    "the log filter; not the access log",
);

/// One line per request, on by default.
pub const ACCESS_LOG: Setting<Switch> = Setting::new(
    "MAPLE_ACCESS_LOG",
    "on",
    "one line per request (core and proxy), in the log format, written by a thread of its \
     own; `off` turns it off",
);

/// Where spans are exported (OTLP over HTTP); unset: not exported.
pub const OTLP_ENDPOINT: Optional<String> = Optional::new(
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "spans are not exported",
    "OTLP/HTTP base URL, e.g. `http://otel-collector:4318`",
)
.url();

/// Which spans become OpenTelemetry spans (an `EnvFilter`), apart from `RUST_LOG` (which
/// filters log lines only): quiet logs must not mean missing traces.
pub const TRACE_FILTER: Derived<String> = Derived::new(
    "MAPLE_TRACE_FILTER",
    "`info` (HTTP-client and exporter crates off)",
    "which spans become OpenTelemetry spans, independent of `RUST_LOG`",
);

/// Every setting of the logs and traces, in the order the doc lists them.
pub const SETTINGS: &[&dyn Describe] = &[
    &LOG_FORMAT,
    &LOG_FILTER,
    &ACCESS_LOG,
    &OTLP_ENDPOINT,
    &TRACE_FILTER,
];

/// `on` or `off` (also `true`/`false`, `1`/`0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Switch(pub bool);

impl std::str::FromStr for Switch {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "on" | "true" | "1" => Ok(Self(true)),
            "off" | "false" | "0" => Ok(Self(false)),
            _ => Err("expected `on` or `off`"),
        }
    }
}

/// Added to every default filter: the exporter's and pingora's informational lines ("Global
/// tracer provider is set…", "Starting service…") are noise at start-up and shutdown.
const QUIET_CRATES: &str = "opentelemetry=warn,opentelemetry_sdk=warn,opentelemetry_otlp=warn,pingora_core=warn,pingora_proxy=warn";

/// Our spans are at `info`; the HTTP and exporter crates' own spans are left out.
const DEFAULT_TRACE_FILTER: &str = "info,opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off,reqwest=off,hyper=off,hyper_util=off,h2=off,tower=off,sqlx=off";

/// Output format of the log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogFormat {
    Json,
    Text,
}

impl std::str::FromStr for LogFormat {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(Self::Json),
            "text" => Ok(Self::Text),
            _ => Err("expected `json` or `text`"),
        }
    }
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Json => "json",
            Self::Text => "text",
        })
    }
}

impl LogFormat {
    /// Reads [`LOG_FORMAT`], falling back to `default`; any other value than `json` or `text`
    /// is noted ([`Env::reject`]) and `default` returned.
    pub fn from_env(env: &Env, default: Self) -> Self {
        env.derived(&LOG_FORMAT, default)
    }
}

/// What the telemetry reads from the environment, read with the rest of a binary's settings
/// so that a bad value is reported with the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    pub format: LogFormat,
    /// [`OTLP_ENDPOINT.var`]: where spans go, if anywhere.
    pub otlp: Option<String>,
    /// [`ACCESS_LOG.var`]: whether the access log is written.
    pub access_log: bool,
}

impl TelemetryConfig {
    /// Reads the three variables; a bad value is noted ([`Env::reject`]) and its default used.
    pub fn from_env(env: &Env, default_format: LogFormat) -> Self {
        Self {
            format: LogFormat::from_env(env, default_format),
            otlp: otlp_endpoint(env),
            access_log: env.setting(&ACCESS_LOG).0,
        }
    }
}

/// Reads [`OTLP_ENDPOINT`]: an `http://` or `https://` base URL, or none; anything else
/// is noted ([`Env::reject`]) and none returned.
fn otlp_endpoint(env: &Env) -> Option<String> {
    let url = env.optional(&OTLP_ENDPOINT)?;
    if url.starts_with("http://") || url.starts_with("https://") {
        return Some(url.trim_end_matches('/').to_owned());
    }
    env.reject(ConfigError::new(
        OTLP_ENDPOINT.var,
        url,
        "expected an http:// or https:// URL (OTLP over HTTP, e.g. port 4318)",
    ));
    None
}

/// Keeps the tracer provider and the access log's writer; [`Telemetry::shutdown`] flushes
/// both.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    /// Dropping it writes the access lines still queued, then stops the writer thread.
    access: Option<tracing_appender::non_blocking::WorkerGuard>,
}

impl Telemetry {
    /// Writes the queued access lines, exports the buffered spans (bounded by the exporter's
    /// timeout) and stops.
    pub fn shutdown(self) {
        drop(self.access);
        if let Some(provider) = self.provider {
            if let Err(error) = provider.force_flush() {
                tracing::warn!(%error, "flushing spans failed");
            }
            let _ = provider.shutdown_with_timeout(Duration::from_secs(5));
        }
    }
}

/// Installs the global subscriber (logs, the access log when `access_log`, and spans as
/// OpenTelemetry spans) and the W3C propagator. `default_filter` applies when `RUST_LOG` is
/// unset; `service` names this binary in exported spans. Calling it twice keeps the first
/// subscriber (tests start several stacks).
///
/// # Errors
/// When the OTLP exporter cannot be built.
pub fn init(
    format: LogFormat,
    default_filter: &str,
    service: &'static str,
    otlp: Option<&str>,
    access_log: bool,
) -> Result<Telemetry, String> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if let Some(endpoint) = otlp {
        use opentelemetry_otlp::WithExportConfig as _;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(format!("{endpoint}/v1/traces"))
            .with_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("{}: {e}", OTLP_ENDPOINT.var))?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    let tracer = provider.tracer(service);
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default_filter},{QUIET_CRATES}")));
    let trace_filter = EnvFilter::try_from_env(TRACE_FILTER.var)
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_TRACE_FILTER));
    let logs = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        // Colours only for a terminal: a log file or collector gets plain text (and the
        // escape codes cost instructions on every line).
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stdout().is_terminal())
            .boxed(),
    };
    let result = tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                // Each poll of an instrumented future enters and exits its span: no clock
                // reads for busy/idle times, and no OpenTelemetry context made current (our
                // propagation reads the span's context directly, and no library here asks
                // for the current one). The thread a span began on says nothing on a
                // work-stealing runtime.
                .with_tracked_inactivity(false)
                .with_context_activation(false)
                .with_threads(false)
                .with_filter(trace_filter),
        )
        .try_init();
    // Err means a subscriber is already installed (a test's second stack); keep it.
    if result.is_err() {
        return Ok(Telemetry {
            provider: None,
            access: None,
        });
    }
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(Telemetry {
        provider: Some(provider),
        access: if access_log {
            access::install(match format {
                LogFormat::Json => access::Format::Json,
                LogFormat::Text => access::Format::Text,
            })
        } else {
            None
        },
    })
}

/// [`init`] with what [`TelemetryConfig`] read.
///
/// # Errors
/// A message naming the variable when the OTLP exporter cannot be built.
pub fn start(
    config: &TelemetryConfig,
    default_filter: &str,
    service: &'static str,
) -> Result<Telemetry, String> {
    init(
        config.format,
        default_filter,
        service,
        config.otlp.as_deref(),
        config.access_log,
    )
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Makes `span` a child of the trace named by `headers`' `traceparent` (if any, and valid),
/// and records the trace id in its `trace_id` field (declared empty by the caller) so log
/// lines inside it carry it. Returns that trace id (none when tracing is not installed).
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) -> Option<String> {
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    let id = trace_id(span)?;
    span.record("trace_id", id.as_str());
    Some(id)
}

/// Writes `span`'s context as `traceparent` into `headers` (for the next hop).
pub fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) {
    let context = span.context();
    TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
}

/// The trace id of `span`, as 32 hex digits (none when tracing is not installed).
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let context = span.context();
    let otel_span = context.span();
    let span_context = otel_span.span_context();
    if !span_context.is_valid() {
        return None;
    }
    // By hand: `Display` for the id goes through `u128`'s formatting machinery.
    let bytes = span_context.trace_id().to_bytes();
    let mut id = String::with_capacity(32);
    for byte in bytes {
        id.push(char::from(HEX[usize::from(byte >> 4)]));
        id.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_and_the_format_read_their_spellings() {
        let env = Env::from_pairs([("MAPLE_ACCESS_LOG", "off"), ("MAPLE_LOG_FORMAT", "text")]);
        let config = TelemetryConfig::from_env(&env, LogFormat::Json);
        assert!(!config.access_log);
        assert_eq!(config.format, LogFormat::Text);
        let env = Env::from_pairs([("MAPLE_ACCESS_LOG", "maybe"), ("MAPLE_LOG_FORMAT", "xml")]);
        let config = TelemetryConfig::from_env(&env, LogFormat::Json);
        assert!(config.access_log, "a bad value keeps the default");
        assert_eq!(config.format, LogFormat::Json);
        assert_eq!(env.settle(Ok(())).expect_err("two bad values").0.len(), 2);
    }

    /// The doc's tables of these settings are rendered from the declarations
    /// (`MAPLE_BLESS=1 cargo test --workspace --lib` rewrites them).
    #[test]
    fn the_configuration_doc_shows_the_declared_settings() {
        crate::setting::check_doc(env!("CARGO_MANIFEST_DIR"), &[("telemetry", SETTINGS)]);
    }
}
