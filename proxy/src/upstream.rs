//! Calls to the Nexon API: one fetch is a loop of attempts, each admitted in turn by the rate
//! limiter (the key's quota), the bulkhead (concurrent calls) and the circuit breaker, and the
//! whole loop bounded by the request's deadline.
//!
//! Retries: idempotent GETs only (nothing else reaches here), on connection failures, 5xx and
//! 429; the pause is `Retry-After` when the upstream gave one, otherwise exponential backoff with
//! full jitter; each retry is paid from the retry budget; no retry starts if its pause would end
//! past the deadline. A fetch answers a [`Fetched`]: a 200 to cache, another answer from Nexon to
//! pass on (its 4xx), or the [`Failure`] that ended it.
//!
//! Encoding: every call asks for gzip. A gzip answer is inflated once (bounded by the body
//! limit, on the blocking pool) and a 200 keeps Nexon's own gzip bytes as the form gzip
//! clients get; an identity 200 is compressed once here instead. A coding we did not ask for,
//! or gzip that does not inflate, is a broken answer ([`Failure::Protocol`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use maple_common::breaker::{Breaker, Outcome, Permit, Transition};
use maple_common::config::Secret;
use maple_common::encoding::{Coding, InflateError};
use maple_common::nexon::API_KEY_HEADER;
use tokio::sync::Semaphore;

use crate::alerts::Alerter;
use crate::cache::{GZIP_MIN_BYTES, Stored};
use crate::limits::{BulkheadConfig, RateLimitConfig, RetryBudget, RetryConfig, TokenBucket};
use crate::metrics::{BodyCoding, ProxyMetrics, RetryDenied};
use crate::routes::{Route, RouteTable};

/// What a [`Fetcher`] needs to know: its own settings, not the whole proxy's.
#[derive(Debug, Clone)]
pub struct FetcherConfig {
    /// Scheme, host and port of the upstream, without a trailing slash.
    pub base: String,
    pub api_key: Secret,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Largest upstream body accepted.
    pub max_body_bytes: usize,
    pub retry: RetryConfig,
    pub rate_limit: RateLimitConfig,
    pub bulkhead: BulkheadConfig,
    /// The cache TTL each route's 200s are stored with.
    pub routes: RouteTable,
}

/// Why a fetch produced no usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The deadline passed, or a read timed out.
    Timeout,
    /// No connection, or it closed before a response.
    Unreachable,
    /// The response broke off mid-body.
    Protocol,
    /// Nexon kept answering 5xx.
    Status(u16),
    /// Nexon kept answering 429.
    UpstreamRateLimited { retry_after: Option<Duration> },
    /// Our own limiter, sized to the key's quota, had no token in time.
    Throttled { retry_after: Duration },
    /// The breaker is open.
    BreakerOpen { retry_after: Duration },
    /// The bulkhead stayed full.
    Overloaded,
    /// The body exceeded the configured bound.
    TooLarge,
}

impl Failure {
    /// Every code [`Failure::code`] gives (the metrics start each at zero).
    pub const CODES: [&'static str; 9] = [
        "upstream_timeout",
        "upstream_unreachable",
        "upstream_protocol_error",
        "upstream_error",
        "upstream_rate_limited",
        "rate_limited",
        "breaker_open",
        "overloaded",
        "upstream_response_too_large",
    ];

