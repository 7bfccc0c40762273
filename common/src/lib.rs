//! What both MapleExpectation binaries share, and nothing else.
//!
//! # Layout
//! - [`cli`]: command-line conventions (help, version with the git commit, exit 64).
//! - [`breaker`]: the circuit breaker (resilience4j count-based semantics), clock injected.
//! - [`contract`]: what core and the proxy agree on (the proxy-error header, bearer tokens,
//!   comparing secrets).
//! - [`encoding`]: content codings: `Accept-Encoding`, `Content-Encoding`, gzip and bounded
//!   gunzip.
//! - [`error`]: the JSON error body every HTTP error of ours uses.
//! - [`flight`]: request coalescing: concurrent misses for one key share one fetch.
//! - [`metrics`]: register-and-create helpers and the text exposition.
//! - [`rate`]: the token bucket (GCRA) behind every rate limit.
//! - [`nexon`]: the Nexon Open API's vocabulary: paths, the key header, ocids, error codes.
//! - [`config`]: typed environment configuration with a replaceable source.
//! - [`setting`]: settings declared once (name, default, bounds, doc), read, documented and
//!   dumped from that declaration.
//! - [`telemetry`]: tracing set-up (JSON lines or text, `log` bridged).
//! - [`shutdown`]: the process signal that starts a graceful shutdown.
#![forbid(unsafe_code)]

pub mod breaker;
pub mod cli;
pub mod config;
pub mod contract;
pub mod encoding;
pub mod error;
pub mod flight;
pub mod metrics;
pub mod nexon;
pub mod rate;
pub mod setting;
pub mod shutdown;
pub mod telemetry;
