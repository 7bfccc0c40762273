//! Star force's tests: hand-checked cases, the options, both cost tables, and the spread
//! against the exact chain.

use super::*;

fn plain(level: u32, from: u32, to: u32) -> Request {
    Request::plain(level, from, to)
}

/// Expectations with the default (KMS) cost table.
fn ex(request: &Request) -> Result<Expectation, StarforceError> {
    expect(CostTable::Kms, request)
}

#[test]
fn events_discounts_and_replacements() {
    let base = ex(&plain(200, 0, 22)).expect("valid");
    // 5/10/15: those attempts always succeed, so fewer attempts, mesos and destructions.
    let event = ex(&Request {
        event_5_10_15: true,
        ..plain(200, 0, 22)
    })
    .expect("valid");
    assert!(event.expected_attempts < base.expected_attempts);
    assert!(event.expected_mesos < base.expected_mesos);
    assert!(event.expected_destroys < base.expected_destroys);
    // At 15★ itself the event leaves nothing to chance.
    let at_15 = ex(&Request {
        event_5_10_15: true,
        ..plain(200, 15, 16)
    })
    .expect("valid");
    assert_eq!(at_15.expected_attempts, 1.0);
    assert_eq!(at_15.expected_destroys, 0.0);
    assert_eq!(at_15.expected_mesos, base_cost(CostTable::Kms, 200, 15));
    // MVP diamond + PC room + the 30% event: 45% off below 17★, only the 30% above.
    let members = |from, to| Request {
        discount_30: true,
        mvp: Some(Mvp::Diamond),
        pc_room: true,
        ..plain(200, from, to)
    };
    let low = ex(&members(11, 12)).expect("valid");
    let plain_low = ex(&plain(200, 11, 12)).expect("valid");
    assert!((low.expected_mesos - 0.55 * plain_low.expected_mesos).abs() < 1e-6);
    // From 17★ the attempts themselves get the 30% only; the climb back from 12★ after a
    // destruction still gets the member discounts.
    let high = ex(&members(17, 18)).expect("valid");
    let event_only = ex(&Request {
        discount_30: true,
        ..plain(200, 17, 18)
    })
    .expect("valid");
    let plain_high = ex(&plain(200, 17, 18)).expect("valid");
    assert!((event_only.expected_mesos - 0.70 * plain_high.expected_mesos).abs() < 1e-3);
    assert!(high.expected_mesos < event_only.expected_mesos);
    assert!(high.expected_mesos > 0.55 * plain_high.expected_mesos);
    // A replacement price adds destructions × price.
    let replaced = ex(&Request {
        replacement_mesos: Some(1_000_000_000),
        ..plain(200, 15, 22)
    })
    .expect("valid");
    let unreplaced = ex(&plain(200, 15, 22)).expect("valid");
    let extra = unreplaced.expected_destroys * 1e9;
    assert!((replaced.expected_replacement_mesos - extra).abs() < 1e-3);
    assert!((replaced.expected_mesos - unreplaced.expected_mesos - extra).abs() < 1e-3);
    assert_eq!(unreplaced.expected_replacement_mesos, 0.0);
}

#[test]
fn the_two_cost_tables_differ_below_15_stars_only() {
    for level in [140, 160, 200, 250] {
        for star in 0..15 {
            let kms = base_cost(CostTable::Kms, level, star);
            let calculator = base_cost(CostTable::Calculator, level, star);
            // KMS's table is the calculator's at 70% (the 1000-meso constant aside).
            let ratio = (kms - 1000.0) / (calculator - 1000.0);
            assert!((ratio - 0.7).abs() < 0.01, "{level}/{star}: {ratio}");
        }
        for star in 15..30 {
            assert_eq!(
                base_cost(CostTable::Kms, level, star),
                base_cost(CostTable::Calculator, level, star)
            );
        }
    }
    assert_eq!("kms".parse::<CostTable>(), Ok(CostTable::Kms));
    assert_eq!("calculator".parse::<CostTable>(), Ok(CostTable::Calculator));
    assert!("gms".parse::<CostTable>().is_err());
}

