//! What both MapleExpectation binaries share, and nothing else.
//!
//! # Layout
//! - [`error`]: the JSON error body every HTTP error of ours uses.
//! - [`nexon`]: the Nexon Open API's vocabulary: paths, the key header, ocids, error codes.
//! - [`config`]: typed environment configuration with a replaceable source.
//! - [`telemetry`]: tracing set-up (JSON lines or text, `log` bridged).
//! - [`shutdown`]: the process signal that starts a graceful shutdown.
#![forbid(unsafe_code)]

pub mod config;
pub mod error;
pub mod nexon;
pub mod shutdown;
pub mod telemetry;
