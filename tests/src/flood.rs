//! One client floods core's pricing with distinct option sets while another asks for its first
//! valuation of a new character: what the pricing gate is for (`core/src/http/gate.rs`). The
//! e2e test `valuation::a_pricing_flood_from_one_client_does_not_hold_up_another` and the
//! `pricing-flood` tool (docs/benchmarks.md) both run it.
//!
//! The two clients are told apart by `X-Forwarded-For`, so core must believe it from the
//! address the requests come from (`MAPLE_CORE_TRUSTED_PROXIES`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The flooding client's address, as `X-Forwarded-For` names it.
pub const FLOODER: &str = "198.51.100.1";
/// The other client's.
pub const VICTIM: &str = "198.51.100.2";

/// What one run saw.
#[derive(Debug, Clone)]
pub struct FloodReport {
    /// The other client's first valuation of a new character with no flood.
    pub alone: (u16, Duration),
    /// The same for another new character, asked while the flood runs.
    pub during: (u16, Duration),
    /// The flood's answers by status.
    pub flood: BTreeMap<u16, usize>,
    /// How long the flood took.
    pub flood_took: Duration,
}

impl std::fmt::Display for FloodReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let statuses: Vec<String> = self
            .flood
            .iter()
            .map(|(status, n)| format!("{status}: {n}"))
            .collect();
        write!(
            f,
            "first valuation alone {} in {:.3} s; during the flood {} in {:.3} s; flood of {} in {:.1} s ({})",
            self.alone.0,
            self.alone.1.as_secs_f64(),
            self.during.0,
            self.during.1.as_secs_f64(),
            self.flood.values().sum::<usize>(),
            self.flood_took.as_secs_f64(),
            statuses.join(", ")
        )
    }
}

/// One valuation of `name` with `spare_mesos`, from `client`: its status and time.
async fn valuation(
    http: &reqwest::Client,
    target: &str,
    client: &str,
    name: &str,
    spare_mesos: u64,
) -> (u16, Duration) {
    let started = Instant::now();
    let status = http
        .get(format!(
            "{target}/v1/characters/{name}/expectation?spare_mesos={spare_mesos}"
        ))
        .header("x-forwarded-for", client)
        .send()
        .await
        .map_or(0, |response| response.status().as_u16());
    (status, started.elapsed())
}

/// Runs the scenario against core at `target`: `flood` valuations of one character with
/// distinct `spare_mesos`, `concurrency` at a time, from [`FLOODER`]; [`VICTIM`]'s first
/// valuation of a new character alone, then of another while the flood runs. `tag` (a few
/// letters) makes the character names new to this run.
pub async fn run(target: &str, flood: usize, concurrency: usize, tag: &str) -> FloodReport {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default();
    let flooded = format!("{tag}f");
    // The flooder's character is fetched before: the flood is pricing alone.
    let _ = http
        .get(format!("{target}/v1/characters/{flooded}/equipment"))
        .header("x-forwarded-for", FLOODER)
        .send()
        .await;
    let alone = valuation(&http, target, VICTIM, &format!("{tag}a"), 987_654_321).await;

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, target, flooded, next) = (
                http.clone(),
                target.to_owned(),
                flooded.clone(),
                Arc::clone(&next),
            );
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= flood {
                        return statuses;
                    }
                    let spare = 1_000_000 + u64::try_from(i).unwrap_or(0);
                    let (status, _) = valuation(&http, &target, FLOODER, &flooded, spare).await;
                    statuses.push(status);
                }
            })
        })
        .collect();
    // The flood is under way: every worker has sent its first request.
    while next.load(Ordering::Relaxed) < concurrency.min(flood) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let during = valuation(&http, target, VICTIM, &format!("{tag}d"), 987_654_321).await;
    let mut statuses = BTreeMap::new();
    for worker in workers {
        for status in worker.await.unwrap_or_default() {
            *statuses.entry(status).or_insert(0) += 1;
        }
    }
    FloodReport {
        alone,
        during,
        flood: statuses,
        flood_took: started.elapsed(),
    }
}
