//! Background loops that outlive a panic: each runs under [`supervised`], which catches a
//! panic, logs it with its cause, counts it in `maple_core_task_restarts_total{task}`, waits
//! (100 ms, doubling to 10 s; back to 100 ms once a run has lasted a minute) and starts the
//! loop again, until the loop returns by itself (it saw the stop signal) or `stop` fires
//! during the wait.
//!
//! A loop restarted this way begins from scratch: it must not rely on a wake-up it consumed
//! before the panic (the flusher, for one, flushes what is buffered as it starts).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use maple_common::metrics::{Counters, Label as _};
use tokio_util::sync::CancellationToken;

maple_common::metric_labels! {
    /// `maple_core_task_restarts_total{task}`: the supervised background loops.
    pub enum Task {
        LikesFlush => "likes_flush",
        LikesSync => "likes_sync",
        LikesWatch => "likes_watch",
        LikesRecover => "likes_recover",
        RedisMemory => "redis_memory",
        PurgeFollower => "purge_follower",
    }
}

/// The first wait after a panic; it doubles with each panic in a row up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A run that lasted this long resets the wait to [`FIRST_BACKOFF`].
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// Runs the loop `run` makes until it returns, restarting it after each panic (see the
/// module's doc).
pub async fn supervised<F, Fut>(
    task: Task,
    restarts: Counters<Task>,
    stop: CancellationToken,
    mut run: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        let Err(panic) = AssertUnwindSafe(run()).catch_unwind().await else {
            return;
        };
        restarts.inc(task);
        if started.elapsed() >= HEALTHY_RUN {
            backoff = FIRST_BACKOFF;
        }
        tracing::error!(
            task = task.as_str(),
            cause = panic_message(panic.as_ref()),
            restart_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
            "background task panicked; restarting it"
        );
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// The text a panic was raised with (`panic!("…")` gives a `&str` or a `String`).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use maple_common::metrics::Metric as _;

    #[tokio::test]
    async fn a_panicking_loop_is_restarted_and_counted_until_it_returns() {
        let registry = prometheus::Registry::new();
        let restarts =
            Counters::<Task>::register(&registry, "restarts", "help", "task").expect("metric");
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        supervised(
            Task::LikesFlush,
            restarts.clone(),
            CancellationToken::new(),
            move || {
                let run = counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert!(run >= 3, "injected panic {run}");
                }
            },
        )
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 4);
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .expect("text");
        assert!(
            text.contains(&format!(
                "restarts{{task=\"{}\"}} 3",
                Task::LikesFlush.as_str()
            )),
            "{text}"
        );
    }

    #[tokio::test]
    async fn stop_ends_the_wait_after_a_panic() {
        let registry = prometheus::Registry::new();
        let restarts =
            Counters::<Task>::register(&registry, "restarts", "help", "task").expect("metric");
        let stop = CancellationToken::new();
        stop.cancel();
        let runs = AtomicUsize::new(0);
        supervised(Task::RedisMemory, restarts, stop, || {
            runs.fetch_add(1, Ordering::SeqCst);
            async { panic!("always") }
        })
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_cause_is_the_panic_text() {
        let payload: Box<dyn std::any::Any + Send> = Box::new("static text");
        assert_eq!(panic_message(payload.as_ref()), "static text");
        let payload: Box<dyn std::any::Any + Send> = Box::new(format!("formatted {}", 1));
        assert_eq!(panic_message(payload.as_ref()), "formatted 1");
        let payload: Box<dyn std::any::Any + Send> = Box::new(7_u8);
        assert_eq!(panic_message(payload.as_ref()), "a panic without a message");
    }
}