/// Exact destruction quantiles against the law they come from, and the simulation
/// against the exact figures: its destructions fall where the exact law puts them and
/// its mean mesos within four standard errors of the exact mean.
#[test]
fn the_spread_agrees_with_the_exact_chain() {
    for request in [
        plain(200, 0, 22),
        plain(160, 12, 17),
        plain(250, 15, 22),
        Request {
            star_catch: true,
            safeguard: true,
            replacement_mesos: Some(2_000_000_000),
            ..plain(200, 15, 21)
        },
    ] {
        let spread = spread(CostTable::Kms, &request).expect("valid");
        let exact = ex(&request).expect("valid");
        assert_eq!(spread.trials, SPREAD_TRIALS, "{request:?}");
        let mesos = spread.mesos.expect("simulated");
        let ordered = [mesos.p50, mesos.p75, mesos.p90, mesos.p95, mesos.p99];
        assert!(ordered.windows(2).all(|w| w[0] <= w[1]), "{ordered:?}");
        let d = spread.destroys;
        assert!(d.p50 <= d.p75 && d.p75 <= d.p90 && d.p90 <= d.p95 && d.p95 <= d.p99);
        // Re-simulate to compare the simulation's own destructions and mean.
        let (mean, sd, destroys) = simulate_for_test(&request, SPREAD_TRIALS);
        let standard_error = sd / (SPREAD_TRIALS as f64).sqrt();
        assert!(
            (mean - exact.expected_mesos).abs() < 4.0 * standard_error,
            "{request:?}: simulated mean {mean} vs exact {}",
            exact.expected_mesos
        );
        let up = up_odds(CostTable::Kms, &request);
        let (from, to) = (request.from as usize, request.to as usize);
        let a: f64 = up[from..to].iter().product();
        let b: f64 = up[12..to].iter().product();
        for q in Quantiles::<u64>::LEVELS {
            let rank = ((q * destroys.len() as f64).ceil() as usize).max(1);
            let simulated = destroys[rank - 1];
            let low = destroy_quantile(a, b, (q - 0.02).max(0.0));
            let high = destroy_quantile(a, b, (q + 0.02).min(0.999));
            assert!(
                (low..=high).contains(&simulated),
                "{request:?} q{q}: simulated {simulated}, exact {low}..={high}"
            );
        }
        // The exact law's mean is the recursion's expected destructions.
        let law_mean = (1.0 - a) / b;
        assert!((law_mean - exact.expected_destroys).abs() < 1e-9 * law_mean.max(1.0));
    }
}

/// The same climbs as [`spread`]: their mean, standard deviation and destructions.
fn simulate_for_test(request: &Request, trials: usize) -> (f64, f64, Vec<u64>) {
    let climbs = climbs(CostTable::Kms, request, trials, SPREAD_SEED);
    let n = trials as f64;
    let mean = climbs.iter().map(|c| c.mesos).sum::<f64>() / n;
    let square = climbs.iter().map(|c| c.mesos * c.mesos).sum::<f64>() / n;
    let mut destroys: Vec<u64> = climbs.iter().map(|c| c.destroys).collect();
    destroys.sort_unstable();
    (mean, (square - mean * mean).max(0.0).sqrt(), destroys)
}

#[test]
fn spreads_are_deterministic_cached_and_bounded() {
    let starforce = Starforce::new(CostTable::Kms);
    let first = starforce.spread(&plain(200, 0, 22)).expect("valid");
    // Same band of ten levels: the same entry, and the same figures as uncached.
    assert_eq!(starforce.spread(&plain(209, 0, 22)).expect("valid"), first);
    // A level whose band floor holds fewer stars (138 → 130: 30★ vs 20★) is still a
    // valid request: the key's level only prices, it is not validated again.
    let at_138 = starforce.spread(&plain(138, 0, 22)).expect("valid at 138");
    assert_eq!(
        at_138,
        spread(CostTable::Kms, &plain(138, 0, 22)).expect("valid")
    );
    assert!(
        starforce.spread(&plain(137, 0, 22)).is_err(),
        "137 holds 20★"
    );
    assert_eq!(
        spread(CostTable::Kms, &plain(200, 0, 22)).expect("valid"),
        first
    );
    // Nothing to climb: all zero.
    let none = starforce.spread(&plain(200, 17, 17)).expect("valid");
    assert_eq!(none.mesos.map(|m| m.p99), Some(0.0));
    assert_eq!(none.destroys.p99, 0);
    // No destruction below 15★: exactly zero at every quantile.
    let low = starforce.spread(&plain(200, 0, 15)).expect("valid");
    assert_eq!(low.destroys.p99, 0);
    // 30★ is far beyond what can be simulated within the work bound: the destructions
    // are still exact, the mesos quantiles say they are not there.
    let top = starforce.spread(&plain(250, 0, 30)).expect("valid");
    assert!(top.mesos.is_none() && top.trials == 0);
    assert!(top.destroys.p50 > 100, "{:?}", top.destroys);
    // Invalid requests are refused as `expect` refuses them.
    assert!(matches!(
        starforce.spread(&plain(100, 0, 10)),
        Err(StarforceError::AboveMaximum { .. })
    ));
}

