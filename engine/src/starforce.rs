//! Star force: exact expected mesos, destructions, spare items and attempts from star a to
//! b, and their spread.
//!
//! Two rule sets (DOMAIN.md §6), chosen per request by [`Rules`]:
//! - **kms-2026** (the default; KMS since 2026-03-19, Update/799): star catch is gone and its
//!   bonus always applies (success × 1.05, keep and destroy shrunk in proportion); a destroyed
//!   item becomes a trace at min(star, 22), repaired either back to 12★ with one identical
//!   item, or at its own star with 1–4 identical items and recovery mesos ([`recovery`]). Which
//!   repair, per star, is [`Repair`]: the cheapest by default.
//! - **kms-2025** (2025-03-20 to 2026-03-18): star catch optional, a destroyed item goes back
//!   to 12★ and is replaced by one item.
//!
//! Failure keeps the star under both. With C[s] the expected cost of going from s to s+1 and
//! r(s) the star a destroyed item comes back at, C[s] = (cost_s + d_s·(R_s + Σ_{t=r(s)}^{s−1}
//! C[t])) / p_s, R_s the repair's own price. A destroyed item only ever comes back lower, so
//! C[s] depends on the stars below alone, and choosing the cheaper repair star by star is the
//! optimal policy of the decision problem E(s) = c + p·E(s+1) + k·E(s) + d·min(R + E(r)).
//! The same recursion gives destructions, items, recovery mesos and attempts. No simulation
//! for the means.
//!
//! The spread ([`Spread`]): destructions are exact (a zero-modified geometric law when every
//! repair goes to 12★, see [`destroy_quantile`]; a small dynamic programme otherwise); mesos
//! come from a seeded simulation of [`SPREAD_TRIALS`] climbs, deterministic for a request and
//! cached per (level band, stars, options) in [`Starforce`]. Its error against a
//! million-climb reference is measured by `examples/starforce_spread_error.rs` and stated in
//! `docs/benchmarks.md`.

use std::collections::BTreeMap;

use serde::Serialize;

mod chain;
pub mod recovery;
mod rules;
mod spread;

pub use self::rules::{
    CostTable, Mvp, Repair, RepairChoice, Request, Rules, StarforceError, base_cost, max_stars,
    recovery_mesos, recovery_model,
};
pub use self::spread::{
    MIN_SPREAD_TRIALS, Quantiles, SPREAD_TRIALS, SPREAD_WORK, Spread, destroy_quantile,
    mesos_quantiles, spread,
};

use self::chain::{Chain, Destruction, Step};
use self::rules::validate;
use self::spread::spread_unchecked;

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = StarforceExpectation))]
pub struct Expectation {
    /// Everything the stars cost: attempts, recovery mesos and the spare items at
    /// `spare_mesos` (0 each when no price was given).
    pub expected_mesos: f64,
    /// The attempts' part of `expected_mesos`.
    pub expected_attempt_mesos: f64,
    /// The recovery mesos' part (star-keeping repairs).
    pub expected_recovery_mesos: f64,
    /// The spare items' part: `expected_spares` × `spare_mesos`.
    pub expected_spare_mesos: f64,
    /// `expected_spare_mesos` under its older name.
    pub expected_replacement_mesos: f64,
    pub expected_destroys: f64,
    /// Identical items the repairs take.
    pub expected_spares: f64,
    pub expected_attempts: f64,
    pub rules: Rules,
    /// The repair taken at each star where the item can be destroyed on the way.
    pub repair_policy: BTreeMap<u32, RepairChoice>,
    /// Whether a star-keeping repair in `repair_policy` is priced with extrapolated recovery
    /// mesos (the item's level has no published row; see [`recovery_model`]).
    pub recovery_extrapolated: bool,
}

