//! End-to-end machinery for MapleExpectation: the Nexon Open API simulator (also the
//! `nexon-sim` binary). The end-to-end tests themselves live in `tests/e2e/`.
//!
//! # Layout
//! - [`sim`]: the simulator: routes, deterministic characters, faults, call counters.
//! - [`load`]: what the load tools share.
//! - [`tcp_fault`]: a TCP proxy that can partition a connection (for the chaos suite).
#![forbid(unsafe_code)]

pub mod load;
pub mod sim;
pub mod tcp_fault;
