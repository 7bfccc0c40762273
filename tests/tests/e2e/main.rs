//! End-to-end tests: client → core → proxy → simulator and back, on real sockets, with real
//! databases (SQLite and the machine's MariaDB) and real processes.

// The in-process stack's futures (core, the proxy, the simulator) nest deeply: computing their
// layouts from a cold build needs more than the default query depth of 128.
#![recursion_limit = "256"]

mod admin;
mod harness;
mod private;

mod breaker;
mod chaos;
mod compose;
mod expectation;
mod failures;
mod fresh;
mod fuzz;
mod hardening;
mod likes;
mod observability;
mod openapi;
mod pipeline;
mod processes;
mod prometheus;
mod proxy;
mod resilience;
mod secrets;
mod shutdown;
mod simulator;
mod storage;
mod tiers;
mod traces;
mod valuation;
