//! How far a climb may stray from its mean: exact destruction quantiles and seeded simulated
//! meso quantiles.

use crate::splitmix::SplitMix64;
use serde::Serialize;

use super::chain::Chain;
use super::rules::{CostTable, RESTART_STAR, Request, StarforceError, next_star, validate};

/// Climbs simulated for the mesos quantiles of one request.
pub const SPREAD_TRIALS: usize = 10_000;
/// Most attempt outcomes (leaving a star, up or destroyed) one spread may simulate; a chain
/// that needs more gets fewer climbs, down to [`MIN_SPREAD_TRIALS`], or no mesos quantiles.
pub const SPREAD_WORK: f64 = 4.0e6;
/// Fewest climbs whose quantiles are still reported.
pub const MIN_SPREAD_TRIALS: usize = 3_000;
/// The simulation's seed: the same figures for the same request, everywhere, always.
pub(super) const SPREAD_SEED: u64 = 0x4d61_706c_6553_7461;

/// The five quantiles players read.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Quantiles<T> {
    pub p50: T,
    pub p75: T,
    pub p90: T,
    pub p95: T,
    pub p99: T,
}

impl<T> Quantiles<T> {
    /// The levels, in field order.
    pub const LEVELS: [f64; 5] = [0.50, 0.75, 0.90, 0.95, 0.99];

    fn from_fn(mut f: impl FnMut(f64) -> T) -> Self {
        let [a, b, c, d, e] = Self::LEVELS;
        Self {
            p50: f(a),
            p75: f(b),
            p90: f(c),
            p95: f(d),
            p99: f(e),
        }
    }
}

/// How far the outcome of a climb may stray from its mean.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = StarforceSpread))]
pub struct Spread {
    /// Mesos spent (recovery mesos and spare items at `spare_mesos` included), from a seeded
    /// simulation; `None` when the chain is too long to simulate (see `trials`).
    pub mesos: Option<Quantiles<f64>>,
    /// Destructions, exact.
    pub destroys: Quantiles<u64>,
    /// Climbs simulated for `mesos` (0 when it is `None`).
    pub trials: usize,
}

impl Spread {
    /// Nothing to climb: every quantile is 0.
    pub fn zero() -> Self {
        Self {
            mesos: Some(Quantiles::from_fn(|_| 0.0)),
            destroys: Quantiles::from_fn(|_| 0),
            trials: 0,
        }
    }
}

/// One star's odds and cost, as the simulation uses them.
#[derive(Debug, Clone, Copy)]
struct Move {
    cost: f64,
    /// ln(1 − P(leave)) for the geometric count of attempts; `None` when every attempt leaves.
    ln_stay: Option<f64>,
    /// P(success | the attempt leaves the star).
    up: f64,
    /// Where a success lands.
    next: usize,
    /// Where a destroyed item comes back, and what its repair costs (recovery and items).
    back: usize,
    repair_mesos: f64,
}

/// The smallest k with P(destructions ≤ k) ≥ q.
///
/// From `from` the item reaches `to` without a destruction with probability a = Π r_s over
/// `from..to` (r_s: leaving s upwards rather than destroyed); after a destruction each climb
/// from 12★ succeeds with b = Π r_s over `12..to`. So P(D = 0) = a and
/// P(D = k) = (1 − a)(1 − b)^(k−1) b for k ≥ 1. Holds when every repair goes back to 12★.
pub fn destroy_quantile(a: f64, b: f64, q: f64) -> u64 {
    if q <= a || b >= 1.0 {
        return u64::from(q > a);
    }
    // (1 − b)^k ≤ (1 − q) / (1 − a)
    let k = ((1.0 - q) / (1.0 - a)).ln() / (-b).ln_1p();
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "k is positive and far below 2^64 for any b the tables give"
    )]
    let k = k.ceil().max(1.0) as u64;
    k
}

/// Destruction quantiles of any repair policy: f_k(s) = P(at most k destructions from s to
/// `to`) = r_s·f_k(next(s)) + (1 − r_s)·f_{k−1}(back(s)), layer by layer until the highest
/// quantile is reached (or `max_layers`, which then stands for every quantile not reached).
pub(super) fn destroy_quantiles_by_layers(
    chain: &Chain,
    request: &Request,
    max_layers: u64,
) -> Quantiles<u64> {
    let (from, to) = (request.from as usize, request.to as usize);
    let mut previous = vec![0.0_f64; to + 1];
    let mut current = vec![0.0_f64; to + 1];
    let mut reached: [Option<u64>; 5] = [None; 5];
    for k in 0..=max_layers {
        current[to] = 1.0;
        for star in (0..to).rev() {
            let up = chain.up(star);
            let next = next_star(request, star);
            let destroyed = chain.links[star]
                .destruction
                .map_or(0.0, |d| previous[d.back]);
            current[star] = up * current[next] + (1.0 - up) * destroyed;
        }
        for (slot, level) in reached.iter_mut().zip(Quantiles::<u64>::LEVELS) {
            if slot.is_none() && current[from] >= level - 1e-12 {
                *slot = Some(k);
            }
        }
        if reached[4].is_some() {
            break;
        }
        std::mem::swap(&mut previous, &mut current);
    }
    let [a, b, c, d, e] = reached.map(|k| k.unwrap_or(max_layers));
    Quantiles {
        p50: a,
        p75: b,
        p90: c,
        p95: d,
        p99: e,
    }
}

