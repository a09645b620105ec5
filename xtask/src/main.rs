//! cargo xtask: the project's chores as one small binary (rust-analyzer style): ci, bench.

mod tidy;

use std::process::Command;

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: cargo xtask <ci|bench>
  ci      build everything, run the tests, then run every case against the reference phone
  bench   run the sip crate's parser benchmark (criterion), beside rsip 0.4 on the same input";

fn main() -> Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    match task.as_str() {
        "ci" => {
            cargo(&["test", "--workspace"])?;
            cargo(&["build", "--workspace"])?;
            run("target/debug/sipharness", &["run", "--phone", "refphone"])
        }
        "bench" => cargo(&["bench", "-p", "sip", "--bench", "parse"]),
        _ => bail!("{USAGE}"),
    }
}

fn cargo(args: &[&str]) -> Result<()> {
    run(&std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()), args)
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    let status = Command::new(program)
        .args(args)
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("cannot run {program}"))?;
    if !status.success() {
        bail!("{program} {} failed: {status}", args.join(" "));
    }
    Ok(())
}

fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Into::into).unwrap_or_default()
}
