//! Every setting of core, declared once: the variable, its default, its bounds and what it does.
//! The loaders in [`super`] read through these, the `Default`s of the configuration structs
//! take their defaults from them, the tables of `docs/configuration.md` are rendered from
//! [`SECTIONS`] (a test holds the doc to them) and `/v1/admin/config` shows what was read.

use std::net::SocketAddr;
use std::path::PathBuf;

#[cfg(test)]
use maple_common::setting::Describe;
pub use maple_common::setting::{Derived, Optional, Setting};
use maple_engine::model::Method;
use maple_engine::starforce::CostTable;

// Addresses and upstream.
pub const LISTEN: Setting<SocketAddr> =
    Setting::new("MAPLE_CORE_LISTEN", "127.0.0.1:8080", "core's HTTP address");
pub const PROXY_URL: Setting<String> = Setting::new(
    "MAPLE_PROXY_URL",
    "http://127.0.0.1:8081",
    "where core reaches the proxy (`http://` or `https://`)",
);
pub const PROXY_TOKEN: Optional<String> = Optional::new(
    "MAPLE_PROXY_TOKEN",
    "",
    "bearer token core sends to the proxy, when the proxy requires client tokens",
)
.secret();
pub const UPSTREAM_TIMEOUT_MS: Setting<u64> = Setting::new(
    "MAPLE_CORE_UPSTREAM_TIMEOUT_MS",
    "5000",
    "longest wait for one call through the proxy",
)
.at_least("1");
pub const REQUEST_TIMEOUT_MS: Setting<u64> = Setting::new(
    "MAPLE_CORE_REQUEST_TIMEOUT_MS",
    "10000",
    "longest any request may take; then 503 `request_timeout`",
)
.at_least("1");

// Database.
pub const DATABASE_URL: Setting<String> = Setting::new(
    "DATABASE_URL",
    "sqlite://var/maple.db",
    "`sqlite:…` (embedded; the folder is created) or `mysql://user:pass@host:3306/db`",
)
.url();
pub const DB_MAX_CONNECTIONS: Setting<u32> =
    Setting::new("MAPLE_DB_MAX_CONNECTIONS", "10", "pool size").within("1", "1000");

// Redis.
pub const REDIS_URL: Optional<String> = Optional::new(
    "REDIS_URL",
    "the embedded mode",
    "Redis for the shared equipment tier (L2), the fetch latch, likes and locks, e.g. \
     `redis://127.0.0.1:6379`",
)
.url();
pub const REDIS_SENTINELS: Optional<String> = Optional::new(
    "REDIS_SENTINELS",
    "",
    "instead of `REDIS_URL`: sentinels (`host:port,…`) that name the primary of \
     `REDIS_SENTINEL_MASTER`",
);
pub const REDIS_SENTINEL_MASTER: Setting<String> = Setting::new(
    "REDIS_SENTINEL_MASTER",
    "maple",
    "the master the sentinels name",
);
pub const REDIS_MIN_REPLICAS: Setting<u32> = Setting::new(
    "MAPLE_CORE_REDIS_MIN_REPLICAS",
    "0",
    "replicas that must confirm a like batch before it counts as stored in Redis",
)
.within("0", "16");
pub const REDIS_TIMEOUT_MS: Setting<u64> = Setting::new(
    "MAPLE_CORE_REDIS_TIMEOUT_MS",
    "250",
    "timeout of each Redis operation",
)
.at_least("1");
pub const REDIS_NAMESPACE: Setting<String> = Setting::new(
    "MAPLE_CORE_REDIS_NAMESPACE",
    "maple",
    "prefix of every Redis key (1–48 characters of `A-Z a-z 0-9 _ - .`)",
);

// Equipment tiers.
pub const EQUIPMENT_FRESH_S: Setting<u64> = Setting::new(
    "MAPLE_CORE_EQUIPMENT_FRESH_S",
    "300",
    "how long fetched equipment is served from L1, L2 or the database before Nexon is asked \
     again",
)
.within("0", "604800");
pub const STALE_AFTER_MS: Setting<u64> = Setting::new(
    "MAPLE_CORE_STALE_AFTER_MS",
    "200",
    "how long a request whose character has a copy waits for the refresh before the copy \
     answers",
)
.within("0", "60000");
pub const EQUIPMENT_KEEP_S: Setting<u64> = Setting::new(
    "MAPLE_CORE_EQUIPMENT_KEEP_S",
    "86400",
    "how long Redis keeps an entry (only with Redis)",
)
.within("60", "2592000");
pub const L1_MAX_BYTES: Setting<u64> = Setting::new(
    "MAPLE_CORE_L1_MAX_BYTES",
    "67108864",
    "the in-process equipment cache, compressed bytes",
)
.within("1048576", "68719476736")
.gloss("64 MiB");
pub const RAW_MAX_BYTES: Setting<u64> = Setting::new(
    "MAPLE_CORE_RAW_MAX_BYTES",
    "67108864",
    "decompressed bodies kept for clients without gzip, by content hash; `0` keeps none",
)
.within("0", "68719476736")
.gloss("64 MiB");
pub const LATCH_TTL_MS: Setting<u64> = Setting::new(
    "MAPLE_CORE_LATCH_TTL_MS",
    "8000",
    "life of the cross-instance fetch latch",
)
.at_least("1");
pub const LATCH_WAIT_MS: Setting<u64> = Setting::new(
    "MAPLE_CORE_LATCH_WAIT_MS",
    "3000",
    "how long other instances wait for the latch holder's result",
)
.at_least("1");

