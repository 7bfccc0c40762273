//! `pricing-flood`: one client floods core's pricing with distinct option sets while another
//! asks for its first valuation of a new character (`maple_tests::flood`). Core must believe
//! `X-Forwarded-For` from this host (`MAPLE_CORE_TRUSTED_PROXIES=127.0.0.1`).
//!
//! ```text
//! pricing-flood --target http://127.0.0.1:8080 [--flood 600] [--concurrency 64] [--tag pf1]
//! ```
#![allow(
    clippy::print_stdout,
    reason = "the report line on stdout is this tool's output"
)]

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let (mut target, mut flood, mut concurrency, mut tag) =
        (String::new(), 600_usize, 64_usize, String::from("pf"));
    let mut raw = std::env::args().skip(1);
    while let Some(flag) = raw.next() {
        let Some(value) = raw.next() else {
            eprintln!("pricing-flood: {flag} needs a value");
            return ExitCode::from(64);
        };
        let number = || value.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        let parsed = match flag.as_str() {
            "--target" => {
                target = value.trim_end_matches('/').to_owned();
                Ok(())
            }
            "--flood" => number().map(|n| flood = n),
            "--concurrency" => number().map(|n| concurrency = n.max(1)),
            "--tag" => {
                tag.clone_from(&value);
                Ok(())
            }
            other => Err(format!("unknown flag {other}")),
        };
        if let Err(e) = parsed {
            eprintln!("pricing-flood: {e}");
            return ExitCode::from(64);
        }
    }
    if target.is_empty() {
        eprintln!("pricing-flood: --target is required");
        return ExitCode::from(64);
    }
    let report = maple_tests::flood::run(&target, flood, concurrency, &tag).await;
    println!("pricing-flood: {report}");
    ExitCode::SUCCESS
}
