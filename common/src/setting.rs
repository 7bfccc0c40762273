//! Settings declared once: a variable's name, default, bounds and what it does, in one `const`.
//! The loaders read through it ([`Env::setting`] and its kin), the configuration doc's tables
//! are rendered from it ([`table`]; a test holds the doc to them), and what was read is kept
//! for the configuration dump ([`Env::effective`]), secrets shown only as set or unset.
//!
//! Defaults and bounds are written as the variable would be: one text is what the doc shows
//! and what the loader parses (a test parses every one, `check`).

use std::fmt::Display;
use std::marker::PhantomData;
use std::str::FromStr;
use std::sync::PoisonError;

use crate::config::{ConfigError, Env, redact_url};

/// How a value may be shown in the configuration dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// As it is.
    Plain,
    /// Only whether it is set.
    Secret,
    /// With any password replaced.
    Url,
}

/// A setting with a default.
#[derive(Debug)]
pub struct Setting<T> {
    pub var: &'static str,
    /// The default, as the variable would be written.
    pub default: &'static str,
    /// Inclusive bounds, as written.
    pub min: Option<&'static str>,
    pub max: Option<&'static str>,
    /// What the doc adds after the default (`64 MiB`).
    pub gloss: &'static str,
    pub doc: &'static str,
    pub shown: Shown,
    value: PhantomData<fn() -> T>,
}

impl<T> Setting<T> {
    pub const fn new(var: &'static str, default: &'static str, doc: &'static str) -> Self {
        Self {
            var,
            default,
            min: None,
            max: None,
            gloss: "",
            doc,
            shown: Shown::Plain,
            value: PhantomData,
        }
    }

    /// Values outside `min..=max` are refused.
    #[must_use]
    pub const fn within(mut self, min: &'static str, max: &'static str) -> Self {
        self.min = Some(min);
        self.max = Some(max);
        self
    }

    /// Values below `min` are refused.
    #[must_use]
    pub const fn at_least(mut self, min: &'static str) -> Self {
        self.min = Some(min);
        self
    }

    /// The doc shows `gloss` after the default (`64 MiB` after `67108864`).
    #[must_use]
    pub const fn gloss(mut self, gloss: &'static str) -> Self {
        self.gloss = gloss;
        self
    }

    /// Shown in the dump with any password replaced.
    #[must_use]
    pub const fn url(mut self) -> Self {
        self.shown = Shown::Url;
        self
    }
}

impl<T: FromStr> Setting<T> {
    /// The declared default, parsed (a test parses every declared default: `check`).
    pub fn default_value(&self) -> T {
        self.default
            .parse()
            .unwrap_or_else(|_| panic!("{}: the declared default parses", self.var))
    }
}

/// A setting that is unset unless given (a file, a token, an optional dependency).
#[derive(Debug)]
pub struct Optional<T> {
    pub var: &'static str,
    /// What unset means, for the doc ("the embedded mode").
    pub unset: &'static str,
    pub doc: &'static str,
    pub shown: Shown,
    value: PhantomData<fn() -> T>,
}

impl<T> Optional<T> {
    pub const fn new(var: &'static str, unset: &'static str, doc: &'static str) -> Self {
        Self {
            var,
            unset,
            doc,
            shown: Shown::Plain,
            value: PhantomData,
        }
    }

    /// Shown in the dump only as set or unset.
    #[must_use]
    pub const fn secret(mut self) -> Self {
        self.shown = Shown::Secret;
        self
    }

    /// Shown in the dump with any password replaced.
    #[must_use]
    pub const fn url(mut self) -> Self {
        self.shown = Shown::Url;
        self
    }
}

/// A setting whose default is worked out at start (the machine's cores, the engine's price).
#[derive(Debug)]
pub struct Derived<T> {
    pub var: &'static str,
    /// Where the default comes from, for the doc.
    pub default: &'static str,
    pub min: Option<&'static str>,
    pub max: Option<&'static str>,
    pub doc: &'static str,
    value: PhantomData<fn() -> T>,
}