// Pricing caches and the pricing gate.
pub const PARSED_MAX_BYTES: Setting<u64> = Setting::new(
    "MAPLE_CORE_PARSED_MAX_BYTES",
    "134217728",
    "parsed equipment bodies kept for pricing, by content hash; `0` keeps none",
)
.within("0", "68719476736")
.gloss("128 MiB");
pub const VALUATION_MAX_BYTES: Setting<u64> = Setting::new(
    "MAPLE_CORE_VALUATION_MAX_BYTES",
    "134217728",
    "valuation answers kept ready to send (JSON and gzip), by content hash and options; `0` \
     keeps none",
)
.within("0", "68719476736")
.gloss("128 MiB");
pub const PRICING_CONCURRENCY: Derived<usize> = Derived::new(
    "MAPLE_CORE_PRICING_CONCURRENCY",
    "the machine's cores",
    "valuations and star-force spreads no cache answers, computed at once",
)
.within("1", "1024");
pub const PRICING_QUEUE: Setting<usize> = Setting::new(
    "MAPLE_CORE_PRICING_QUEUE",
    "64",
    "places in line behind them; a full line answers 503 `overloaded` with `Retry-After: 1`",
)
.within("0", "100000");
pub const PRICING_PER_CLIENT: Setting<usize> = Setting::new(
    "MAPLE_CORE_PRICING_PER_CLIENT",
    "2",
    "such computations one client may have in line or running; beyond it 429 \
     `rate_limited`; `0`: no bound",
)
.within("0", "10000");
pub const PRICING_WAIT_MS: Setting<u64> = Setting::new(
    "MAPLE_CORE_PRICING_WAIT_MS",
    "2000",
    "longest wait in line before 503 `overloaded`",
)
.within("1", "600000");

// Likes.
pub const LIKES_FLUSH_MS: Setting<u64> = Setting::new(
    "MAPLE_CORE_LIKES_FLUSH_MS",
    "2",
    "least time between two flushes of the like buffer (a like is answered only after its \
     flush)",
)
.within("1", "1000");
pub const LIKES_SYNC_MS: Setting<u64> = Setting::new(
    "MAPLE_CORE_LIKES_SYNC_MS",
    "1000",
    "how often the sync leader moves likes from Redis to the database",
)
.at_least("1");
pub const LIKES_WATCH_MS: Setting<u64> = Setting::new(
    "MAPLE_CORE_LIKES_WATCH_MS",
    "2000",
    "how often an instance checks the like batches it flushed to Redis",
)
.at_least("1");
pub const LIKES_RATE: Setting<f64> = Setting::new(
    "MAPLE_CORE_LIKES_RATE",
    "20",
    "likes per second per client (token bucket; `0` turns it off), then 429 with \
     `Retry-After`",
)
.within("0", "1000000");
pub const LIKES_BURST: Setting<f64> =
    Setting::new("MAPLE_CORE_LIKES_BURST", "40", "the likes bucket's burst").within("1", "1000000");
pub const LIKES_KEYS_PER_CLIENT: Setting<u64> = Setting::new(
    "MAPLE_CORE_LIKES_KEYS_PER_CLIENT",
    "10000",
    "likes with an `Idempotency-Key` one client may send in 24 h; `0`: no cap",
)
.within("0", "100000000");
pub const BACKUP_DIR: Setting<PathBuf> = Setting::new(
    "MAPLE_CORE_BACKUP_DIR",
    "var/backup",
    "where like backup files are written when neither Redis nor the database takes a batch",
);
pub const BACKUP_ARCHIVE_BYTES: Setting<u64> = Setting::new(
    "MAPLE_CORE_BACKUP_ARCHIVE_BYTES",
    "268435456",
    "how many bytes of applied backup files are kept in `archive/`",
)
.within("0", "1099511627776")
.gloss("256 MiB");
pub const LOCK_LEASE_MS: Setting<u64> = Setting::new(
    "MAPLE_CORE_LOCK_LEASE_MS",
    "10000",
    "lease of a Redis lock (renewed every third of it while held)",
)
.at_least("300");

