//! How a request asks to be priced: the reset method and the star-force options. A leaf: the
//! engine's defaults and every pricing function take it.

use serde::{Deserialize, Serialize};

use crate::engine::model::Method;
use crate::engine::starforce;

/// How to price: reset method, miracle time, star-force options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Options {
    pub method: Method,
    pub miracle_time: bool,
    pub star_catch: bool,
    pub safeguard: bool,
    pub discount_30: bool,
    pub destroy_reduction: bool,
    /// The 5/10/15 event (attempts at 5★, 10★, 15★ always succeed).
    pub event_5_10_15: bool,
    /// The player's MVP grade (discount below 17★).
    pub mvp: Option<starforce::Mvp>,
    /// Enhancing from a PC room (5% below 17★).
    pub pc_room: bool,
    /// Price of a replacement item, added per expected destruction.
    pub replacement_mesos: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            method: Method::Meso,
            miracle_time: false,
            star_catch: false,
            safeguard: false,
            discount_30: false,
            destroy_reduction: false,
            event_5_10_15: false,
            mvp: None,
            pc_room: false,
            replacement_mesos: None,
        }
    }
}