impl<T> Derived<T> {
    pub const fn new(var: &'static str, default: &'static str, doc: &'static str) -> Self {
        Self {
            var,
            default,
            min: None,
            max: None,
            doc,
            value: PhantomData,
        }
    }

    /// Values outside `min..=max` are refused.
    #[must_use]
    pub const fn within(mut self, min: &'static str, max: &'static str) -> Self {
        self.min = Some(min);
        self.max = Some(max);
        self
    }
}

/// A declared setting as the doc and its test see it.
pub trait Describe: Sync {
    fn var(&self) -> &'static str;
    /// The default column: a value in backticks, or what unset means.
    fn default_text(&self) -> String;
    /// The meaning column, bounds included.
    fn meaning(&self) -> String;
    /// Whether the declared default and bounds parse and the default lies within them.
    ///
    /// # Errors
    /// What is wrong with the declaration.
    fn check(&self) -> Result<(), String>;
}

fn bounds(min: Option<&str>, max: Option<&str>) -> String {
    match (min, max) {
        (Some(min), Some(max)) => format!(" ({min}–{max})"),
        (Some(min), None) => format!(" (at least {min})"),
        (None, Some(max)) => format!(" (at most {max})"),
        (None, None) => String::new(),
    }
}

fn parse<T: FromStr>(var: &str, what: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{var}: the declared {what} {text:?} does not parse"))
}

/// Whether `value` lies within the declared bounds (each parsed; a bound that does not parse
/// is a declaration error [`Describe::check`] reports).
fn inside<T: FromStr + PartialOrd>(value: &T, min: Option<&str>, max: Option<&str>) -> bool {
    let above = min.is_none_or(|min| min.parse::<T>().is_ok_and(|min| *value >= min));
    let below = max.is_none_or(|max| max.parse::<T>().is_ok_and(|max| *value <= max));
    above && below
}

fn check_bounds<T: FromStr + PartialOrd>(
    var: &str,
    value: Option<&T>,
    min: Option<&str>,
    max: Option<&str>,
) -> Result<(), String> {
    for bound in [min, max].into_iter().flatten() {
        parse::<T>(var, "bound", bound)?;
    }
    match value {
        Some(value) if !inside(value, min, max) => Err(format!(
            "{var}: the declared default lies outside its bounds"
        )),
        _ => Ok(()),
    }
}

impl<T: FromStr + PartialOrd> Describe for Setting<T> {
    fn var(&self) -> &'static str {
        self.var
    }

    fn default_text(&self) -> String {
        if self.gloss.is_empty() {
            format!("`{}`", self.default)
        } else {
            format!("`{}` ({})", self.default, self.gloss)
        }
    }

    fn meaning(&self) -> String {
        format!("{}{}", self.doc, bounds(self.min, self.max))
    }

    fn check(&self) -> Result<(), String> {
        let default = parse::<T>(self.var, "default", self.default)?;
        check_bounds(self.var, Some(&default), self.min, self.max)
    }
}

impl<T: FromStr> Describe for Optional<T> {
    fn var(&self) -> &'static str {
        self.var
    }

    fn default_text(&self) -> String {
        if self.unset.is_empty() {
            "unset".to_owned()
        } else {
            format!("unset: {}", self.unset)
        }
    }

    fn meaning(&self) -> String {
        self.doc.to_owned()
    }

    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

impl<T: FromStr + PartialOrd> Describe for Derived<T> {
    fn var(&self) -> &'static str {
        self.var
    }

    fn default_text(&self) -> String {
        self.default.to_owned()
    }

    fn meaning(&self) -> String {
        format!("{}{}", self.doc, bounds(self.min, self.max))
    }

    fn check(&self) -> Result<(), String> {
        check_bounds::<T>(self.var, None, self.min, self.max)
    }
}

/// The Markdown table of `settings`, as the configuration doc shows them.
pub fn table(settings: &[&dyn Describe]) -> String {
    let mut out = String::from("| variable | default | meaning |\n|---|---|---|\n");
    for setting in settings {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            setting.var(),
            setting.default_text(),
            setting.meaning()
        ));
    }
    out
}

