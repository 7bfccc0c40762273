//! The optional YAML file (`MAPLE_PROXY_CONFIG`): flattened into the variables' names and
//! layered under the environment, so one validation path serves both, and an unknown key is an
//! error, not a silent no-op.

use std::collections::HashMap;

/// Every key the configuration file may hold.
pub const FILE_KEYS: &[&str] = &[
    "listen",
    "admin_listen",
    "upstream",
    "api_key_file",
    "connect_timeout_ms",
    "read_timeout_ms",
    "threads",
    "grace_period_s",
    "max_body_bytes",
    "client_tokens",
    "admin_token",
    "breaker.window",
    "breaker.min_calls",
    "breaker.failure_rate_pct",
    "breaker.open_ms",
    "breaker.probes",
    "breaker.slow_call_ms",
    "cache.max_bytes",
    "cache.stale_s",
    "cache.revalidate_s",
    "cache.not_found_s",
    "retry.max_attempts",
    "retry.base_ms",
    "retry.max_backoff_ms",
    "retry.budget_pct",
    "retry.min_per_s",
    "ratelimit.rps",
    "ratelimit.burst",
    "ratelimit.max_wait_ms",
    "bulkhead.max_concurrent",
    "bulkhead.max_wait_ms",
    "alert.webhook_url",
    "alert.dedupe_s",
    "alert.per_minute",
    "routes.id.ttl_s",
    "routes.id.deadline_ms",
    "routes.basic.ttl_s",
    "routes.basic.deadline_ms",
    "routes.item_equipment.ttl_s",
    "routes.item_equipment.deadline_ms",
    "routes.other.ttl_s",
    "routes.other.deadline_ms",
];

/// The variable that overrides a file key: `breaker.window` → `MAPLE_PROXY_BREAKER_WINDOW`.
pub fn env_var(key: &str) -> String {
    format!("MAPLE_PROXY_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// Flattens the YAML file into variable names: nested maps join their keys with dots, lists
/// become comma-separated values. Unknown keys are errors.
///
/// # Errors
/// A message naming the problem (syntax, an unknown key, a value of the wrong shape).
pub fn parse_file(text: &str) -> Result<HashMap<String, String>, String> {
    fn flatten(
        prefix: &str,
        value: &serde_yaml::Value,
        out: &mut HashMap<String, String>,
    ) -> Result<(), String> {
        use serde_yaml::Value;
        let scalar = |value: &Value| -> Option<String> {
            match value {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            }
        };
        match value {
            Value::Null => Ok(()),
            Value::Mapping(map) => {
                for (key, value) in map {
                    let Some(key) = key.as_str() else {
                        return Err(format!("a key under {prefix:?} is not a string"));
                    };
                    let path = if prefix.is_empty() {
                        key.to_owned()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    flatten(&path, value, out)?;
                }
                Ok(())
            }
            Value::Sequence(items) => {
                let items: Option<Vec<String>> = items.iter().map(scalar).collect();
                let items =
                    items.ok_or_else(|| format!("{prefix}: list items must be plain values"))?;
                insert(prefix, items.join(","), out)
            }
            other => {
                let text = scalar(other).ok_or_else(|| format!("{prefix}: unsupported value"))?;
                insert(prefix, text, out)
            }
        }
    }
    fn insert(key: &str, value: String, out: &mut HashMap<String, String>) -> Result<(), String> {
        if !FILE_KEYS.contains(&key) {
            return Err(format!("unknown key {key:?}"));
        }
        out.insert(env_var(key), value);
        Ok(())
    }
    let document: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let mut out = HashMap::new();
    flatten("", &document, &mut out)?;
    Ok(out)
}
