//! Tracing set-up shared by the binaries: JSON lines (default) or human-readable text, filtered
//! by `RUST_LOG`, with the `log` crate (pingora's logging) bridged into `tracing`.

use tracing_subscriber::EnvFilter;

use crate::config::{ConfigError, Env};

/// `json` (one JSON object per line, for collectors) or `text` (for a terminal).
pub const LOG_FORMAT_VAR: &str = "MAPLE_LOG_FORMAT";

/// Output format of the log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

impl LogFormat {
    /// Reads [`LOG_FORMAT_VAR`], falling back to `default`.
    ///
    /// # Errors
    /// [`ConfigError`] for a value other than `json` or `text`.
    pub fn from_env(env: &Env, default: Self) -> Result<Self, ConfigError> {
        match env.get(LOG_FORMAT_VAR).as_deref() {
            None => Ok(default),
            Some("json") => Ok(Self::Json),
            Some("text") => Ok(Self::Text),
            Some(other) => Err(ConfigError::new(
                LOG_FORMAT_VAR,
                other,
                "expected `json` or `text`",
            )),
        }
    }
}

/// Installs the global subscriber. `default_filter` applies when `RUST_LOG` is unset.
/// Calling it twice is harmless (the second call does nothing), which keeps tests simple.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // Err means a subscriber is already installed; keep it.
    drop(result);
}
