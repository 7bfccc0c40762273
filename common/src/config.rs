//! Typed configuration from environment variables, read through a replaceable source.
//!
//! Rule: every variable is parsed and validated once, at start-up; a bad value is an error that
//! names the variable, and the binary exits with [`EXIT_CONFIG`] (64, `EX_USAGE`). Every bad
//! value is reported at once: the readers ([`Env::parse_or`] and its kin) note a bad value and
//! go on with the default, and [`Env::settle`] turns what was noted into [`ConfigErrors`].

use std::collections::HashMap;
use std::fmt::{self, Display};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Exit code for invalid configuration (`EX_USAGE` from sysexits.h).
pub const EXIT_CONFIG: i32 = 64;

/// Where variables come from: the process environment, or a map in tests.
#[derive(Debug, Clone, Default)]
pub struct Env {
    overrides: Option<HashMap<String, String>>,
    /// Values used when the variable itself is unset (a configuration file's, say).
    fallback: HashMap<String, String>,
    /// The bad values read so far, in the order they were read (clones share them).
    problems: Arc<Mutex<Vec<ConfigError>>>,
    /// Each declared setting read so far and its value as the dump shows it
    /// (`crate::setting`).
    pub(crate) effective: Arc<Mutex<Vec<(String, String)>>>,
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

/// Every bad value of one start-up, in the order they were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [one] => Display::fmt(one, f),
            all => {
                write!(f, "{} invalid settings:", all.len())?;
                for error in all {
                    write!(f, "\n  {error}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigErrors {}

impl Env {
    /// Reads the process environment.
    pub fn process() -> Self {
        Self {
            overrides: None,
            fallback: HashMap::new(),
            problems: Arc::default(),
            effective: Arc::default(),
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
            problems: Arc::default(),
            effective: Arc::default(),
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

    /// Whether a bad value has been noted since the last [`Self::settle`].
    pub fn noted(&self) -> bool {
        !self
            .problems
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    /// Notes a bad value; [`Self::settle`] reports it with the others.
    pub fn reject(&self, error: ConfigError) {
        self.problems
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(error);
    }

    /// `result` with every bad value noted so far: `Ok` only when there was none and `result`
    /// is `Ok` (its error, if any, is the last one reported).
    ///
    /// # Errors
    /// [`ConfigErrors`]: every bad value, each variable once, in the order they were read.
    pub fn settle<T>(&self, result: Result<T, ConfigError>) -> Result<T, ConfigErrors> {
        let mut problems =
            std::mem::take(&mut *self.problems.lock().unwrap_or_else(PoisonError::into_inner));
        if let Err(error) = &result {
            problems.push(error.clone());
        }
        let mut seen = std::collections::HashSet::new();
        problems.retain(|problem| seen.insert(problem.var.clone()));
        match result {
            Ok(value) if problems.is_empty() => Ok(value),
            _ => Err(ConfigErrors(problems)),
        }
    }

    /// Parses the value with `FromStr`, or returns `default` when unset. A value that does not
    /// parse is noted ([`Self::reject`]) and `default` is returned.
    pub fn parse_or<T>(&self, var: &str, default: T) -> T
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.get(var) {
            None => default,
            Some(raw) => raw.trim().parse().unwrap_or_else(|e| {
                self.reject(ConfigError::new(var, raw.clone(), e));
                default
            }),
        }
    }

    /// Parses like [`Self::parse_or`], then requires the value to lie within `range`; one
    /// outside it is noted and `default` returned.
    pub fn parse_within<T>(&self, var: &str, default: T, range: std::ops::RangeInclusive<T>) -> T
    where
        T: FromStr + PartialOrd + Display + Clone,
        T::Err: Display,
    {
        let value = self.parse_or(var, default.clone());
        if range.contains(&value) {
            value
        } else {
            self.reject(ConfigError::new(
                var,
                value.to_string(),
                format!("must be within {}..={}", range.start(), range.end()),
            ));
            default
        }
    }

    /// A duration given in whole milliseconds, which must be positive; zero is noted and
    /// `default` returned.
    pub fn millis_or(&self, var: &str, default: Duration) -> Duration {
        let millis: u64 = self.parse_or(var, u64::try_from(default.as_millis()).unwrap_or(0));
        if millis == 0 {
            self.reject(ConfigError::new(var, "0", "must be greater than zero"));
            return default;
        }
        Duration::from_millis(millis)
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
        assert_eq!(env.parse_or("BLANK", 7_u32), 7);
        assert_eq!(env.settle(Ok(())), Ok(()));
    }

    #[test]
    fn every_bad_value_is_reported_at_once_naming_its_variable() {
        let env = Env::from_pairs([
            ("MAPLE_LISTEN", "not-an-address"),
            ("MAPLE_T_MS", "0"),
            ("MAPLE_OK", "3"),
        ]);
        let fallback: SocketAddr = ([127, 0, 0, 1], 1).into();
        assert_eq!(env.parse_or("MAPLE_LISTEN", fallback), fallback);
        assert_eq!(
            env.millis_or("MAPLE_T_MS", Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        assert_eq!(env.parse_or("MAPLE_OK", 0_u32), 3);
        let late = ConfigError::new("MAPLE_LATE", "x", "a check across settings");
        let errors = env.settle::<()>(Err(late)).expect_err("three bad values");
        let vars: Vec<&str> = errors.0.iter().map(|e| e.var.as_str()).collect();
        assert_eq!(vars, ["MAPLE_LISTEN", "MAPLE_T_MS", "MAPLE_LATE"]);
        let text = errors.to_string();
        assert!(text.starts_with("3 invalid settings:"), "{text}");
        assert!(text.contains("MAPLE_LISTEN") && text.contains("must be greater than zero"));
        // Settled: what was noted is reported once.
        assert_eq!(env.settle(Ok(())), Ok(()));
    }

    #[test]
    fn ranges_are_enforced() {
        let env = Env::from_pairs([("N", "7"), ("BIG", "1001")]);
        assert_eq!(env.parse_within("N", 1_u32, 1..=10), 7);
        assert_eq!(env.parse_within("UNSET", 3_u32, 1..=10), 3);
        assert_eq!(env.parse_within("BIG", 1_u32, 1..=1000), 1);
        let errors = env.settle(Ok(())).expect_err("out of range");
        assert_eq!(errors.0.len(), 1);
        assert_eq!(errors.0[0].var, "BIG");
        assert!(errors.0[0].reason.contains("1..=1000"), "{errors}");
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
            Duration::from_millis(250)
        );
    }
}
