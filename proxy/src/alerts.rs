//! Alerts to a webhook (Discord-compatible JSON: `{"content": "…"}`) when the proxy has to fail
//! a request with nothing to fall back on, or the breaker opens.
//!
//! De-duplicated (one alert per cause per `dedupe_for`) and rate-limited (at most `per_minute`
//! alerts in all), so an outage produces a handful of messages, not one per request. Sending
//! never delays a response: it runs as a task of its own with a short timeout. Messages name
//! the cause and route, never a key or a query string.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::limits::{RateLimitConfig, TokenBucket};
use crate::metrics::{AlertResult, ProxyMetrics};

/// Alert settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertConfig {
    /// Where alerts go; none disables them. The URL carries the webhook's token.
    pub webhook: Option<maple_common::config::Secret>,
    /// One alert per cause within this window.
    pub dedupe_for: Duration,
    /// At most this many alerts per minute, all causes together.
    pub per_minute: u32,
}

impl Default for AlertConfig {
    fn default() -> Self {
        use crate::config::vars::*;
        Self {
            webhook: None,
            dedupe_for: Duration::from_secs(ALERT_DEDUPE_S.default_value()),
            per_minute: ALERT_PER_MINUTE.default_value(),
        }
    }
}

/// Sends alerts.
#[derive(Debug)]
pub struct Alerter {
    config: AlertConfig,
    client: reqwest::Client,
    last_sent: Mutex<HashMap<String, Instant>>,
    rate: TokenBucket,
    metrics: ProxyMetrics,
}

/// What the decision was, for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Send,
    Duplicate,
    OverRate,
    Disabled,
}

/// Longest a webhook call may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(3);

impl Alerter {
    /// # Errors
    /// When the webhook's HTTP client cannot be built (a start-up error: an alert client
    /// without its timeout would let a stuck webhook hold its tasks forever).
    pub fn new(config: AlertConfig, metrics: ProxyMetrics) -> Result<Self, reqwest::Error> {
        let per_minute = f64::from(config.per_minute.max(1));
        let rate = TokenBucket::new(
            RateLimitConfig {
                rps: per_minute / 60.0,
                burst: per_minute,
                max_wait: Duration::ZERO,
            },
            Instant::now(),
        );
        let client = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .no_proxy()
            .build()?;
        Ok(Self {
            config,
            client,
            last_sent: Mutex::new(HashMap::new()),
            rate,
            metrics,
        })
    }

    /// Whether an alert for `cause` goes out at `now` (and records it if so).
    pub fn decide(&self, cause: &str, now: Instant) -> Decision {
        if self.config.webhook.is_none() {
            return Decision::Disabled;
        }
        let mut last_sent = self
            .last_sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = last_sent.get(cause)
            && now.saturating_duration_since(*at) < self.config.dedupe_for
        {
            return Decision::Duplicate;
        }
        if self.rate.reserve(now).is_err() {
            return Decision::OverRate;
        }
        last_sent.insert(cause.to_owned(), now);
        Decision::Send
    }

    /// Raises an alert for `cause` on `route` unless it is a duplicate or over the rate.
    pub fn raise(&self, cause: &'static str, route: &'static str, detail: &str) {
        match self.decide(cause, Instant::now()) {
            Decision::Send => {}
            Decision::Disabled => return,
            Decision::Duplicate | Decision::OverRate => {
                self.metrics.alerts_total.inc(AlertResult::Suppressed);
                return;
            }
        }
        let Some(url) = self.config.webhook.as_ref().map(|w| w.expose().to_owned()) else {
            return;
        };
        let content = format!("maple-proxy: **{cause}** on `{route}`: {detail}");
        let body = serde_json::json!({ "content": content, "username": "maple-proxy" });
        let client = self.client.clone();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let result = client
                .post(url)
                .timeout(WEBHOOK_TIMEOUT)
                .json(&body)
                .send()
                .await;
            let ok = matches!(&result, Ok(response) if response.status().is_success());
            if !ok {
                tracing::warn!(cause, "alert webhook failed");
            }
            metrics.alerts_total.inc(if ok {
                AlertResult::Sent
            } else {
                AlertResult::Failed
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alerter(per_minute: u32) -> Alerter {
        Alerter::new(
            AlertConfig {
                webhook: Some(
                    maple_common::config::Secret::new("http://127.0.0.1:9/hook".into())
                        .expect("valid"),
                ),
                dedupe_for: Duration::from_secs(300),
                per_minute,
            },
            ProxyMetrics::new().expect("metrics"),
        )
        .expect("client")
    }

    #[test]
    fn one_alert_per_cause_per_window() {
        let alerter = alerter(100);
        let t0 = Instant::now();
        assert_eq!(alerter.decide("breaker_open", t0), Decision::Send);
        assert_eq!(alerter.decide("breaker_open", t0), Decision::Duplicate);
        assert_eq!(alerter.decide("upstream_timeout", t0), Decision::Send);
        let later = t0 + Duration::from_secs(301);
        assert_eq!(alerter.decide("breaker_open", later), Decision::Send);
    }

    #[test]
    fn alerts_are_rate_limited_across_causes() {
        let alerter = alerter(2);
        let t0 = Instant::now();
        assert_eq!(alerter.decide("a", t0), Decision::Send);
        assert_eq!(alerter.decide("b", t0), Decision::Send);
        assert_eq!(alerter.decide("c", t0), Decision::OverRate);
        // An over-rate cause is not marked sent: it may go out once the rate allows.
        assert_eq!(
            alerter.decide("c", t0 + Duration::from_secs(30)),
            Decision::Send
        );
    }

    #[test]
    fn no_webhook_no_alerts() {
        let alerter = Alerter::new(
            AlertConfig::default(),
            ProxyMetrics::new().expect("metrics"),
        )
        .expect("client");
        assert_eq!(alerter.decide("a", Instant::now()), Decision::Disabled);
    }
}