/// The spread of `request`: exact destruction quantiles, simulated mesos quantiles.
///
/// # Errors
/// [`StarforceError`] naming the field that is out of range.
pub fn spread(table: CostTable, request: &Request) -> Result<Spread, StarforceError> {
    validate(request)?;
    Ok(spread_unchecked(table, request))
}

/// [`spread`] of a request already validated (the cache's key has its level floored, which
/// may sit in a lower band of [`max_stars`] than the request itself).
pub(super) fn spread_unchecked(table: CostTable, request: &Request) -> Spread {
    let (from, to) = (request.from as usize, request.to as usize);
    if from == to {
        return Spread::zero();
    }
    let chain = Chain::of(table, request);
    let destroys = if chain.all_twelve() {
        let a: f64 = (from..to).map(|star| chain.up(star)).product();
        let b: f64 = (RESTART_STAR.min(to)..to)
            .map(|star| chain.up(star))
            .product();
        Quantiles::from_fn(|q| destroy_quantile(a, b, q))
    } else {
        let mean: f64 = chain
            .path(request)
            .map(|star| chain.steps[star].destroys)
            .sum();
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a positive bound far below 2^64"
        )]
        let bound = (100.0 + 50.0 * mean).min(1.0e6) as u64;
        destroy_quantiles_by_layers(&chain, request, bound)
    };
    // Work per climb: each leave is one loop turn; E[leaves] by the same recursion as the
    // means, a leave counted like an attempt with certain departure.
    let per_climb: f64 = {
        let mut leaves = vec![0.0_f64; to];
        for star in 0..to {
            let up = chain.up(star);
            let climb: f64 = chain.links[star]
                .destruction
                .map_or(0.0, |d| leaves[d.back.min(star)..star].iter().sum());
            leaves[star] = (1.0 + (1.0 - up) * climb) / up;
        }
        chain.path(request).map(|star| leaves[star]).sum()
    };
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a positive count, clamped below"
    )]
    let affordable = (SPREAD_WORK / per_climb).min(SPREAD_TRIALS as f64) as usize;
    if affordable < MIN_SPREAD_TRIALS {
        return Spread {
            mesos: None,
            destroys,
            trials: 0,
        };
    }
    Spread {
        mesos: Some(sampled_quantiles(&chain, request, affordable, SPREAD_SEED)),
        destroys,
        trials: affordable,
    }
}

/// One simulated climb's outcome.
#[derive(Debug, Clone, Copy)]
pub(super) struct Climb {
    pub(super) mesos: f64,
    pub(super) destroys: u64,
}

/// `trials` climbs of a validated `request` along its `chain`, from `seed`.
pub(super) fn climbs(chain: &Chain, request: &Request, trials: usize, seed: u64) -> Vec<Climb> {
    let (from, to) = (request.from as usize, request.to as usize);
    let price = request.spare_price();
    let moves: Vec<Move> = (0..to)
        .map(|star| {
            let link = chain.links[star];
            let leave = link.success + link.destroy;
            let (back, repair_mesos) = link
                .destruction
                .map_or((star, 0.0), |d| (d.back, d.recovery + d.spares * price));
            Move {
                cost: link.cost,
                ln_stay: (leave < 1.0).then(|| (-leave).ln_1p()),
                up: link.success / leave,
                next: next_star(request, star),
                back,
                repair_mesos,
            }
        })
        .collect();
    let mut rng = SplitMix64::new(seed);
    (0..trials)
        .map(|_| {
            let mut climb = Climb {
                mesos: 0.0,
                destroys: 0,
            };
            let mut star = from;
            while star < to {
                let step = moves[star];
                // Attempts until one leaves the star: geometric, drawn at once.
                let attempts = step
                    .ln_stay
                    .map_or(1.0, |ln_stay| 1.0 + (rng.open01().ln() / ln_stay).floor());
                climb.mesos += attempts * step.cost;
                if rng.open01() < step.up {
                    star = step.next;
                } else {
                    star = step.back;
                    climb.destroys += 1;
                    climb.mesos += step.repair_mesos;
                }
            }
            climb
        })
        .collect()
}

/// Mesos quantiles of `trials` simulated climbs from `seed` (nearest rank). [`spread`] uses
/// [`SPREAD_TRIALS`] and a fixed seed; the error example compares it with a million climbs.
///
/// # Errors
/// [`StarforceError`] naming the field that is out of range.
pub fn mesos_quantiles(
    table: CostTable,
    request: &Request,
    trials: usize,
    seed: u64,
) -> Result<Quantiles<f64>, StarforceError> {
    validate(request)?;
    Ok(sampled_quantiles(
        &Chain::of(table, request),
        request,
        trials,
        seed,
    ))
}

fn sampled_quantiles(chain: &Chain, request: &Request, trials: usize, seed: u64) -> Quantiles<f64> {
    let mut samples: Vec<f64> = climbs(chain, request, trials.max(1), seed)
        .into_iter()
        .map(|climb| climb.mesos)
        .collect();
    samples.sort_unstable_by(f64::total_cmp);
    Quantiles::from_fn(|q| {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "an index below the sample count"
        )]
        let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1]
    })
}