    /// The error code clients see (and the alert cause).
    pub fn code(self) -> &'static str {
        match self {
            Self::Timeout => "upstream_timeout",
            Self::Unreachable => "upstream_unreachable",
            Self::Protocol => "upstream_protocol_error",
            Self::Status(_) => "upstream_error",
            Self::UpstreamRateLimited { .. } => "upstream_rate_limited",
            Self::Throttled { .. } => "rate_limited",
            Self::BreakerOpen { .. } => "breaker_open",
            Self::Overloaded => "overloaded",
            Self::TooLarge => "upstream_response_too_large",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Self::UpstreamRateLimited { .. } | Self::Throttled { .. } => 429,
            Self::TooLarge => 502,
            _ => 503,
        }
    }

    pub fn retry_after(self) -> Option<Duration> {
        match self {
            Self::UpstreamRateLimited { retry_after } => retry_after.or(Some(Duration::ZERO)),
            Self::Throttled { retry_after } | Self::BreakerOpen { retry_after } => {
                Some(retry_after)
            }
            _ => None,
        }
    }

    pub fn message(self) -> String {
        match self {
            Self::Timeout => "the Nexon API did not answer in time".into(),
            Self::Unreachable => "the Nexon API could not be reached".into(),
            Self::Protocol => "the Nexon API connection failed mid-response".into(),
            Self::Status(status) => format!("the Nexon API kept failing (HTTP {status})"),
            Self::UpstreamRateLimited { .. } => "the Nexon API is rate-limiting this key".into(),
            Self::Throttled { .. } => {
                "the proxy's upstream rate limit (the API key's quota) is reached".into()
            }
            Self::BreakerOpen { .. } => {
                "the Nexon API is failing; calls are paused while it recovers".into()
            }
            Self::Overloaded => "too many upstream calls are in progress".into(),
            Self::TooLarge => "the Nexon API response exceeded the size limit".into(),
        }
    }

    /// Whether it is a fault of the upstream (alert-worthy), rather than our own admission.
    pub fn is_upstream_fault(self) -> bool {
        !matches!(self, Self::Throttled { .. } | Self::Overloaded)
    }
}

/// A non-200 answer from Nexon that is not a failure (its 4xx): passed on as it is; cached only
/// when it says the character does not exist (see `service`).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// What a fetch produced.
#[derive(Debug, Clone)]
pub enum Fetched {
    Ok(Arc<Stored>),
    Answer(Arc<Answer>),
    Failed(Failure),
}

/// One attempt's result.
enum Step {
    Done(Fetched),
    Failed { failure: Failure, retryable: bool },
}

/// Gives a breaker permit back if the attempt is dropped before recording an outcome.
struct BreakerCall<'a> {
    fetcher: &'a Fetcher,
    permit: Option<Permit>,
    started: Instant,
}

impl BreakerCall<'_> {
    fn record(mut self, outcome: Outcome) {
        if let Some(permit) = self.permit.take() {
            let transition = self.fetcher.breaker.record(
                permit,
                outcome,
                self.started.elapsed(),
                Instant::now(),
            );
            self.fetcher.observe(transition);
        }
    }
}

impl Drop for BreakerCall<'_> {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.fetcher.breaker.release(permit);
        }
    }
}

/// An attempt needs at least this much of its deadline left to be made at all.
const MIN_ATTEMPT_TIME: Duration = Duration::from_millis(20);

/// Counts an upstream call in progress for as long as it lives, however the call ends.
struct InFlight<'a>(&'a prometheus::IntGauge);