/// `doc` with each section's table rendered from its settings: the table between
/// `<!-- settings: NAME -->` and `<!-- end settings -->` is replaced by [`table`].
///
/// # Errors
/// The section whose markers are missing.
pub fn render_sections(doc: &str, sections: &[(&str, &[&dyn Describe])]) -> Result<String, String> {
    let mut rendered = doc.to_owned();
    for (name, settings) in sections {
        let begin = format!("<!-- settings: {name} -->\n");
        let end = "<!-- end settings -->";
        let start = rendered
            .find(&begin)
            .ok_or_else(|| format!("{begin:?} is missing"))?
            + begin.len();
        let stop = start
            + rendered[start..]
                .find(end)
                .ok_or_else(|| format!("{end:?} is missing after {begin:?}"))?;
        rendered.replace_range(start..stop, &table(settings));
    }
    Ok(rendered)
}

/// The test every crate with declared settings runs: each declaration's default and bounds
/// parse, the default lies within them ([`Describe::check`]) and no variable is declared twice;
/// and `docs/configuration.md` (beside `manifest_dir`, the crate's own folder) shows `sections`
/// as [`render_sections`] renders them. With `MAPLE_BLESS` set it rewrites the doc instead of
/// comparing; review the diff.
///
/// # Panics
/// On a bad declaration, a doc that cannot be read or written, a missing marker, or a doc
/// that differs.
pub fn check_doc(manifest_dir: &str, sections: &[(&str, &[&dyn Describe])]) {
    let mut seen = std::collections::HashSet::new();
    for (_, settings) in sections {
        for setting in *settings {
            assert_eq!(setting.check(), Ok(()));
            assert!(seen.insert(setting.var()), "{} twice", setting.var());
        }
    }
    let path = std::path::Path::new(manifest_dir).join("../docs/configuration.md");
    let doc = std::fs::read_to_string(&path).expect("docs/configuration.md");
    let rendered = render_sections(&doc, sections).expect("the doc's markers");
    if std::env::var_os("MAPLE_BLESS").is_some() {
        std::fs::write(&path, &rendered).expect("write the doc");
        return;
    }
    assert!(
        rendered == doc,
        "docs/configuration.md differs from the declared settings; run `MAPLE_BLESS=1 cargo test \
         --workspace --lib` and review the diff"
    );
}

impl Env {
    /// Keeps what a declared setting was read as, for the dump ([`Self::effective`]).
    fn keep(&self, var: &str, shown: Shown, value: Option<String>) {
        let text = match (shown, value) {
            (Shown::Secret, Some(_)) => "<set>".to_owned(),
            (_, None) => "<unset>".to_owned(),
            (Shown::Url, Some(url)) => redact_url(&url),
            (Shown::Plain, Some(value)) => value,
        };
        let mut effective = self
            .effective
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        effective.retain(|(kept, _)| kept != var);
        effective.push((var.to_owned(), text));
    }

    /// Every declared setting read so far, in the order read, as the configuration dump shows
    /// it: secrets only as `<set>`/`<unset>`, URLs without their passwords.
    pub fn effective(&self) -> Vec<(String, String)> {
        self.effective
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads `setting`: the variable, else its default. A value that does not parse or lies
    /// outside the bounds is noted ([`Env::reject`]) and the default is used.
    pub fn setting<T>(&self, setting: &Setting<T>) -> T
    where
        T: FromStr + PartialOrd,
        T::Err: Display,
    {
        let value = self.read_within(setting.var, setting.min, setting.max);
        let shown = value.as_ref().map(|(raw, _)| raw.clone());
        self.keep(
            setting.var,
            setting.shown,
            Some(shown.unwrap_or_else(|| setting.default.to_owned())),
        );
        match value {
            Some((_, value)) => value,
            None => setting.default_value(),
        }
    }

    /// Reads `setting`: `None` when unset; a value that does not parse is noted and `None`.
    pub fn optional<T>(&self, setting: &Optional<T>) -> Option<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        let raw = self.get(setting.var);
        self.keep(setting.var, setting.shown, raw.clone());
        let raw = raw?;
        match raw.trim().parse() {
            Ok(value) => Some(value),
            Err(e) => {
                let shown = match setting.shown {
                    Shown::Secret => "<redacted>".to_owned(),
                    Shown::Url => redact_url(&raw),
                    Shown::Plain => raw.clone(),
                };
                self.reject(ConfigError::new(setting.var, shown, e));
                None
            }
        }
    }

