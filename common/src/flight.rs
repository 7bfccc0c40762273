//! Request coalescing: concurrent misses for one key share one upstream fetch.
//!
//! The first request for a key becomes the leader and starts the fetch as a task of its own (so
//! a leader whose client hangs up does not cancel everyone else's answer); later requests for
//! the key subscribe to the same result. The entry is removed by the task when it finishes —
//! after the result is in the cache — or by a guard if the task is dropped, so a key can never
//! stay stuck "in flight".

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;
use tokio_util::task::TaskTracker;

/// The in-flight fetches, by key.
#[derive(Debug)]
pub struct Flights<T> {
    inflight: Arc<Mutex<HashMap<String, watch::Receiver<Option<T>>>>>,
    /// The fetch tasks, so a shutdown can wait for them without polling.
    tasks: TaskTracker,
}

impl<T> Default for Flights<T> {
    fn default() -> Self {
        Self {
            inflight: Arc::default(),
            tasks: TaskTracker::new(),
        }
    }
}

/// How a request joined a flight.
#[derive(Debug)]
pub enum Joined<T> {
    /// This request started the fetch.
    Leader(watch::Receiver<Option<T>>),
    /// Another request had already started it.
    Follower(watch::Receiver<Option<T>>),
}

impl<T> Joined<T> {
    pub fn into_receiver(self) -> watch::Receiver<Option<T>> {
        match self {
            Self::Leader(rx) | Self::Follower(rx) => rx,
        }
    }
}

/// Removes the key when the fetch ends, however it ends.
struct Landing<T> {
    inflight: Arc<Mutex<HashMap<String, watch::Receiver<Option<T>>>>>,
    key: String,
}

impl<T> Drop for Landing<T> {
    fn drop(&mut self) {
        self.inflight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

impl<T> Flights<T>
where
    T: Clone + Send + Sync + 'static,
{
    /// Joins the flight for `key`, starting it with `fetch` if none is in the air. The fetch runs
    /// as a spawned task and leaves the map before its result is sent: store the result in the
    /// cache inside `fetch`, so that a request arriving after the flight lands finds it there.
    pub fn join<F, Fut>(&self, key: &str, fetch: F) -> Joined<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let mut inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(rx) = inflight.get(key) {
            return Joined::Follower(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        inflight.insert(key.to_owned(), rx.clone());
        drop(inflight);
        let landing = Landing {
            inflight: Arc::clone(&self.inflight),
            key: key.to_owned(),
        };
        // The fetch runs in the leader's trace (its span is the parent of the fetch's spans).
        let fetch = tracing::Instrument::in_current_span(fetch());
        self.tasks.spawn(async move {
            let result = fetch.await;
            // Leave the map first: from here on, newcomers read the cache, not this flight.
            drop(landing);
            tx.send_replace(Some(result));
        });
        Joined::Leader(rx)
    }

    /// Flights in the air right now.
    pub fn len(&self) -> usize {
        self.inflight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves when every fetch started so far, and any started meanwhile, has ended (for a
    /// shutdown: new flights may still start, and are waited for too).
    pub async fn drained(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Waits for a flight's result; `None` if the fetch task died without one.
pub async fn land<T: Clone>(mut rx: watch::Receiver<Option<T>>) -> Option<T> {
    rx.wait_for(Option::is_some)
        .await
        .ok()
        .and_then(|value| value.clone())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn concurrent_joins_share_one_fetch() {
        let flights = Arc::new(Flights::<u32>::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let mut waiters = Vec::new();
        let mut leaders = 0;
        for _ in 0..100 {
            let calls = Arc::clone(&calls);
            let joined = flights.join("k", move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                7
            });
            if matches!(joined, Joined::Leader(_)) {
                leaders += 1;
            }
            waiters.push(tokio::spawn(land(joined.into_receiver())));
        }
        for waiter in waiters {
            assert_eq!(waiter.await.expect("joined"), Some(7));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(leaders, 1);
        assert!(flights.is_empty(), "the flight landed");
    }

    #[tokio::test]
    async fn a_dead_fetch_frees_the_key() {
        let flights = Flights::<u32>::default();
        let joined = flights.join("k", || async {
            std::future::pending::<()>().await;
            1
        });
        let rx = joined.into_receiver();
        assert_eq!(flights.len(), 1);
        // A second join follows the pending flight.
        assert!(matches!(
            flights.join("k", || async { 2 }),
            Joined::Follower(_)
        ));
        drop(rx);
        let other = flights.join("other", || async { panic!("fetch failed") });
        assert_eq!(land(other.into_receiver()).await, None);
        assert_eq!(
            flights.len(),
            1,
            "the panicked flight left, the pending one stays"
        );
    }

    #[tokio::test]
    async fn drained_waits_for_every_flight_started_before_and_during_the_wait() {
        let flights = Arc::new(Flights::<u32>::default());
        let landed = Arc::new(AtomicUsize::new(0));
        let slow = |ms: u64| {
            let landed = Arc::clone(&landed);
            move || async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                landed.fetch_add(1, Ordering::SeqCst);
                1
            }
        };
        drop(flights.join("a", slow(50)));
        let waiting = {
            let flights = Arc::clone(&flights);
            tokio::spawn(async move { flights.drained().await })
        };
        tokio::task::yield_now().await;
        // Started while the drain waits: waited for too.
        drop(flights.join("b", slow(100)));
        waiting.await.expect("drained");
        assert_eq!(landed.load(Ordering::SeqCst), 2, "both flights ended first");
        assert!(flights.is_empty());
    }
}