impl<'a> InFlight<'a> {
    fn new(gauge: &'a prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Raw result of one HTTP exchange.
struct Exchange {
    status: u16,
    content_type: Option<String>,
    retry_after: Option<Duration>,
    /// The identity body, and the gzip bytes it came as (when Nexon sent gzip).
    body: Result<(Bytes, Option<Bytes>), BodyError>,
}

enum BodyError {
    TooLarge,
    Broken,
    Timeout,
}

/// Talks to the upstream.
#[derive(Debug)]
pub struct Fetcher {
    client: reqwest::Client,
    base: String,
    config: FetcherConfig,
    breaker: Arc<Breaker>,
    bucket: TokenBucket,
    budget: RetryBudget,
    bulkhead: Semaphore,
    metrics: ProxyMetrics,
    alerter: Arc<Alerter>,
}

impl Fetcher {
    /// # Errors
    /// When the HTTP client cannot be built (TLS roots unavailable).
    pub fn new(
        config: FetcherConfig,
        breaker: Arc<Breaker>,
        metrics: ProxyMetrics,
        alerter: Arc<Alerter>,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .pool_max_idle_per_host(config.bulkhead.max_concurrent)
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("maple-proxy/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .build()?;
        let now = Instant::now();
        Ok(Self {
            client,
            base: config.base.clone(),
            breaker,
            bucket: TokenBucket::new(config.rate_limit, now),
            budget: RetryBudget::new(&config.retry, now),
            bulkhead: Semaphore::new(config.bulkhead.max_concurrent),
            metrics,
            alerter,
            config,
        })
    }

    fn retry(&self) -> &RetryConfig {
        &self.config.retry
    }

    /// Logs and counts a breaker transition; an opening raises an alert.
    pub fn observe(&self, transition: Option<Transition>) {
        let Some(Transition { from, to }) = transition else {
            return;
        };
        tracing::warn!(
            from = from.as_str(),
            to = to.as_str(),
            "circuit breaker transition"
        );
        self.metrics
            .breaker_transitions_total
            .with_label_values(&[from.as_str(), to.as_str()])
            .inc();
        self.metrics.breaker_state.set(to.gauge());
        if to == maple_common::breaker::State::Open {
            self.alerter.raise(
                "breaker_opened",
                "upstream",
                &format!("circuit breaker {} -> open", from.as_str()),
            );
        }
    }

    /// Fetches `target` (path and canonical query) for `route`, retrying within `deadline`;
    /// `attempts` counts the requests actually sent upstream (for the access log).
    pub async fn fetch(
        &self,
        route: Route,
        target: &str,
        deadline: Instant,
        attempts: &AtomicU32,
    ) -> Fetched {
        self.budget.deposit(Instant::now());
        let mut attempt = 1;
        loop {
            let failure = match self.attempt(route, target, deadline, attempts).await {
                Step::Done(Fetched::Ok(stored)) if stored.gzip.is_none() => {
                    return Fetched::Ok(compressed(stored).await);
                }
                Step::Done(fetched) => return fetched,
                Step::Failed {
                    failure,
                    retryable: false,
                } => return Fetched::Failed(failure),
                Step::Failed { failure, .. } => failure,
            };
            if attempt >= self.retry().max_attempts {
                return Fetched::Failed(failure);
            }
            let pause = match failure {
                Failure::UpstreamRateLimited {
                    retry_after: Some(after),
                } => after,
                _ => self.retry().backoff(attempt, rand::random::<f64>()),
            };
            let now = Instant::now();
            if now.checked_add(pause).is_none_or(|end| end >= deadline) {
                self.metrics.retries_denied_total.inc(RetryDenied::Deadline);
                return Fetched::Failed(failure);
            }
            if !self.budget.withdraw(now) {
                self.metrics.retries_denied_total.inc(RetryDenied::Budget);
                return Fetched::Failed(failure);
            }
            self.metrics
                .retries_total
                .with_label_values(&[route.label(), failure.code()])
                .inc();
            tracing::debug!(
                route = route.label(),
                attempt,
                reason = failure.code(),
                ?pause,
                "retrying"
            );
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }

    async fn attempt(
        &self,
        route: Route,
        target: &str,
        deadline: Instant,
        attempts: &AtomicU32,
    ) -> Step {
        let not_retryable = |failure| Step::Failed {
            failure,
            retryable: false,
        };
        let now = Instant::now();
        // An attempt with almost no time left would time out for certain and be counted
        // against a healthy upstream: it is not made.
        if deadline.saturating_duration_since(now) < MIN_ATTEMPT_TIME {
            return not_retryable(Failure::Timeout);
        }
        let left = deadline.saturating_duration_since(now) - MIN_ATTEMPT_TIME;
        match self.bucket.reserve_within(now, left) {
            Ok(wait) if wait.is_zero() => {}
            Ok(wait) => {
                self.metrics.ratelimit_waits_total.inc();
                tokio::time::sleep(wait).await;
            }
            Err(retry_after) => {
                self.metrics.ratelimit_rejections_total.inc();
                return not_retryable(Failure::Throttled { retry_after });
            }
        }
        let queue_for = self
            .config
            .bulkhead
            .max_wait
            .min(deadline.saturating_duration_since(Instant::now()));
        let Ok(Ok(_slot)) = tokio::time::timeout(queue_for, self.bulkhead.acquire()).await else {
            self.metrics.bulkhead_rejections_total.inc();
            return not_retryable(Failure::Overloaded);
        };
        let call = match self.breaker.acquire(Instant::now()) {
            Ok((permit, transition)) => {
                self.observe(transition);
                BreakerCall {
                    fetcher: self,
                    permit: Some(permit),
                    started: Instant::now(),
                }
            }
            Err(rejected) => {
                self.metrics.breaker_rejections_total.inc();
                return not_retryable(Failure::BreakerOpen {
                    retry_after: rejected.retry_after,
                });
            }
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        attempts.fetch_add(1, Ordering::Relaxed);
        let in_flight = InFlight::new(&self.metrics.bulkhead_in_flight);
        let exchange = tokio::time::timeout(remaining, self.exchange(target)).await;
        drop(in_flight);
        self.metrics
            .upstream_duration_seconds
            .with_label_values(&[route.label()])
            .observe(call.started.elapsed().as_secs_f64());

        let exchange_was_cut = exchange.is_err();
        let ttl = self.config.routes.policy(route).ttl;
        let (outcome_label, step, breaker_outcome) = classify(exchange, ttl);
        self.metrics
            .upstream_requests_total
            .with_label_values(&[route.label(), outcome_label])
            .inc();
        match breaker_outcome {
            // Our own deadline left the call too little time to say anything about Nexon.
            Some(Outcome::Failure)
                if exchange_was_cut && remaining < self.config.connect_timeout =>
            {
                drop(call);
            }
            Some(outcome) => call.record(outcome),
            None => drop(call),
        }
        step
    }

    #[tracing::instrument(level = "info", name = "upstream.attempt", skip_all)]
    async fn exchange(&self, target: &str) -> Result<Exchange, reqwest::Error> {
        let mut key = http::HeaderValue::from_str(self.config.api_key.expose())
            .unwrap_or_else(|_| http::HeaderValue::from_static(""));
        key.set_sensitive(true);
        let mut trace = http::HeaderMap::new();
        maple_common::telemetry::inject(&tracing::Span::current(), &mut trace);
        let response = self
            .client
            .get(format!("{}{target}", self.base))
            .headers(trace)
            .header(API_KEY_HEADER, key)
            .header(http::header::ACCEPT_ENCODING, "gzip")
            .send()
            .await?;
        let status = response.status().as_u16();
        let header = |name: http::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header(http::header::CONTENT_TYPE);
        // Seconds (capped at an hour); an HTTP-date is read as "now or later" by falling back
        // to the backoff.
        let retry_after = header(http::header::RETRY_AFTER)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(3600)));
        let coding = maple_common::encoding::content_coding(response.headers());
        let limit = self.config.max_body_bytes;
        let received = |coding, body: &Bytes| {
            let bytes = u64::try_from(body.len()).unwrap_or(u64::MAX);
            self.metrics.upstream_body_bytes_total.inc_by(coding, bytes);
        };
        // Only a 200 and a 4xx passed on need their body: a 5xx's or a 429's is not read
        // into anything, so it is not decoded either.
        let needed = status != 429 && status < 500;
        let body = match (coding, read_body(response, limit).await) {
            (_, Err(e)) => Err(e),
            (coding, Ok(body)) if !needed || body.is_empty() => {
                let gzip = matches!(coding, Ok(Coding::Gzip));
                received(
                    if gzip {
                        BodyCoding::Gzip
                    } else {
                        BodyCoding::Identity
                    },
                    &body,
                );
                Ok((body, None))
            }
            (Ok(Coding::Identity), Ok(body)) => {
                received(BodyCoding::Identity, &body);
                Ok((body, None))
            }
            (Ok(Coding::Gzip), Ok(gzip)) => {
                received(BodyCoding::Gzip, &gzip);
                inflated(gzip, limit).await
            }
            (Err(unsupported), Ok(_)) => {
                tracing::warn!(%unsupported, "upstream answered in a coding it was not asked for");
                Err(BodyError::Broken)
            }
        };
        Ok(Exchange {
            status,
            content_type,
            retry_after,
            body,
        })
    }
}

async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<Bytes, BodyError> {
    let hint = response
        .content_length()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(64 * 1024);
    if hint > limit {
        return Err(BodyError::TooLarge);
    }
    // Trust the advertised length only so far: the buffer grows as bytes actually arrive.
    let mut body = BytesMut::with_capacity(hint.min(1 << 20));
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(BodyError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body.freeze()),
            Err(e) if e.is_timeout() => return Err(BodyError::Timeout),
            Err(_) => return Err(BodyError::Broken),
        }
    }
}

/// `gzip` inflated on the blocking pool, bounded by `limit` (a gzip bomb is too large, not
/// an allocation), with the gzip bytes kept beside it.
async fn inflated(gzip: Bytes, limit: usize) -> Result<(Bytes, Option<Bytes>), BodyError> {
    let packed = gzip.clone();
    let inflated =
        tokio::task::spawn_blocking(move || maple_common::encoding::gunzip(&packed, limit)).await;
    match inflated {
        Ok(Ok(body)) => Ok((Bytes::from(body), Some(gzip))),
        Ok(Err(InflateError::TooLarge(_))) => Err(BodyError::TooLarge),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "upstream sent gzip that does not inflate");
            Err(BodyError::Broken)
        }
        Err(_) => Err(BodyError::Broken),
    }
}

