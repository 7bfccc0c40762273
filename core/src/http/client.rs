//! Who a request is from ([`ClientIp`], believing `X-Forwarded-For` only from trusted proxies)
//! and each client's token bucket ([`ClientLimits`]) for the per-client rates. An IPv6 client
//! is its prefix (a /64 by default: what one host or subscriber is usually given), so rotating
//! addresses inside it gets no new bucket.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use maple_common::rate::TokenBucket;

/// Per-client token buckets, keyed by the client's address (IPv6: its prefix); up to 100,000
/// clients, each forgotten after 10 idle minutes.
#[derive(Debug, Clone)]
pub struct ClientLimits {
    buckets: moka::sync::Cache<IpAddr, Arc<TokenBucket>>,
    ipv6_prefix: u8,
}

impl ClientLimits {
    /// IPv6 clients are grouped by their first `ipv6_prefix` bits (at most 128).
    pub fn new(ipv6_prefix: u8) -> Self {
        Self {
            buckets: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
            ipv6_prefix,
        }
    }

    /// Takes a token from `client`'s bucket (made at `rate` per second with `burst` on first
    /// use); `Err` says when one will be free.
    pub fn take(&self, client: IpAddr, rate: f64, burst: f64) -> Result<(), Duration> {
        let now = Instant::now();
        let bucket = self.buckets.get_with(self.key(client), || {
            Arc::new(TokenBucket::new(
                maple_common::rate::RateLimitConfig {
                    rps: rate,
                    burst,
                    max_wait: Duration::ZERO,
                },
                now,
            ))
        });
        bucket.reserve(now).map(drop)
    }

    /// The bucket's key (see [`client_key`]).
    fn key(&self, client: IpAddr) -> IpAddr {
        client_key(client, self.ipv6_prefix)
    }
}

/// Who counts as one client: an IPv4 address (also when written IPv4-mapped), or an IPv6
/// address with the bits past `ipv6_prefix` cleared.
pub(super) fn client_key(client: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match client {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(ipv6_prefix.min(128)))
                    .unwrap_or(0);
                IpAddr::V6(std::net::Ipv6Addr::from_bits(v6.to_bits() & mask))
            }
        },
    }
}

/// How many idempotency keys each client has used in the current window (24 h from its
/// first): each key is remembered that long in Redis and the database, so the cap bounds
/// what one client can make them hold. Per instance.
#[derive(Debug, Clone)]
pub struct KeyAllowance {
    windows: moka::sync::Cache<IpAddr, Arc<KeyWindow>>,
    window: Duration,
    ipv6_prefix: u8,
    /// Hashes the keys remembered per client (seeded per process).
    hasher: std::collections::hash_map::RandomState,
}

#[derive(Debug)]
struct KeyWindow {
    opened: Instant,
    used: std::sync::atomic::AtomicU64,
    /// The client's most recent keys (a hash of each), so that a retry with the same key —
    /// what the API asks after `outcome_unknown` — is not charged again.
    recent: std::sync::Mutex<std::collections::VecDeque<u64>>,
}

/// Keys remembered per client for not charging a retry twice: retries follow their first
/// attempt within seconds, so the last few cover them.
const RECENT_KEYS: usize = 64;

impl KeyAllowance {
    /// Windows of `window`; IPv6 clients grouped as in [`ClientLimits`].
    pub fn new(window: Duration, ipv6_prefix: u8) -> Self {
        Self {
            windows: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(window)
                .build(),
            window,
            ipv6_prefix,
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Counts `key` for `client` if it has used fewer than `cap` keys in its window; a key
    /// among its [`RECENT_KEYS`] most recent is a retry and is not counted again. `Err` says
    /// when the window ends.
    pub fn take(&self, client: IpAddr, key: &str, cap: u64) -> Result<(), Duration> {
        use std::hash::{BuildHasher as _, Hasher as _};
        use std::sync::atomic::Ordering;
        let now = Instant::now();
        let window = self
            .windows
            .get_with(client_key(client, self.ipv6_prefix), || {
                Arc::new(KeyWindow {
                    opened: now,
                    used: std::sync::atomic::AtomicU64::new(0),
                    recent: std::sync::Mutex::default(),
                })
            });
        let hash = {
            let mut hasher = self.hasher.build_hasher();
            hasher.write(key.as_bytes());
            hasher.finish()
        };
        // The lock only orders this client's own requests; a poisoned one holds no invariant.
        let mut recent = window
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if recent.contains(&hash) {
            return Ok(());
        }
        let taken = window
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used < cap).then_some(used + 1)
            });
        match taken {
            Ok(_) => {
                if recent.len() == RECENT_KEYS {
                    recent.pop_front();
                }
                recent.push_back(hash);
                Ok(())
            }
            Err(_) => Err(self
                .window
                .saturating_sub(now.saturating_duration_since(window.opened))),
        }
    }
}

