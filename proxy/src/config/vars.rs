//! Every setting of the proxy, declared once: the variable, its default, its bounds and what it
//! does (the file's keys map onto the variables, see [`env_var`](super::env_var)). The loaders
//! read through these, the `Default`s of the proxy's parts take their defaults from them, and
//! the proxy's tables in `docs/configuration.md` are rendered from [`SECTIONS`] (a test holds
//! the doc to them).

use std::net::SocketAddr;

#[cfg(test)]
use maple_common::setting::Describe;
use maple_common::setting::{Derived, Optional, Setting};

// Addresses, key and upstream.
pub const LISTEN: Setting<SocketAddr> = Setting::new(
    "MAPLE_PROXY_LISTEN",
    "127.0.0.1:8081",
    "the proxy's traffic address",
);
pub const ADMIN_LISTEN: Setting<SocketAddr> = Setting::new(
    "MAPLE_PROXY_ADMIN_LISTEN",
    "127.0.0.1:9081",
    "admin: `/metrics`, `/health`, `/breaker`, `/cache`",
);
/// Path of the YAML configuration file.
pub const CONFIG_FILE: Optional<String> =
    Optional::new("MAPLE_PROXY_CONFIG", "", "the YAML file above");
pub const UPSTREAM: Derived<String> = Derived::new(
    "MAPLE_PROXY_UPSTREAM",
    "`http://127.0.0.1:8090` (the simulator); `https://open.api.nexon.com` when a key is set",
    "where `/maplestory/v1/*` is forwarded",
);
pub const API_KEY: Optional<String> = Optional::new(
    "NEXON_API_KEY",
    "the simulator's dev key",
    "the Nexon key; only the proxy holds it, and it is never logged",
)
.secret();
pub const API_KEY_FILE: Optional<String> = Optional::new(
    "MAPLE_PROXY_API_KEY_FILE",
    "",
    "read the key from this file instead",
);
pub const CONNECT_TIMEOUT_MS: Setting<u64> = Setting::new(
    "MAPLE_PROXY_CONNECT_TIMEOUT_MS",
    "1000",
    "upstream connect timeout",
)
.at_least("1");
pub const READ_TIMEOUT_MS: Setting<u64> = Setting::new(
    "MAPLE_PROXY_READ_TIMEOUT_MS",
    "3000",
    "upstream read timeout (each read)",
)
.at_least("1");
pub const MAX_BODY_BYTES: Setting<usize> = Setting::new(
    "MAPLE_PROXY_MAX_BODY_BYTES",
    "8388608",
    "largest upstream body accepted, after inflation",
)
.within("1024", "268435456")
.gloss("8 MiB");

// Routes and cache.
pub const ROUTE_ID_TTL_S: Setting<u64> = Setting::new(
    "MAPLE_PROXY_ROUTES_ID_TTL_S",
    "21600",
    "how long an `/id` answer is fresh (an ocid changes only when a character is renamed or \
     deleted); `0` disables caching",
)
.within("0", "2592000");
pub const ROUTE_BASIC_TTL_S: Setting<u64> = Setting::new(
    "MAPLE_PROXY_ROUTES_BASIC_TTL_S",
    "300",
    "how long a `character/basic` answer is fresh; `0` disables caching",
)
.within("0", "2592000");
pub const ROUTE_ITEM_EQUIPMENT_TTL_S: Setting<u64> = Setting::new(
    "MAPLE_PROXY_ROUTES_ITEM_EQUIPMENT_TTL_S",
    "300",
    "how long a `character/item-equipment` answer is fresh; `0` disables caching",
)
.within("0", "2592000");
pub const ROUTE_OTHER_TTL_S: Setting<u64> = Setting::new(
    "MAPLE_PROXY_ROUTES_OTHER_TTL_S",
    "60",
    "how long any other Nexon answer is fresh; `0` disables caching",
)
.within("0", "2592000");
pub const ROUTE_ID_DEADLINE_MS: Setting<u64> = Setting::new(
    "MAPLE_PROXY_ROUTES_ID_DEADLINE_MS",
    "3000",
    "whole-request deadline of `/id`",
)
.at_least("1");
pub const ROUTE_BASIC_DEADLINE_MS: Setting<u64> = Setting::new(
    "MAPLE_PROXY_ROUTES_BASIC_DEADLINE_MS",
    "3000",
    "whole-request deadline of `character/basic`",
)
.at_least("1");
pub const ROUTE_ITEM_EQUIPMENT_DEADLINE_MS: Setting<u64> = Setting::new(
    "MAPLE_PROXY_ROUTES_ITEM_EQUIPMENT_DEADLINE_MS",
    "3000",
    "whole-request deadline of `character/item-equipment`",
)
.at_least("1");
pub const ROUTE_OTHER_DEADLINE_MS: Setting<u64> = Setting::new(
    "MAPLE_PROXY_ROUTES_OTHER_DEADLINE_MS",
    "3000",
    "whole-request deadline of any other Nexon route",
)
.at_least("1");
pub const CACHE_MAX_BYTES: Setting<u64> = Setting::new(
    "MAPLE_PROXY_CACHE_MAX_BYTES",
    "268435456",
    "response cache bound, bodies and keys",
)
.within("1048576", "68719476736")
.gloss("256 MiB");
pub const CACHE_STALE_S: Setting<u64> = Setting::new(
    "MAPLE_PROXY_CACHE_STALE_S",
    "86400",
    "how long after expiry an entry is kept to stand in when the upstream fails",
)
.within("0", "2592000");
pub const CACHE_REVALIDATE_S: Setting<u64> = Setting::new(
    "MAPLE_PROXY_CACHE_REVALIDATE_S",
    "60",
    "how long after expiry an entry is served at once while one background refresh runs (at \
     most `MAPLE_PROXY_CACHE_STALE_S`)",
)
.within("0", "2592000");
/// How long Nexon's "no such character" is answered from the cache (0: not cached).
pub const CACHE_NOT_FOUND_S: Setting<u64> = Setting::new(
    "MAPLE_PROXY_CACHE_NOT_FOUND_S",
    "30",
    "how long Nexon's \"no such character\" is served from the cache; `0`: not cached",
)
.within("0", "3600");

