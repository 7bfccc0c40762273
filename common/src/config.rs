//! Typed configuration from environment variables, read through a replaceable source.
//!
//! Rule: every variable is parsed and validated once, at start-up; a bad value is an error that
//! names the variable, and the binary exits with [`EXIT_CONFIG`] (64, `EX_USAGE`).

use std::collections::HashMap;
use std::fmt::{self, Display};
use std::str::FromStr;
use std::time::Duration;

/// Exit code for invalid configuration (`EX_USAGE` from sysexits.h).
pub const EXIT_CONFIG: i32 = 64;

/// Where variables come from: the process environment, or a map in tests.
#[derive(Debug, Clone, Default)]
pub struct Env {
    overrides: Option<HashMap<String, String>>,
    /// Values used when the variable itself is unset (a configuration file's, say).
    fallback: HashMap<String, String>,
}

/// A variable that is present but unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {value:?} for {var}: {reason}")]
pub struct ConfigError {
    pub var: String,
    pub value: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(var: &str, value: impl Into<String>, reason: impl Display) -> Self {
        Self {
            var: var.to_owned(),
            value: value.into(),
            reason: reason.to_string(),
        }
    }
}

impl Env {
    /// Reads the process environment.
    pub fn process() -> Self {
        Self {
            overrides: None,
            fallback: HashMap::new(),
        }
    }

    /// Reads only the given pairs (tests, embedded launch).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            overrides: Some(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
            fallback: HashMap::new(),
        }
    }

    /// Layers this source over `fallback`: a variable that is set wins, an unset one reads
    /// the fallback's value. This is how a configuration file sits under the environment.
    #[must_use]
    pub fn over(mut self, fallback: HashMap<String, String>) -> Self {
        self.fallback = fallback;
        self
    }

    /// The value of the variable itself, ignoring the fallback; empty counts as unset.
    pub fn get_direct(&self, var: &str) -> Option<String> {
        let value = match &self.overrides {
            Some(map) => map.get(var).cloned(),
            None => std::env::var(var).ok(),
        };
        value.filter(|v| !v.trim().is_empty())
    }

    /// The raw value (the variable, else the fallback); an empty string counts as unset.
    pub fn get(&self, var: &str) -> Option<String> {
        self.get_direct(var).or_else(|| {
            self.fallback
                .get(var)
                .filter(|v| !v.trim().is_empty())
                .cloned()
        })
    }

    /// The value or a default.
    pub fn string_or(&self, var: &str, default: &str) -> String {
        self.get(var).unwrap_or_else(|| default.to_owned())
    }

    /// Parses the value with `FromStr`, or returns `default` when unset.
    ///
    /// # Errors
    /// [`ConfigError`] naming `var` when the value does not parse.
    pub fn parse_or<T>(&self, var: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.get(var) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e| ConfigError::new(var, raw.clone(), e)),
        }
    }

    /// Parses like [`Self::parse_or`], then requires the value to lie within `range`.
    ///
    /// # Errors
    /// [`ConfigError`] naming `var` when the value does not parse or lies outside `range`.
    pub fn parse_within<T>(
        &self,
        var: &str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display,
        T::Err: Display,
    {
        let value = self.parse_or(var, default)?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::new(
                var,
                value.to_string(),
                format!("must be within {}..={}", range.start(), range.end()),
            ))
        }
    }

    /// A duration given in whole milliseconds, which must be positive.
    ///
    /// # Errors
    /// [`ConfigError`] when the value is not a positive integer.
    pub fn millis_or(&self, var: &str, default: Duration) -> Result<Duration, ConfigError> {
        let millis: u64 = self.parse_or(var, u64::try_from(default.as_millis()).unwrap_or(0))?;
        if millis == 0 {
            return Err(ConfigError::new(var, "0", "must be greater than zero"));
        }
        Ok(Duration::from_millis(millis))
    }
}

/// A secret (the Nexon API key, a token). Its `Debug` is redacted so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// # Errors
    /// When the key has characters a header value cannot carry.
    pub fn new(key: String) -> Result<Self, &'static str> {
        if key.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(key))
        } else {
            Err("the key must be printable ASCII without spaces")
        }
    }

    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares with `candidate` in time independent of where they differ.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        crate::contract::constant_time_eq(self.0.as_bytes(), candidate)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A URL (database, Redis, …) with any password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    #[test]
    fn defaults_apply_when_unset_or_blank() {
        let env = Env::from_pairs([("BLANK", "  ")]);
        assert_eq!(env.string_or("MISSING", "x"), "x");
        assert_eq!(env.parse_or("BLANK", 7_u32), Ok(7));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let env = Env::from_pairs([("MAPLE_LISTEN", "not-an-address"), ("MAPLE_T_MS", "0")]);
        let err = env
            .parse_or::<SocketAddr>("MAPLE_LISTEN", ([127, 0, 0, 1], 1).into())
            .expect_err("must fail");
        assert_eq!(err.var, "MAPLE_LISTEN");
        assert!(err.to_string().contains("MAPLE_LISTEN"), "{err}");
        let err = env
            .millis_or("MAPLE_T_MS", Duration::from_secs(1))
            .expect_err("zero is rejected");
        assert_eq!(err.var, "MAPLE_T_MS");
    }

    #[test]
    fn ranges_are_enforced() {
        let env = Env::from_pairs([("N", "7"), ("BIG", "1001")]);
        assert_eq!(env.parse_within("N", 1_u32, 1..=10), Ok(7));
        assert_eq!(env.parse_within("UNSET", 3_u32, 1..=10), Ok(3));
        let err = env
            .parse_within("BIG", 1_u32, 1..=1000)
            .expect_err("out of range");
        assert_eq!(err.var, "BIG");
        assert!(err.reason.contains("1..=1000"), "{err}");
    }

    #[test]
    fn variables_win_over_the_fallback() {
        let env = Env::from_pairs([("A", "env")]).over(HashMap::from([
            ("A".to_owned(), "file".to_owned()),
            ("B".to_owned(), "file".to_owned()),
        ]));
        assert_eq!(env.get("A").as_deref(), Some("env"));
        assert_eq!(env.get("B").as_deref(), Some("file"));
        assert_eq!(env.get_direct("B"), None);
    }

    #[test]
    fn millis_parse() {
        let env = Env::from_pairs([("T", "250")]);
        assert_eq!(
            env.millis_or("T", Duration::from_secs(1)),
            Ok(Duration::from_millis(250))
        );
    }
}
