//! `cargo xtask fuzz SECONDS`: every libFuzzer target in `fuzz/` for a share of SECONDS, with executions and crashes summed up.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// The targets, each with the committed inputs it starts from (besides its own growing corpus).
const TARGETS: [(&str, &[&str]); 5] = [
    ("sip_parser", &["fixtures/corpus"]),
    ("stream_framer", &["fuzz/seeds/stream_framer"]),
    ("datagram_classifier", &["fuzz/seeds/datagram_classifier"]),
    ("dns_query", &["fuzz/seeds/dns_query"]),
    ("phone_cfg", &["fuzz/seeds/phone_cfg"]),
];

/// An input that runs longer than this is reported as a hang (libFuzzer's `-timeout`).
const HANG_SECONDS: u32 = 10;

/// What one target's run printed at its end (`-print_final_stats=1`).
#[derive(Debug, Default)]
struct Stats {
    executions: u64,
    per_second: u64,
    peak_rss_mb: u64,
    corpus: u64,
}

/// Builds every target, then fuzzes each for SECONDS / targets; fails if any found a crash, a
/// hang or a leak (its input is kept under `fuzz/artifacts/TARGET/`).
pub fn fuzz(seconds: Option<String>) -> Result<()> {
    let seconds: u64 = match seconds.as_deref().map(str::parse) {
        Some(Ok(s)) if s >= TARGETS.len() as u64 => s,
        _ => bail!(
            "usage: cargo xtask fuzz SECONDS (total fuzzing time over the {} targets, at least {0})",
            TARGETS.len()
        ),
    };
    install_cargo_fuzz()?;
    let root = crate::workspace_root();
    crate::note(&format!("xtask: building {} fuzz targets (cargo fuzz build, RUSTC_BOOTSTRAP=1)\n", TARGETS.len()))?;
    let status = cargo_fuzz(&root).arg("build").status().context("cannot run cargo fuzz")?;
    if !status.success() {
        bail!("cargo fuzz build failed: {status}");
    }
    let share = seconds / TARGETS.len() as u64;
    let mut failures = Vec::new();
    let mut total = 0u64;
    let mut report = String::from("target                executions   exec/s   corpus  peak RSS\n");
    for (target, seeds) in TARGETS {
        crate::note(&format!("xtask: fuzzing {target} for {share} s\n"))?;
        let corpus = root.join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&corpus).with_context(|| format!("cannot create {}", corpus.display()))?;
        let mut run = cargo_fuzz(&root);
        run.args(["run", target]).arg(&corpus);
        for seed in seeds {
            let seed = root.join(seed);
            if seed.is_dir() {
                run.arg(seed);
            }
        }
        run.args([
            "--".to_owned(),
            format!("-max_total_time={share}"),
            format!("-timeout={HANG_SECONDS}"),
            "-print_final_stats=1".to_owned(),
        ]);
        let output = run.stdout(Stdio::null()).stderr(Stdio::piped()).output().context("cannot run cargo fuzz")?;
        let log = String::from_utf8_lossy(&output.stderr);
        let stats = final_stats(&log);
        total += stats.executions;
        report.push_str(&format!(
            "{target:<20} {:>12} {:>8} {:>8} {:>6} MB\n",
            stats.executions, stats.per_second, stats.corpus, stats.peak_rss_mb
        ));
        if !output.status.success() {
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            crate::note(&format!("{}\n", tail.join("\n")))?;
            failures.push(format!("{target} ({}; input in fuzz/artifacts/{target}/)", output.status));
        }
    }
    report.push_str(&format!("total                {total:>12} executions in {seconds} s\n"));
    crate::note(&report)?;
    if !failures.is_empty() {
        bail!("fuzzing found failures: {}", failures.join(", "));
    }
    Ok(())
}

/// `cargo fuzz` for the project's fuzz crate; libFuzzer's instrumentation needs nightly flags,
/// which the stable toolchain takes under `RUSTC_BOOTSTRAP=1`.
fn cargo_fuzz(root: &Path) -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.arg("fuzz").current_dir(root).env("RUSTC_BOOTSTRAP", "1");
    command
}

/// Installs cargo-fuzz from crates.io unless `cargo fuzz` answers already.
fn install_cargo_fuzz() -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let present = Command::new(&cargo)
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    crate::note("xtask: cargo-fuzz not installed; cargo install cargo-fuzz --locked\n")?;
    let status =
        Command::new(&cargo).args(["install", "cargo-fuzz", "--locked"]).status().context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo install cargo-fuzz failed: {status}");
    }
    Ok(())
}

/// Reads libFuzzer's `stat::NAME: VALUE` lines, and the corpus size from its last status line.
fn final_stats(log: &str) -> Stats {
    let mut stats = Stats::default();
    for line in log.lines() {
        let Some((name, value)) = line.strip_prefix("stat::").and_then(|l| l.split_once(':')) else {
            if let Some(corpus) = line.split_once(" corp: ").and_then(|(_, rest)| rest.split('/').next()) {
                stats.corpus = corpus.trim().parse().unwrap_or(stats.corpus);
            }
            continue;
        };
        let value: u64 = value.trim().parse().unwrap_or(0);
        match name {
            "number_of_executed_units" => stats.executions = value,
            "average_exec_per_sec" => stats.per_second = value,
            "peak_rss_mb" => stats.peak_rss_mb = value,
            _ => {}
        }
    }
    stats
}