#[test]
fn domain_check_15_to_22_destroys() {
    let e = ex(&plain(200, 15, 22)).expect("valid");
    assert!(
        (e.expected_destroys - 8.46).abs() < 0.005,
        "{}",
        e.expected_destroys
    );
}

#[test]
fn hand_checked_small_cases() {
    // 0→1 at level 150: one attempt succeeds with 95%: 1/0.95 attempts, no destruction.
    let e = ex(&plain(150, 0, 1)).expect("valid");
    assert!((e.expected_attempts - 1.0 / 0.95).abs() < 1e-12);
    assert_eq!(e.expected_destroys, 0.0);
    // KMS, 0★, level 150: 1000 + 150³/36 = 94,750, rounded to 100: 94,800.
    assert_eq!(base_cost(CostTable::Kms, 150, 0), 94_800.0);
    assert!((e.expected_mesos - 94_800.0 / 0.95).abs() < 1e-6);
    // The calculator's table: 100·round(150³·1/2500 + 10) = 100·1360 = 136,000.
    assert_eq!(base_cost(CostTable::Calculator, 150, 0), 136_000.0);
    // Level is floored to a multiple of 10.
    assert_eq!(
        base_cost(CostTable::Kms, 159, 5),
        base_cost(CostTable::Kms, 150, 5)
    );
    assert_eq!(ex(&plain(200, 17, 17)).expect("valid").expected_mesos, 0.0);
}

#[test]
fn options_move_the_numbers_the_right_way() {
    let base = ex(&plain(200, 12, 22)).expect("valid");
    let with = |f: fn(&mut Request)| {
        let mut r = plain(200, 12, 22);
        f(&mut r);
        ex(&r).expect("valid")
    };
    let catch = with(|r| r.star_catch = true);
    assert!(catch.expected_mesos < base.expected_mesos);
    assert!(catch.expected_destroys < base.expected_destroys);
    let guard = with(|r| r.safeguard = true);
    assert!(guard.expected_destroys < base.expected_destroys);
    let discount = with(|r| r.discount_30 = true);
    assert!(discount.expected_mesos < base.expected_mesos);
    assert_eq!(discount.expected_destroys, base.expected_destroys);
    let event = with(|r| r.destroy_reduction = true);
    assert!(event.expected_destroys < base.expected_destroys);
}

#[test]
fn expectations_add_up_over_a_split() {
    let whole = ex(&plain(160, 10, 20)).expect("valid");
    let a = ex(&plain(160, 10, 16)).expect("valid");
    let b = ex(&plain(160, 16, 20)).expect("valid");
    assert!((whole.expected_mesos - a.expected_mesos - b.expected_mesos).abs() < 1e-3);
}

#[test]
fn invalid_requests_name_the_field() {
    assert_eq!(ex(&plain(301, 0, 1)), Err(StarforceError::Level(301)));
    assert!(matches!(
        ex(&plain(200, 5, 3)),
        Err(StarforceError::Order { .. })
    ));
    assert!(matches!(
        ex(&plain(100, 0, 10)),
        Err(StarforceError::AboveMaximum { max: 8, .. })
    ));
    assert!(ex(&plain(200, 0, 30)).is_ok());
}
