//! One request's chain of stars: per star, the attempt's odds and cost, the repair chosen when
//! the item is destroyed there, and the expected amounts spent going up one star (re-climbs
//! included). `expect` sums it; the spread simulates it.

use super::recovery;
use super::rules::{
    CostTable, HIGHEST_TRACE, RESTART_STAR, Repair, RepairChoice, Request, Rules,
    SHINING_RECOVERY_DISCOUNT, attempt, next_star, recovery_mesos,
};

/// What a destruction at one star leads to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Destruction {
    /// The star the item comes back at.
    pub(super) back: usize,
    /// Recovery mesos (after the Shining discount).
    pub(super) recovery: f64,
    /// Identical items taken.
    pub(super) spares: f64,
    pub(super) choice: RepairChoice,
    /// The recovery mesos are extrapolated (no published row).
    pub(super) extrapolated: bool,
}

/// One star of the chain: the attempt's odds and cost and what a destruction leads to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Link {
    pub(super) success: f64,
    pub(super) destroy: f64,
    pub(super) cost: f64,
    /// `None` where the item cannot be destroyed.
    pub(super) destruction: Option<Destruction>,
}

/// Per star s, the expected amounts spent going from s to s+1 (re-climbs included).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Step {
    pub(super) attempt_mesos: f64,
    pub(super) recovery_mesos: f64,
    pub(super) spares: f64,
    pub(super) destroys: f64,
    pub(super) attempts: f64,
}

impl Step {
    pub(super) fn total(&self, spare_price: f64) -> f64 {
        self.attempt_mesos + self.recovery_mesos + self.spares * spare_price
    }

    pub(super) fn add(&mut self, other: &Self) {
        self.attempt_mesos += other.attempt_mesos;
        self.recovery_mesos += other.recovery_mesos;
        self.spares += other.spares;
        self.destroys += other.destroys;
        self.attempts += other.attempts;
    }
}

/// The chain of a validated request: each star's link (repairs chosen) and step.
pub(super) struct Chain {
    pub(super) links: Vec<Link>,
    pub(super) steps: Vec<Step>,
}

impl Chain {
    pub(super) fn of(table: CostTable, request: &Request) -> Self {
        let to = request.to as usize;
        let price = request.spare_price();
        let mut links = Vec::with_capacity(to);
        let mut steps: Vec<Step> = Vec::with_capacity(to);
        let climb = |steps: &[Step], back: usize, star: usize| -> Step {
            let mut sum = Step::default();
            for step in &steps[back.min(star)..star] {
                sum.add(step);
            }
            sum
        };
        for star in 0..to {
            let (success, destroy, cost) = attempt(table, request, star);
            let destruction = (destroy > 0.0).then(|| {
                let twelve = Destruction {
                    back: RESTART_STAR,
                    recovery: 0.0,
                    spares: 1.0,
                    choice: RepairChoice::Twelve,
                    extrapolated: false,
                };
                if request.rules == Rules::Kms2025 || request.repair == Repair::Twelve {
                    return twelve;
                }
                let trace = star.min(HIGHEST_TRACE);
                let trace_u32 = u32::try_from(trace).unwrap_or(u32::MAX);
                let (mesos, extrapolated) = recovery_mesos(table, request.level, trace_u32);
                let shining = if request.shining {
                    1.0 - SHINING_RECOVERY_DISCOUNT
                } else {
                    1.0
                };
                let keep = Destruction {
                    back: trace,
                    recovery: mesos * shining,
                    spares: f64::from(recovery::items_needed(trace_u32)),
                    choice: RepairChoice::Keep,
                    extrapolated,
                };
                if request.repair == Repair::Keep {
                    return keep;
                }
                let after = |d: &Destruction| {
                    d.recovery + d.spares * price + climb(&steps, d.back, star).total(price)
                };
                if after(&keep) < after(&twelve) {
                    keep
                } else {
                    twelve
                }
            });
            let mut step = Step {
                attempt_mesos: cost,
                attempts: 1.0,
                ..Step::default()
            };
            if let Some(d) = destruction {
                let back = climb(&steps, d.back, star);
                step.attempt_mesos += destroy * back.attempt_mesos;
                step.recovery_mesos = destroy * (d.recovery + back.recovery_mesos);
                step.spares = destroy * (d.spares + back.spares);
                step.destroys = destroy * (1.0 + back.destroys);
                step.attempts += destroy * back.attempts;
            }
            step.attempt_mesos /= success;
            step.recovery_mesos /= success;
            step.spares /= success;
            step.destroys /= success;
            step.attempts /= success;
            links.push(Link {
                success,
                destroy,
                cost,
                destruction,
            });
            steps.push(step);
        }
        Self { links, steps }
    }

    /// The stars a climb from `from` tries (each until it leaves it upwards).
    pub(super) fn path(&self, request: &Request) -> impl Iterator<Item = usize> {
        let request = *request;
        let to = request.to as usize;
        std::iter::successors(Some(request.from as usize), move |&star| {
            Some(next_star(&request, star))
        })
        .take_while(move |&star| star < to)
    }

    /// Whether every repair goes back to 12★.
    pub(super) fn all_twelve(&self) -> bool {
        self.links
            .iter()
            .filter_map(|link| link.destruction)
            .all(|d| d.choice == RepairChoice::Twelve)
    }

    /// P(leaving `star` upwards rather than destroyed).
    pub(super) fn up(&self, star: usize) -> f64 {
        let link = self.links[star];
        link.success / (link.success + link.destroy)
    }
}