// Retries, rate limit, bulkhead.
pub const RETRY_MAX_ATTEMPTS: Setting<u32> = Setting::new(
    "MAPLE_PROXY_RETRY_MAX_ATTEMPTS",
    "3",
    "attempts per fetch (1 disables retries)",
)
.within("1", "10");
pub const RETRY_BASE_MS: Setting<u64> = Setting::new(
    "MAPLE_PROXY_RETRY_BASE_MS",
    "50",
    "first backoff of the exponential backoff with full jitter; `Retry-After` wins when Nexon \
     sends one",
)
.at_least("1");
pub const RETRY_MAX_BACKOFF_MS: Setting<u64> = Setting::new(
    "MAPLE_PROXY_RETRY_MAX_BACKOFF_MS",
    "1000",
    "longest backoff (not below the first)",
)
.at_least("1");
pub const RETRY_BUDGET_PCT: Setting<u32> = Setting::new(
    "MAPLE_PROXY_RETRY_BUDGET_PCT",
    "20",
    "retries may be at most this share of fetches…",
)
.within("0", "100");
pub const RETRY_MIN_PER_S: Setting<u32> = Setting::new(
    "MAPLE_PROXY_RETRY_MIN_PER_S",
    "5",
    "… plus this many per second",
)
.within("0", "10000");
pub const RATELIMIT_RPS: Setting<f64> = Setting::new(
    "MAPLE_PROXY_RATELIMIT_RPS",
    "100",
    "upstream calls per second (the key's quota)",
)
.within("0.01", "1000000");
pub const RATELIMIT_BURST: Derived<f64> = Derived::new(
    "MAPLE_PROXY_RATELIMIT_BURST",
    "the rps (at least 1)",
    "the rate limit's burst",
)
.within("1", "1000000");
pub const RATELIMIT_MAX_WAIT_MS: Setting<u64> = Setting::new(
    "MAPLE_PROXY_RATELIMIT_MAX_WAIT_MS",
    "250",
    "longest wait for a token; beyond it 429 `rate_limited` with `Retry-After`",
)
.within("0", "60000");
pub const BULKHEAD_MAX_CONCURRENT: Setting<usize> = Setting::new(
    "MAPLE_PROXY_BULKHEAD_MAX_CONCURRENT",
    "64",
    "upstream calls in progress at once",
)
.within("1", "10000");
pub const BULKHEAD_MAX_WAIT_MS: Setting<u64> = Setting::new(
    "MAPLE_PROXY_BULKHEAD_MAX_WAIT_MS",
    "500",
    "the wait for a slot before 503 `overloaded`",
)
.at_least("1");

// Tokens and alerts.
pub const CLIENT_TOKENS: Optional<String> = Optional::new(
    "MAPLE_PROXY_CLIENT_TOKENS",
    "",
    "comma-separated bearer tokens (at least 16 characters); when set, clients must send one",
)
.secret();
pub const ADMIN_TOKEN: Optional<String> = Optional::new(
    "MAPLE_PROXY_ADMIN_TOKEN",
    "",
    "bearer token for `POST /cache/purge`, which is refused while this is unset",
)
.secret();
pub const ALERT_WEBHOOK_URL: Optional<String> = Optional::new(
    "MAPLE_PROXY_ALERT_WEBHOOK_URL",
    "",
    "Discord-compatible webhook for alerts",
)
.secret();
pub const ALERT_DEDUPE_S: Setting<u64> = Setting::new(
    "MAPLE_PROXY_ALERT_DEDUPE_S",
    "300",
    "one alert per cause per this window",
)
.within("0", "86400");
pub const ALERT_PER_MINUTE: Setting<u32> = Setting::new(
    "MAPLE_PROXY_ALERT_PER_MINUTE",
    "6",
    "at most this many alerts per minute",
)
.within("1", "600");