/// The client a request is from: the peer, or — when the peer is a trusted proxy (a load
/// balancer, `MAPLE_CORE_TRUSTED_PROXIES`) — the nearest untrusted address in
/// `X-Forwarded-For`. Set by [`observe`](super::middleware) for the access log, the guard and the handlers (rate
/// limits, the audit log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub std::net::IpAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    /// What the guard decided; without it (a router used without the guard), the peer.
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        if let Some(client) = parts.extensions.get::<Self>() {
            return Ok(*client);
        }
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |info| info.0.ip());
        Ok(Self(peer))
    }
}

pub(super) fn client_ip(
    trusted: &[std::net::IpAddr],
    peer: std::net::IpAddr,
    headers: &HeaderMap,
) -> std::net::IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    // Right to left: each trusted proxy appended the address it saw; the first address no
    // trusted proxy owns is the client. Anything unparsable ends the walk (left of it the
    // client could have written anything).
    for hop in hops.iter().rev() {
        match hop.trim().parse::<std::net::IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => {}
            Ok(ip) => return ip,
            Err(_) => break,
        }
    }
    peer
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
        let lb = ip("10.0.0.2");
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.7, 10.0.0.3"),
        );
        let trusted = [lb, ip("10.0.0.3")];
        // From the load balancer: the nearest address no trusted proxy owns.
        assert_eq!(client_ip(&trusted, lb, &headers), ip("203.0.113.7"));
        // From anyone else: the header is theirs to forge; the peer counts.
        assert_eq!(
            client_ip(&trusted, ip("198.51.100.1"), &headers),
            ip("198.51.100.1")
        );
        // Garbage ends the walk: the peer counts.
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, not-an-ip"),
        );
        assert_eq!(client_ip(&trusted, lb, &headers), lb);
    }

    #[test]
    fn an_ipv6_client_is_its_prefix() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let limits = ClientLimits::new(64);
        // Rotating inside a /64 is one client; the next /64 is another.
        assert_eq!(
            limits.key(ip("2001:db8:1:2:aaaa::1")),
            limits.key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        );
        assert_eq!(limits.key(ip("2001:db8:1:2::7")), ip("2001:db8:1:2::"));
        assert_ne!(
            limits.key(ip("2001:db8:1:2::1")),
            limits.key(ip("2001:db8:1:3::1"))
        );
        // IPv4, written either way, is the address itself.
        assert_eq!(limits.key(ip("::ffff:203.0.113.7")), ip("203.0.113.7"));
        assert_eq!(limits.key(ip("203.0.113.7")), ip("203.0.113.7"));
        // A /128 keeps every address apart.
        let exact = ClientLimits::new(128);
        assert_eq!(exact.key(ip("2001:db8::1")), ip("2001:db8::1"));

        // One bucket for the whole /64: the burst is shared.
        for i in 0..3 {
            let client = ip(&format!("2001:db8:1:2::{i:x}"));
            assert!(limits.take(client, 1.0, 3.0).is_ok(), "token {i}");
        }
        assert!(limits.take(ip("2001:db8:1:2::ffff"), 1.0, 3.0).is_err());
        assert!(limits.take(ip("2001:db8:1:3::1"), 1.0, 3.0).is_ok());
    }

    #[test]
    fn a_client_has_its_keys_for_a_window_shared_by_its_64() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let allowance = KeyAllowance::new(Duration::from_secs(60), 64);
        for key in ["a", "b"] {
            assert!(allowance.take(ip("2001:db8:1:2::1"), key, 2).is_ok());
        }
        let wait = allowance
            .take(ip("2001:db8:1:2::9"), "c", 2)
            .expect_err("cap reached");
        assert!(wait <= Duration::from_secs(60) && wait > Duration::from_secs(50));
        assert!(allowance.take(ip("203.0.113.1"), "c", 2).is_ok());
        // A retry with a key already counted is not charged again, even at the cap.
        assert!(allowance.take(ip("2001:db8:1:2::1"), "a", 2).is_ok());
        assert!(allowance.take(ip("2001:db8:1:2::5"), "b", 2).is_ok());
    }
}
