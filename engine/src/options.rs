//! How a request asks to be priced: the reset method, the star-force options and the flame
//! score's weights. A leaf: the engine's defaults and every pricing function take it.

use serde::{Deserialize, Serialize};

use crate::model::Method;
use crate::starforce;

/// How to price: reset method, miracle time, star-force options, flame weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = ValuationOptions))]
pub struct Options {
    pub method: Method,
    pub miracle_time: bool,
    /// Star force's rule set (kms-2026 by default).
    pub rules: starforce::Rules,
    /// Under kms-2025 only: the star-catch bonus (always applied under kms-2026).
    pub star_catch: bool,
    pub safeguard: bool,
    pub discount_30: bool,
    pub destroy_reduction: bool,
    /// Shining Star Force (30% off attempts, 30% less destruction at ≤ 21★, 20% off
    /// recovery mesos).
    pub shining: bool,
    /// The 5/10/15 event (attempts at 5★, 10★, 15★ always succeed).
    pub event_5_10_15: bool,
    /// The 1+1 event (a success at ≤ 10★ adds a second star).
    pub one_plus_one: bool,
    /// The player's MVP grade (discount on attempts at 0–16★).
    pub mvp: Option<starforce::Mvp>,
    /// Enhancing from a PC room (5% off attempts at 0–16★).
    pub pc_room: bool,
    /// How a destroyed item is repaired (kms-2026).
    pub repair: starforce::Repair,
    /// Price of one identical item, taken by every repair.
    pub spare_mesos: Option<u64>,
    /// The flame score's weight of a secondary stat, in thousandths (0 by default; the KMS
    /// community's "급" counts the main stat only).
    pub flame_secondary_per_mille: u16,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            method: Method::Meso,
            miracle_time: false,
            rules: starforce::Rules::Kms2026,
            star_catch: false,
            safeguard: false,
            discount_30: false,
            destroy_reduction: false,
            shining: false,
            event_5_10_15: false,
            one_plus_one: false,
            mvp: None,
            pc_room: false,
            repair: starforce::Repair::Cheapest,
            spare_mesos: None,
            flame_secondary_per_mille: 0,
        }
    }
}

impl Options {
    /// The star-force request these options make for an item of `level` from `from` to `to`.
    pub fn starforce(&self, level: u32, from: u32, to: u32) -> starforce::Request {
        starforce::Request {
            level,
            from,
            to,
            rules: self.rules,
            star_catch: self.star_catch,
            safeguard: self.safeguard,
            discount_30: self.discount_30,
            destroy_reduction: self.destroy_reduction,
            shining: self.shining,
            event_5_10_15: self.event_5_10_15,
            one_plus_one: self.one_plus_one,
            mvp: self.mvp,
            pc_room: self.pc_room,
            repair: self.repair,
            spare_mesos: self.spare_mesos,
        }
    }
}
