//! The simulator's settings, declared once (`maple_common::setting`): `nexon-sim` and the
//! launcher `maple` read them, and the simulator's table in `docs/configuration.md` is
//! rendered from [`ALL`] (a test holds the doc to it).

use std::net::SocketAddr;
use std::path::PathBuf;

use maple_common::setting::{Describe, Optional, Setting};

pub const LISTEN: Setting<SocketAddr> = Setting::new(
    "MAPLE_SIM_LISTEN",
    crate::DEFAULT_LISTEN,
    "the simulator's address (`nexon-sim` and the launcher)",
);
pub const API_KEY: Setting<String> = Setting::new(
    "MAPLE_SIM_API_KEY",
    crate::DEFAULT_API_KEY,
    "the key `nexon-sim` accepts",
);
pub const GZIP: Setting<bool> = Setting::new(
    "MAPLE_SIM_GZIP",
    "true",
    "whether `nexon-sim` answers gzip (bodies of 1 KB or more, level 6) to requests that take \
     it; `false` plays an upstream that sends identity only",
);
pub const DATA_DIR: Optional<PathBuf> = Optional::new(
    "MAPLE_DATA_DIR",
    "built in (`data/`)",
    "a folder with other templates (`evan_equip.json`, `mechanic_equip.json`, \
     `basic_character_info.json`)",
);

/// Every setting, in the order the doc lists them.
pub const ALL: &[&dyn Describe] = &[&LISTEN, &API_KEY, &GZIP, &DATA_DIR];

#[cfg(test)]
mod tests {
    use super::*;

    /// The doc's tables of these settings are rendered from the declarations
    /// (`MAPLE_BLESS=1 cargo test --workspace --lib` rewrites them).
    #[test]
    fn the_configuration_doc_shows_the_declared_settings() {
        maple_common::setting::check_doc(env!("CARGO_MANIFEST_DIR"), &[("simulator", ALL)]);
    }
}
