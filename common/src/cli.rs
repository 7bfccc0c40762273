//! Command-line conventions shared by the binaries: `--help`/`-h` prints usage and exits 0,
//! `--version`/`-V` prints the version and the git commit, and anything the parser does not
//! know exits [`EXIT_CONFIG`] (64, `EX_USAGE`) with the usage. Settings stay in environment
//! variables; the command line only chooses what to run.

use crate::config::EXIT_CONFIG;

/// `0.1.0 (commit 1e0866f01234)`: the crate version and the commit the binary was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("MAPLE_GIT_COMMIT"),
    ")"
);

/// The git commit the binary was built from (`unknown` outside a git checkout).
pub const GIT_COMMIT: &str = env!("MAPLE_GIT_COMMIT");

/// Parses the process arguments, or ends the process: help and version on stdout with exit 0,
/// an unknown flag or argument on stderr with the usage and exit 64.
pub fn parse<T: clap::Parser>() -> T {
    match T::try_parse() {
        Ok(args) => args,
        Err(error) => {
            let code = if error.use_stderr() { EXIT_CONFIG } else { 0 };
            // Printing fails only when the stream is closed; the exit code still tells.
            let _ = error.print();
            std::process::exit(code);
        }
    }
}

/// An error and its causes on one line: the message, then each `source()` after a colon.
///
/// The project's errors keep to one rule so that this names each cause once: an error either
/// says its cause in its own message (and has no `source()`) or returns it from `source()`
/// (and its message is only the context, or `#[error(transparent)]`), never both.
pub fn report(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(source) = cause {
        line.push_str(": ");
        line.push_str(&source.to_string());
        cause = source.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Says its cause in the message: no `source()`.
    #[derive(Debug, thiserror::Error)]
    #[error("cannot read the rate table x.csv: {cause}")]
    struct Says {
        cause: std::io::Error,
    }

    /// Returns its cause: the message is the context.
    #[derive(Debug, thiserror::Error)]
    #[error("cannot start")]
    struct Wraps(#[source] Says);

    #[test]
    fn each_cause_is_named_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        assert_eq!(
            report(&Wraps(Says { cause: io() })),
            "cannot start: cannot read the rate table x.csv: no such file"
        );
        assert_eq!(report(&io()), "no such file");
    }

    #[test]
    fn the_version_names_the_commit() {
        assert!(VERSION.starts_with(env!("CARGO_PKG_VERSION")));
        assert!(VERSION.contains(GIT_COMMIT));
    }
}