// Admin API.
pub const ADMIN_KEYS_FILE: Optional<PathBuf> = Optional::new(
    "MAPLE_CORE_ADMIN_KEYS_FILE",
    "the admin API refuses everyone",
    "JSON file of admin keys (SHA-256 hashes with names, scopes and optional expiry), re-read \
     when it changes",
);
pub const AUDIT_REFUSED_KEEP: Setting<u64> = Setting::new(
    "MAPLE_CORE_AUDIT_REFUSED_KEEP",
    "10000",
    "refused admin attempts (401, 403) the audit log keeps",
)
.within("0", "100000000");

// Client limits.
pub const CLIENT_RATE: Setting<f64> = Setting::new(
    "MAPLE_CORE_CLIENT_RATE",
    "200",
    "requests per second per client on `/v1/` (`0`: off), then 429 with `Retry-After`",
)
.within("0", "1000000");
pub const CLIENT_BURST: Setting<f64> = Setting::new(
    "MAPLE_CORE_CLIENT_BURST",
    "400",
    "the request bucket's burst",
)
.within("1", "1000000");
pub const CLIENT_MISS_RATE: Setting<f64> = Setting::new(
    "MAPLE_CORE_CLIENT_MISS_RATE",
    "20",
    "name lookups per second per client that no cache answers, each a Nexon call (`0`: off)",
)
.within("0", "1000000");
pub const CLIENT_MISS_BURST: Setting<f64> = Setting::new(
    "MAPLE_CORE_CLIENT_MISS_BURST",
    "40",
    "the lookup bucket's burst",
)
.within("1", "1000000");
pub const CLIENT_IPV6_PREFIX: Setting<u8> = Setting::new(
    "MAPLE_CORE_CLIENT_IPV6_PREFIX",
    "64",
    "an IPv6 client is its prefix of this many bits",
)
.within("16", "128");
pub const NAME_RECHECK_S: Setting<u64> = Setting::new(
    "MAPLE_CORE_NAME_RECHECK_S",
    "21600",
    "how old a stored name → ocid may grow before Nexon is asked again",
)
.within("1", "2592000");
pub const NOT_FOUND_TTL_S: Setting<u64> = Setting::new(
    "MAPLE_CORE_NOT_FOUND_TTL_S",
    "30",
    "how long a name Nexon does not know is answered 404 without asking (`0`: never \
     remembered)",
)
.within("0", "3600");
pub const TRUSTED_PROXIES: Optional<String> = Optional::new(
    "MAPLE_CORE_TRUSTED_PROXIES",
    "",
    "comma-separated load-balancer addresses whose `X-Forwarded-For` names the client",
);
pub const MAX_IN_FLIGHT: Setting<usize> = Setting::new(
    "MAPLE_CORE_MAX_IN_FLIGHT",
    "1024",
    "requests handled at once; beyond it 503 `overloaded` at once (health and metrics exempt)",
)
.within("1", "1000000");
pub const MAX_BODY_BYTES: Setting<usize> = Setting::new(
    "MAPLE_CORE_MAX_BODY_BYTES",
    "65536",
    "largest request body (413)",
)
.within("1024", "16777216");
pub const HEADER_READ_TIMEOUT_MS: Setting<u64> = Setting::new(
    "MAPLE_CORE_HEADER_READ_TIMEOUT_MS",
    "10000",
    "longest a client may take to send a request head; slower connections are closed",
)
.at_least("1");
pub const MAX_CONNECTIONS: Setting<usize> = Setting::new(
    "MAPLE_CORE_MAX_CONNECTIONS",
    "4096",
    "most connections open at once (beyond it, new ones wait in the backlog)",
)
.within("1", "1000000");

// Shutdown.
pub const SHUTDOWN_DEADLINE_MS: Setting<u64> = Setting::new(
    "MAPLE_CORE_SHUTDOWN_DEADLINE_MS",
    "15000",
    "the deadline `D` of a shutdown, counted from the signal",
)
.at_least("1");
pub const DRAIN_DELAY_MS: Setting<u64> = Setting::new(
    "MAPLE_CORE_DRAIN_DELAY_MS",
    "0",
    "after SIGTERM, how long the instance keeps accepting while `/health/ready` answers 503 \
     (below `D/2`)",
)
.within("0", "600000");

