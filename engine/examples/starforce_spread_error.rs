//! How far the service's star-force meso quantiles (10,000 seeded climbs) stray from a
//! million-climb reference with another seed, for the requests players make most.
//!
//! Run: `cargo run --release -p maple-engine --example starforce_spread_error`
//! (figures in `docs/benchmarks.md`).

#![expect(
    clippy::print_stdout,
    reason = "the example is a report printed to the terminal"
)]

use maple_engine::starforce::{self, CostTable, Quantiles, Request};

const REFERENCE_TRIALS: usize = 1_000_000;
const REFERENCE_SEED: u64 = 1;

fn main() {
    let table = CostTable::default();
    let requests = [
        ("200, 0→22", Request::plain(200, 0, 22)),
        ("200, 15→22", Request::plain(200, 15, 22)),
        ("250, 12→22", Request::plain(250, 12, 22)),
        ("160, 0→17", Request::plain(160, 0, 17)),
        (
            "200, 0→22, star catch + safeguard",
            Request {
                star_catch: true,
                safeguard: true,
                ..Request::plain(200, 0, 22)
            },
        ),
        ("200, 15→25", Request::plain(200, 15, 25)),
        ("200, 0→26", Request::plain(200, 0, 26)),
    ];
    println!(
        "{:<36} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9}",
        "request", "trials", "p50", "p75", "p90", "p95", "p99", "time"
    );
    let mut worst: f64 = 0.0;
    for (name, request) in requests {
        // One uncached spread, as a cache miss pays it (wall clock: indicative only).
        let started = std::time::Instant::now();
        let service = starforce::spread(table, &request).expect("valid request");
        let took = started.elapsed();
        let Some(mesos) = service.mesos else {
            println!("{name:<36} beyond the simulation budget");
            continue;
        };
        let reference =
            starforce::mesos_quantiles(table, &request, REFERENCE_TRIALS, REFERENCE_SEED)
                .expect("valid request");
        let pairs = |q: &Quantiles<f64>| [q.p50, q.p75, q.p90, q.p95, q.p99];
        let errors: Vec<f64> = pairs(&mesos)
            .iter()
            .zip(pairs(&reference))
            .map(|(ours, theirs)| (ours - theirs) / theirs * 100.0)
            .collect();
        worst = errors.iter().fold(worst, |w, e| w.max(e.abs()));
        print!("{name:<36} {:>6}", service.trials);
        for error in &errors {
            print!(" {error:>+6.2}%");
        }
        println!(" {:>7.1}ms", took.as_secs_f64() * 1000.0);
    }
    println!("largest error: {worst:.2}% (service quantile vs {REFERENCE_TRIALS} climbs)");
}
