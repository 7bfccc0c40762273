//! End-to-end machinery for MapleExpectation: what the load tools and the chaos suite share.
//! The simulator is its own crate (`maple-sim`); the end-to-end tests live in `tests/e2e/`.
//!
//! # Layout
//! - [`drill`]: the distributed stack on hosts of its own (network namespaces), under load
//!   and faults (`drill`, `scripts/drill.sh`).
//! - [`flood`]: one client floods the pricing while another asks for a first valuation.
//! - [`load`]: what the load tools share.
//! - [`tcp_fault`]: a TCP proxy that can partition a connection (for the chaos suite).
#![forbid(unsafe_code)]

pub mod drill;
pub mod flood;
pub mod load;
pub mod tcp_fault;