// Pricing (handed to the engine).
pub const POTENTIAL_TABLES: Optional<PathBuf> = Optional::new(
    "MAPLE_POTENTIAL_TABLES",
    "built in (`data/potential_rates.csv`)",
    "a potential rate CSV instead of the built-in one; a bad file stops core, naming the row \
     or group",
);
pub const VALUATION_METHOD: Setting<Method> = Setting::new(
    "MAPLE_VALUATION_METHOD",
    "meso",
    "how characters are priced unless `?method=` says: `meso`, `red`, `black`",
);
pub const STARFORCE_COSTS: Setting<CostTable> = Setting::new(
    "MAPLE_STARFORCE_COSTS",
    "kms",
    "the 0–14★ star-force cost table: `kms` or `calculator`",
);
pub const PRICE_RED_CUBE: Setting<u64> = Setting::new(
    "MAPLE_PRICE_RED_CUBE",
    "12000000",
    "market price of a red cube",
);
pub const PRICE_BLACK_CUBE: Setting<u64> = Setting::new(
    "MAPLE_PRICE_BLACK_CUBE",
    "22000000",
    "market price of a black cube",
);

/// The doc's sections, each with its settings in the order the doc lists them (what the doc
/// test renders).
#[cfg(test)]
const SECTIONS: &[(&str, &[&dyn Describe])] = &[
    (
        "core/addresses",
        &[
            &LISTEN,
            &PROXY_URL,
            &PROXY_TOKEN,
            &UPSTREAM_TIMEOUT_MS,
            &REQUEST_TIMEOUT_MS,
        ],
    ),
    ("core/database", &[&DATABASE_URL, &DB_MAX_CONNECTIONS]),
    (
        "core/redis",
        &[
            &REDIS_URL,
            &REDIS_SENTINELS,
            &REDIS_SENTINEL_MASTER,
            &REDIS_MIN_REPLICAS,
            &REDIS_TIMEOUT_MS,
            &REDIS_NAMESPACE,
        ],
    ),
    (
        "core/tiers",
        &[
            &EQUIPMENT_FRESH_S,
            &STALE_AFTER_MS,
            &EQUIPMENT_KEEP_S,
            &L1_MAX_BYTES,
            &RAW_MAX_BYTES,
            &LATCH_TTL_MS,
            &LATCH_WAIT_MS,
        ],
    ),
    (
        "core/pricing-gate",
        &[
            &PARSED_MAX_BYTES,
            &VALUATION_MAX_BYTES,
            &PRICING_CONCURRENCY,
            &PRICING_QUEUE,
            &PRICING_PER_CLIENT,
            &PRICING_WAIT_MS,
        ],
    ),
    (
        "core/likes",
        &[
            &LIKES_FLUSH_MS,
            &LIKES_SYNC_MS,
            &LIKES_WATCH_MS,
            &LIKES_RATE,
            &LIKES_BURST,
            &LIKES_KEYS_PER_CLIENT,
            &BACKUP_DIR,
            &BACKUP_ARCHIVE_BYTES,
            &LOCK_LEASE_MS,
        ],
    ),
    ("core/admin", &[&ADMIN_KEYS_FILE, &AUDIT_REFUSED_KEEP]),
    (
        "core/client-limits",
        &[
            &CLIENT_RATE,
            &CLIENT_BURST,
            &CLIENT_MISS_RATE,
            &CLIENT_MISS_BURST,
            &CLIENT_IPV6_PREFIX,
            &NAME_RECHECK_S,
            &NOT_FOUND_TTL_S,
            &TRUSTED_PROXIES,
            &MAX_IN_FLIGHT,
            &MAX_BODY_BYTES,
            &HEADER_READ_TIMEOUT_MS,
            &MAX_CONNECTIONS,
        ],
    ),
    ("core/shutdown", &[&SHUTDOWN_DEADLINE_MS, &DRAIN_DELAY_MS]),
    (
        "core/pricing",
        &[
            &POTENTIAL_TABLES,
            &VALUATION_METHOD,
            &STARFORCE_COSTS,
            &PRICE_RED_CUBE,
            &PRICE_BLACK_CUBE,
        ],
    ),
];

#[cfg(test)]
mod tests {

    use super::*;

    /// The engine's own default prices (for library users) are the configuration's.
    #[test]
    fn the_declared_prices_are_the_engines() {
        let prices = maple_engine::prices::Prices::default();
        assert_eq!(PRICE_RED_CUBE.default_value(), prices.red_cube);
        assert_eq!(PRICE_BLACK_CUBE.default_value(), prices.black_cube);
    }

    /// The doc's tables of these settings are rendered from the declarations
    /// (`MAPLE_BLESS=1 cargo test --workspace --lib` rewrites them).
    #[test]
    fn the_configuration_doc_shows_the_declared_settings() {
        maple_common::setting::check_doc(env!("CARGO_MANIFEST_DIR"), SECTIONS);
    }
}