// Circuit breaker.
pub const BREAKER_WINDOW: Setting<usize> = Setting::new(
    "MAPLE_PROXY_BREAKER_WINDOW",
    "10",
    "outcomes kept (a count-based window)",
)
.within("1", "1000");
pub const BREAKER_MIN_CALLS: Setting<usize> = Setting::new(
    "MAPLE_PROXY_BREAKER_MIN_CALLS",
    "5",
    "calls in the window before the failure rate is judged (at most the window)",
)
.within("1", "1000");
pub const BREAKER_FAILURE_RATE: Setting<u32> = Setting::new(
    "MAPLE_PROXY_BREAKER_FAILURE_RATE_PCT",
    "60",
    "failure rate that opens it (timeouts, connection errors, 5xx, 429)",
)
.within("1", "100");
pub const BREAKER_OPEN_MS: Setting<u64> = Setting::new(
    "MAPLE_PROXY_BREAKER_OPEN_MS",
    "30000",
    "how long it stays open before admitting probes",
)
.at_least("1");
pub const BREAKER_PROBES: Setting<u32> = Setting::new(
    "MAPLE_PROXY_BREAKER_PROBES",
    "3",
    "half-open probes; all must succeed to close, one failure re-opens it",
)
.within("1", "100");
pub const BREAKER_SLOW_CALL_MS: Optional<u64> = Optional::new(
    "MAPLE_PROXY_BREAKER_SLOW_CALL_MS",
    "",
    "when set, calls slower than this (ms, at least 1) count as failures",
);

// Process.
pub const THREADS: Setting<usize> =
    Setting::new("MAPLE_PROXY_THREADS", "2", "proxy worker threads").within("1", "256");
pub const GRACE_PERIOD_S: Setting<u64> = Setting::new(
    "MAPLE_PROXY_GRACE_PERIOD_S",
    "3",
    "on SIGTERM, the time in-flight proxy requests get",
);

/// The routes with their own policy, as they appear in keys (`routes.<name>.ttl_s`).
pub const ROUTE_NAMES: [&str; 4] = ["id", "basic", "item_equipment", "other"];

/// The doc's sections of the proxy, each with its settings in the order the doc lists them.
#[cfg(test)]
pub(super) const SECTIONS: &[(&str, &[&dyn Describe])] = &[
    (
        "proxy/addresses",
        &[
            &LISTEN,
            &ADMIN_LISTEN,
            &CONFIG_FILE,
            &UPSTREAM,
            &API_KEY,
            &API_KEY_FILE,
            &CONNECT_TIMEOUT_MS,
            &READ_TIMEOUT_MS,
            &MAX_BODY_BYTES,
        ],
    ),
    (
        "proxy/routes",
        &[
            &ROUTE_ID_TTL_S,
            &ROUTE_BASIC_TTL_S,
            &ROUTE_ITEM_EQUIPMENT_TTL_S,
            &ROUTE_OTHER_TTL_S,
            &ROUTE_ID_DEADLINE_MS,
            &ROUTE_BASIC_DEADLINE_MS,
            &ROUTE_ITEM_EQUIPMENT_DEADLINE_MS,
            &ROUTE_OTHER_DEADLINE_MS,
            &CACHE_MAX_BYTES,
            &CACHE_STALE_S,
            &CACHE_REVALIDATE_S,
            &CACHE_NOT_FOUND_S,
        ],
    ),
    (
        "proxy/retries",
        &[
            &RETRY_MAX_ATTEMPTS,
            &RETRY_BASE_MS,
            &RETRY_MAX_BACKOFF_MS,
            &RETRY_BUDGET_PCT,
            &RETRY_MIN_PER_S,
            &RATELIMIT_RPS,
            &RATELIMIT_BURST,
            &RATELIMIT_MAX_WAIT_MS,
            &BULKHEAD_MAX_CONCURRENT,
            &BULKHEAD_MAX_WAIT_MS,
        ],
    ),
    (
        "proxy/tokens",
        &[
            &CLIENT_TOKENS,
            &ADMIN_TOKEN,
            &ALERT_WEBHOOK_URL,
            &ALERT_DEDUPE_S,
            &ALERT_PER_MINUTE,
        ],
    ),
    (
        "proxy/breaker",
        &[
            &BREAKER_WINDOW,
            &BREAKER_MIN_CALLS,
            &BREAKER_FAILURE_RATE,
            &BREAKER_OPEN_MS,
            &BREAKER_PROBES,
            &BREAKER_SLOW_CALL_MS,
        ],
    ),
    ("proxy/process", &[&THREADS, &GRACE_PERIOD_S]),
];