    /// Reads `setting`, with `default` worked out by the caller; as [`Env::setting`].
    pub fn derived<T>(&self, setting: &Derived<T>, default: T) -> T
    where
        T: FromStr + PartialOrd + Display,
        T::Err: Display,
    {
        let value = self.read_within(setting.var, setting.min, setting.max);
        let value = value.map_or(default, |(_, value)| value);
        self.keep(setting.var, Shown::Plain, Some(value.to_string()));
        value
    }

    /// The variable's text and value when it is set, parses and lies within the bounds;
    /// otherwise the problem is noted and `None`.
    fn read_within<T>(&self, var: &str, min: Option<&str>, max: Option<&str>) -> Option<(String, T)>
    where
        T: FromStr + PartialOrd,
        T::Err: Display,
    {
        let raw = self.get(var)?;
        let raw = raw.trim().to_owned();
        match raw.parse::<T>() {
            Err(e) => {
                self.reject(ConfigError::new(var, raw, e));
                None
            }
            Ok(value) if !inside(&value, min, max) => {
                let reason = match (min, max) {
                    (Some(min), Some(max)) => format!("must be within {min}..={max}"),
                    (Some(min), None) => format!("must be at least {min}"),
                    (None, Some(max)) => format!("must be at most {max}"),
                    (None, None) => String::new(),
                };
                self.reject(ConfigError::new(var, raw, reason));
                None
            }
            Ok(value) => Some((raw, value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORT: Setting<u16> = Setting::new("T_PORT", "8080", "the port").within("1", "65535");
    const TOKEN: Optional<String> = Optional::new("T_TOKEN", "", "a token").secret();
    const WORKERS: Derived<u32> =
        Derived::new("T_WORKERS", "the machine's cores", "workers").within("1", "64");

    #[test]
    fn a_setting_reads_its_variable_or_its_default_and_refuses_out_of_bounds() {
        let env = Env::from_pairs([("T_PORT", "0"), ("T_TOKEN", "s3cret"), ("T_WORKERS", "8")]);
        assert_eq!(env.setting(&PORT), 8080, "0 is outside 1..=65535");
        assert_eq!(env.optional(&TOKEN).as_deref(), Some("s3cret"));
        assert_eq!(env.derived(&WORKERS, 2), 8);
        let errors = env.settle(Ok(())).expect_err("one bad value");
        assert_eq!(errors.0.len(), 1);
        assert_eq!(errors.0[0].var, "T_PORT");
        assert!(errors.0[0].reason.contains("1..=65535"), "{errors}");
        let dump = env.effective();
        assert!(
            dump.contains(&("T_PORT".to_owned(), "8080".to_owned())),
            "{dump:?}"
        );
        assert!(
            dump.contains(&("T_TOKEN".to_owned(), "<set>".to_owned())),
            "{dump:?}"
        );
        assert!(
            dump.contains(&("T_WORKERS".to_owned(), "8".to_owned())),
            "{dump:?}"
        );
    }

    #[test]
    fn the_doc_row_shows_the_default_and_the_bounds() {
        assert_eq!(
            table(&[&PORT, &TOKEN, &WORKERS]),
            "| variable | default | meaning |\n|---|---|---|\n\
             | `T_PORT` | `8080` | the port (1–65535) |\n\
             | `T_TOKEN` | unset | a token |\n\
             | `T_WORKERS` | the machine's cores | workers (1–64) |\n"
        );
        for setting in [&PORT as &dyn Describe, &TOKEN, &WORKERS] {
            assert_eq!(setting.check(), Ok(()));
        }
        let bad: Setting<u16> = Setting::new("T_BAD", "70000", "x");
        assert!(bad.check().is_err(), "the default does not fit u16");
        let outside: Setting<u16> = Setting::new("T_OUT", "5", "x").within("10", "20");
        assert!(outside.check().is_err());
    }
}
