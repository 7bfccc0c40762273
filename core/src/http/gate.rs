//! The gate in front of pricing work that no cache answers (a valuation or a star-force spread
//! computed now): milliseconds of CPU each, so one client sending distinct option sets could
//! otherwise keep every core busy and everyone else waiting.
//!
//! Bounds, each refused at once rather than queued without end:
//! - per client, computations in line or running (`MAPLE_CORE_PRICING_PER_CLIENT`): beyond it
//!   429 `rate_limited` — a flood from one client holds at most that many places;
//! - computations running at once (`MAPLE_CORE_PRICING_CONCURRENCY`, default the machine's
//!   cores) and places in line behind them (`MAPLE_CORE_PRICING_QUEUE`): line full, 503
//!   `overloaded`;
//! - the wait in line (`MAPLE_CORE_PRICING_WAIT_MS`): past it, 503 `overloaded`.
//!
//! Work whose request went away stops: [`Permit::abandoned`] turns true when the handler's
//! future is dropped (the client hung up, the request timeout fired), and the pricing checks
//! it between items. Answers from a cache never pass the gate.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::PricingBounds;
use crate::error::ApiError;
use crate::metrics::{CoreMetrics, PricingAdmission};

/// Shared by every request (cheap to clone).
#[derive(Debug, Clone)]
pub struct PricingGate {
    running: Arc<Semaphore>,
    line: Arc<Semaphore>,
    /// Computations each client has in line or running (an entry only while it has some: at
    /// most concurrency + line entries, so never evicted under a client).
    clients: Clients,
    config: PricingBounds,
    /// IPv6 clients are one client per prefix of this many bits (as for the rates).
    ipv6_prefix: u8,
    metrics: CoreMetrics,
}

/// Leave to compute: held for the computation's length.
#[derive(Debug)]
pub struct Permit {
    _running: OwnedSemaphorePermit,
    _client: ClientPlace,
    abandoned: Arc<AtomicBool>,
}

impl Permit {
    /// Set once the request is gone: what is left of the work is not wanted.
    pub fn abandoned(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.abandoned)
    }

    /// A guard for the handler to hold: dropping it (the handler's future dropped) marks the
    /// work abandoned.
    pub fn watch(&self) -> Watch {
        Watch(Some(Arc::clone(&self.abandoned)))
    }
}

/// Marks the work abandoned when dropped, unless [`Watch::done`] came first.
#[derive(Debug)]
pub struct Watch(Option<Arc<AtomicBool>>);

impl Watch {
    /// The request finished waiting for the work: dropping the guard now abandons nothing.
    pub fn done(mut self) {
        self.0 = None;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(abandoned) = &self.0 {
            abandoned.store(true, Ordering::Relaxed);
        }
    }
}

/// A client's place; given back when dropped.
#[derive(Debug)]
struct ClientPlace(Option<(Clients, IpAddr)>);

/// Computations each client has in line or running.
type Clients = Arc<Mutex<HashMap<IpAddr, usize>>>;

impl Drop for ClientPlace {
    fn drop(&mut self) {
        if let Some((clients, client)) = &self.0 {
            let mut clients = clients.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(count) = clients.get_mut(client) {
                *count -= 1;
                if *count == 0 {
                    clients.remove(client);
                }
            }
        }
    }
}

impl PricingGate {
    pub fn new(config: PricingBounds, ipv6_prefix: u8, metrics: CoreMetrics) -> Self {
        Self {
            running: Arc::new(Semaphore::new(config.concurrency.max(1))),
            line: Arc::new(Semaphore::new(config.queue)),
            clients: Arc::default(),
            config,
            ipv6_prefix,
            metrics,
        }
    }

    /// Waits (bounded) for leave to compute for `client`.
    ///
    /// # Errors
    /// [`ApiError::RateLimited`] when the client already has its share in line or running;
    /// [`ApiError::Overloaded`] when the line is full or the wait ran out.
    pub async fn admit(&self, client: IpAddr) -> Result<Permit, ApiError> {
        let place = self.client_place(client).inspect_err(|_| {
            self.metrics
                .pricing_admissions_total
                .inc(PricingAdmission::ClientBusy);
        })?;
        let running = match Arc::clone(&self.running).try_acquire_owned() {
            Ok(running) => running,
            Err(_) => {
                let Ok(in_line) = Arc::clone(&self.line).try_acquire_owned() else {
                    self.metrics
                        .pricing_admissions_total
                        .inc(PricingAdmission::LineFull);
                    return Err(ApiError::Overloaded);
                };
                let waited = tokio::time::timeout(
                    self.config.wait,
                    Arc::clone(&self.running).acquire_owned(),
                )
                .await;
                drop(in_line);
                match waited {
                    Ok(Ok(running)) => running,
                    _ => {
                        self.metrics
                            .pricing_admissions_total
                            .inc(PricingAdmission::WaitedOut);
                        return Err(ApiError::Overloaded);
                    }
                }
            }
        };
        self.metrics
            .pricing_admissions_total
            .inc(PricingAdmission::Admitted);
        Ok(Permit {
            _running: running,
            _client: place,
            abandoned: Arc::default(),
        })
    }

    fn client_place(&self, client: IpAddr) -> Result<ClientPlace, ApiError> {
        if self.config.per_client == 0 {
            return Ok(ClientPlace(None));
        }
        let client = super::client::client_key(client, self.ipv6_prefix);
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let count = clients.entry(client).or_insert(0);
        if *count >= self.config.per_client {
            return Err(ApiError::RateLimited {
                retry_after: Duration::from_secs(1),
            });
        }
        *count += 1;
        Ok(ClientPlace(Some((Arc::clone(&self.clients), client))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(config: PricingBounds) -> PricingGate {
        PricingGate::new(config, 64, CoreMetrics::new().expect("metrics"))
    }

    const ONE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const TWO: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[tokio::test]
    async fn a_client_holds_at_most_its_share_and_others_still_get_in() {
        let gate = gate(PricingBounds {
            concurrency: 1,
            queue: 8,
            per_client: 2,
            wait: Duration::from_millis(50),
        });
        let first = gate.admit(ONE).await.expect("first");
        // ONE's second waits in line and runs out of time: the only running place is taken.
        assert!(matches!(gate.admit(ONE).await, Err(ApiError::Overloaded)));
        // Two places are its share: a third while both are held is refused at once.
        let gate2 = gate.clone();
        let second = tokio::spawn(async move { gate2.admit(ONE).await });
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(matches!(
            gate.admit(ONE).await,
            Err(ApiError::RateLimited { .. })
        ));
        drop(first);
        let second = second.await.expect("task").expect("admitted once freed");
        // Another client is not held back by ONE's share.
        drop(second);
        gate.admit(TWO).await.expect("another client");
    }

    #[tokio::test]
    async fn a_full_line_is_refused_at_once() {
        let gate = gate(PricingBounds {
            concurrency: 1,
            queue: 0,
            per_client: 0,
            wait: Duration::from_secs(10),
        });
        let _running = gate.admit(ONE).await.expect("first");
        assert!(matches!(gate.admit(TWO).await, Err(ApiError::Overloaded)));
    }

    #[test]
    fn a_dropped_watch_marks_the_work_abandoned_and_a_finished_one_does_not() {
        let flag = Arc::new(AtomicBool::new(false));
        drop(Watch(Some(Arc::clone(&flag))));
        assert!(flag.load(Ordering::Relaxed));
        let flag = Arc::new(AtomicBool::new(false));
        Watch(Some(Arc::clone(&flag))).done();
        assert!(!flag.load(Ordering::Relaxed));
    }
}
