//! The expectation engine: what a potential, a star-force level or a flame costs, exactly.
//!
//! Its own crate so that the compiler holds the boundary: the dependencies are serde (with
//! serde_json), csv, thiserror and a synchronous cache; no async runtime, database, HTTP or server type. The
//! API server (`maple-core`) and the Nexon simulator (`maple-sim`) both use it.
//!
//! Rules: pure and free of I/O (the tables are parsed from text handed in); every mean and
//! probability is exact arithmetic over the published tables; the one simulation, star
//! force's meso quantiles, is seeded (the same figures on every run) and its error measured;
//! work and memory are bounded for any input (at most a fixed number of option classes per
//! line and of target terms, a fixed simulation budget).
//!
//! # Layout
//! - [`model`]: item types, cubes, grades, categories — the engine's vocabulary.
//! - [`tables`]: the per-line rate tables (CSV), validated and indexed.
//! - [`option`]: Nexon's Korean option text → (category, value).
//! - [`options`]: how a request asks to be priced (method, star-force options).
//! - [`potential`]: targets and the exact probability of reaching one in a reset.
//! - [`tierup`]: grade tier-up expectations with pity.
//! - [`additional`]: the additional potential's tables, prices and tier-up.
//! - [`prices`]: meso cost of a reset.
//! - [`starforce`]: exact star-force expectations and their spread.
//! - [`gear`]: the equipment response decoded and parsed once (what the valuation reads).
//! - [`flame`]: the flame law and the expected cost of a flame score.
//! - [`valuation`]: pricing a whole character's equipment.
//! - [`splitmix`]: the seeded generator behind every reproducible figure.

pub mod additional;
pub mod flame;
pub mod gear;
pub mod model;
pub mod option;
pub mod options;
pub mod potential;
pub mod prices;
pub mod splitmix;
pub mod starforce;
pub mod tables;
pub mod tierup;
pub mod valuation;

use std::path::Path;

pub use crate::gear::ARC_COUNTS_BYTES;

use crate::additional::AdditionalTables;
use crate::options::Options;
use crate::prices::Prices;
use crate::starforce::{CostTable, Starforce};
use crate::tables::{RateTables, TableError};

/// Everything the engine needs at run time, loaded once at start-up.
#[derive(Debug, Clone)]
pub struct Engine {
    pub tables: RateTables,
    /// The additional potential's tables (built in: `data/additional_rates.csv`).
    pub additional: AdditionalTables,
    pub prices: Prices,
    /// How characters are priced unless the request says otherwise.
    pub defaults: Options,
    /// The star-force cost table and the cache of spreads.
    pub starforce: Starforce,
    /// The flame laws already computed.
    pub flames: flame::Flames,
}

impl Engine {
    /// Loads and validates the rate tables: the file at `tables`, else the built-in ones.
    ///
    /// # Errors
    /// [`TableError`] naming the file, row or group that is wrong.
    pub fn load(
        tables: Option<&Path>,
        prices: Prices,
        defaults: Options,
        costs: CostTable,
    ) -> Result<Self, TableError> {
        Ok(Self {
            tables: match tables {
                Some(path) => RateTables::load(path)?,
                None => RateTables::built_in()?,
            },
            additional: AdditionalTables::built_in()?,
            prices,
            defaults,
            starforce: Starforce::new(costs),
            flames: flame::Flames::default(),
        })
    }

    /// The built-in tables with default prices, options and cost table (tests, benches).
    ///
    /// # Errors
    /// [`TableError`] if the built-in table were invalid (a test guards it).
    pub fn built_in() -> Result<Self, TableError> {
        Self::load(
            None,
            Prices::default(),
            Options::default(),
            CostTable::default(),
        )
    }
}
