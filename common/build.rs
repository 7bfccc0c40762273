//! Records the git commit the binaries are built from (`--version`): `MAPLE_GIT_COMMIT` when set
//! (a container build without `.git`), else `git rev-parse`, else `unknown`.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-env-changed=MAPLE_GIT_COMMIT");
    let commit = std::env::var("MAPLE_GIT_COMMIT")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            // Rebuild when HEAD moves: the ref it names, or the packed refs.
            // (A path that does not exist would rerun this script on every build.)
            if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
                let dir = Path::new(&dir);
                let head = git(&["symbolic-ref", "-q", "HEAD"]);
                let watched = [Some("HEAD"), Some("packed-refs"), head.as_deref()];
                for path in watched.into_iter().flatten().map(|p| dir.join(p)) {
                    if path.exists() {
                        println!("cargo:rerun-if-changed={}", path.display());
                    }
                }
            }
            git(&["rev-parse", "--short=12", "HEAD"])
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=MAPLE_GIT_COMMIT={commit}");
}
