//! End-to-end tests: client → core → proxy → simulator and back, on real sockets, with real
//! databases (SQLite and the machine's MariaDB) and real processes.

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