/// `stored` with its gzip form, compressed on the blocking pool (milliseconds of CPU for an
/// equipment body, once per fetch). Should that task fail, the identity body alone is kept.
async fn compressed(stored: Arc<Stored>) -> Arc<Stored> {
    let plain = Arc::clone(&stored);
    match tokio::task::spawn_blocking(move || Arc::unwrap_or_clone(plain).with_gzip()).await {
        Ok(with_gzip) => Arc::new(with_gzip),
        Err(_) => stored,
    }
}

/// Turns one exchange into (metric outcome, step, breaker outcome). `None` for the breaker
/// means the attempt said nothing about the upstream's health.
fn classify(
    exchange: Result<Result<Exchange, reqwest::Error>, tokio::time::error::Elapsed>,
    ttl: Duration,
) -> (&'static str, Step, Option<Outcome>) {
    let failed = |failure, retryable| Step::Failed { failure, retryable };
    let exchange = match exchange {
        Err(_) => {
            return (
                "timeout",
                failed(Failure::Timeout, false),
                Some(Outcome::Failure),
            );
        }
        Ok(Err(e)) if e.is_timeout() => {
            return (
                "timeout",
                failed(Failure::Timeout, false),
                Some(Outcome::Failure),
            );
        }
        // Connection refused or reset before any response: the request was not processed, a
        // retry is safe.
        Ok(Err(_)) => {
            return (
                "unreachable",
                failed(Failure::Unreachable, true),
                Some(Outcome::Failure),
            );
        }
        Ok(Ok(exchange)) => exchange,
    };
    let status = exchange.status;
    if status == 429 {
        let failure = Failure::UpstreamRateLimited {
            retry_after: exchange.retry_after,
        };
        return ("429", failed(failure, true), Some(Outcome::Failure));
    }
    if status >= 500 {
        return (
            "5xx",
            failed(Failure::Status(status), true),
            Some(Outcome::Failure),
        );
    }
    let (body, gzip) = match exchange.body {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            return (
                "too_large",
                failed(Failure::TooLarge, false),
                Some(Outcome::Success),
            );
        }
        Err(BodyError::Timeout) => {
            return (
                "timeout",
                failed(Failure::Timeout, false),
                Some(Outcome::Failure),
            );
        }
        Err(BodyError::Broken) => {
            return (
                "protocol",
                failed(Failure::Protocol, false),
                Some(Outcome::Failure),
            );
        }
    };
    if status == 200 {
        let stored = Stored {
            status: 200,
            content_type: exchange.content_type,
            // Nexon's gzip serves gzip clients as it is; a short body goes out identity.
            gzip: gzip.filter(|_| body.len() >= GZIP_MIN_BYTES),
            body,
            fetched_at: Instant::now(),
            ttl,
        };
        return (
            "2xx",
            Step::Done(Fetched::Ok(Arc::new(stored))),
            Some(Outcome::Success),
        );
    }
    let label = match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        _ => "4xx",
    };
    let answer = Answer {
        status,
        content_type: exchange.content_type,
        body,
    };
    (
        label,
        Step::Done(Fetched::Answer(Arc::new(answer))),
        Some(Outcome::Success),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The metrics start every code at zero: the list holds each one `code` gives.
    #[test]
    fn every_failure_code_is_listed() {
        let every = [
            Failure::Timeout,
            Failure::Unreachable,
            Failure::Protocol,
            Failure::Status(500),
            Failure::UpstreamRateLimited { retry_after: None },
            Failure::Throttled {
                retry_after: Duration::ZERO,
            },
            Failure::BreakerOpen {
                retry_after: Duration::ZERO,
            },
            Failure::Overloaded,
            Failure::TooLarge,
        ];
        let codes: Vec<&str> = every.iter().map(|f| f.code()).collect();
        assert_eq!(codes, Failure::CODES);
    }
}
