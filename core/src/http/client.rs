//! Who a request is from ([`ClientIp`], believing `X-Forwarded-For` only from trusted proxies)
//! and each client's token bucket ([`ClientLimits`]) for the per-client rates.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use maple_common::rate::TokenBucket;

/// Per-client token buckets, keyed by the client's address.
pub type ClientLimits = moka::sync::Cache<IpAddr, Arc<TokenBucket>>;

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

/// Takes a token from `client`'s bucket in `buckets` (made at `rate` per second with `burst`
/// on first use); `Err` says when one will be free.
pub(super) fn take_token(
    buckets: &ClientLimits,
    client: std::net::IpAddr,
    rate: f64,
    burst: f64,
) -> Result<(), Duration> {
    let now = Instant::now();
    let bucket = buckets.get_with(client, || {
        Arc::new(maple_common::rate::TokenBucket::new(
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
}