/// Exact expectations for `request`, attempts priced with `table`.
///
/// # Errors
/// [`StarforceError`] naming the field that is out of range.
pub fn expect(table: CostTable, request: &Request) -> Result<Expectation, StarforceError> {
    validate(request)?;
    let chain = Chain::of(table, request);
    let mut sum = Step::default();
    for star in chain.path(request) {
        sum.add(&chain.steps[star]);
    }
    // The repairs a climb may meet: every destructible star from the lowest it can come back
    // to (or `from`) up to `to`.
    let lowest = chain
        .path(request)
        .filter_map(|star| chain.links[star].destruction.map(|d| d.back.min(star)))
        .min();
    let reachable: Vec<(usize, Destruction)> = lowest
        .map(|lowest| {
            (lowest..request.to as usize)
                .filter_map(|star| Some((star, chain.links[star].destruction?)))
                .collect()
        })
        .unwrap_or_default();
    let repair_policy = reachable
        .iter()
        .filter_map(|&(star, d)| Some((u32::try_from(star).ok()?, d.choice)))
        .collect();
    let recovery_extrapolated = reachable
        .iter()
        .any(|(_, d)| d.choice == RepairChoice::Keep && d.extrapolated);
    let spare_mesos = sum.spares * request.spare_price();
    // `+ 0.0`: an empty sum is −0.0, which JSON would show as `-0.0`.
    Ok(Expectation {
        expected_mesos: sum.attempt_mesos + sum.recovery_mesos + spare_mesos + 0.0,
        expected_attempt_mesos: sum.attempt_mesos + 0.0,
        expected_recovery_mesos: sum.recovery_mesos + 0.0,
        expected_spare_mesos: spare_mesos + 0.0,
        expected_replacement_mesos: spare_mesos + 0.0,
        expected_destroys: sum.destroys + 0.0,
        expected_spares: sum.spares + 0.0,
        expected_attempts: sum.attempts + 0.0,
        rules: request.rules,
        repair_policy,
        recovery_extrapolated,
    })
}

/// Star force as the service prices it: the configured cost table and a cache of spreads.
///
/// A spread costs milliseconds to simulate and never changes for the same input, so each is
/// kept per (level band, from, to, options); a character's items share a handful of them.
#[derive(Debug, Clone)]
pub struct Starforce {
    table: CostTable,
    spreads: moka::sync::Cache<Request, Spread>,
    /// One simulation at a time per process: a burst of uncached requests (each distinct
    /// `spare_mesos` is one) takes one core, not all of them.
    simulating: std::sync::Arc<std::sync::Mutex<()>>,
}

/// Spreads kept (each a few dozen bytes).
const SPREAD_CACHE_ENTRIES: u64 = 16_384;

impl Starforce {
    pub fn new(table: CostTable) -> Self {
        Self {
            table,
            spreads: moka::sync::Cache::new(SPREAD_CACHE_ENTRIES),
            simulating: std::sync::Arc::default(),
        }
    }

    pub fn table(&self) -> CostTable {
        self.table
    }

    /// # Errors
    /// [`StarforceError`] naming the field that is out of range.
    pub fn expect(&self, request: &Request) -> Result<Expectation, StarforceError> {
        expect(self.table, request)
    }

    /// [`spread`], cached: requests that only differ by the level within its band of ten
    /// (the cost formula floors it) share one entry once validated, unless a star-keeping
    /// repair may price their recovery mesos at their own level. Concurrent misses on one
    /// key simulate once; misses on different keys simulate one after the other.
    ///
    /// # Errors
    /// [`StarforceError`] naming the field that is out of range.
    pub fn spread(&self, request: &Request) -> Result<Spread, StarforceError> {
        validate(request)?;
        let key = Self::key(request);
        Ok(self.spreads.get_with(key, || {
            // A poisoned lock only means another simulation panicked; the guard holds no data.
            let _one_at_a_time = self
                .simulating
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            spread_unchecked(self.table, &key)
        }))
    }

    /// Spreads kept, and their bytes (each a fixed-size value beside its key).
    pub fn usage(&self) -> (u64, u64) {
        self.spreads.run_pending_tasks();
        let entries = self.spreads.entry_count();
        let each = std::mem::size_of::<Request>() + std::mem::size_of::<Spread>();
        (entries, entries * u64::try_from(each).unwrap_or(u64::MAX))
    }

    /// Whether [`Self::spread`] would answer `request` from the cache (no simulation).
    pub fn is_cached(&self, request: &Request) -> bool {
        self.spreads.contains_key(&Self::key(request))
    }

    /// The cache key: the attempts' cost formula floors the level; recovery mesos do not (a
    /// published row or the model at the exact level), so a request that may repair at the
    /// trace's star keeps its own level.
    fn key(request: &Request) -> Request {
        let recovery_matters =
            request.rules == Rules::Kms2026 && request.repair != Repair::Twelve && request.to > 15;
        let level = if recovery_matters {
            request.level
        } else {
            request.level / 10 * 10
        };
        Request { level, ..*request }
    }
}

#[cfg(test)]
mod tests;
