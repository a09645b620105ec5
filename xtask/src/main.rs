//! cargo xtask: the project's chores as one small binary (rust-analyzer style): test, ci, bench.

mod bench;
mod explore;
mod fuzz;
mod tidy;

use std::process::Command;

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: cargo xtask <test [-- ARGS]|ci|bench [PART]|bench-parser|suite-bench [JOBS]|fuzz SECONDS|explore [refphone|quirks|all]>
  test         install what the tests drive if missing (baresip, sipp, xmllint, chromium, tshark:
               Debian packages baresip-core, sip-tester, libxml2-utils, chromium, tshark; as
               root), then cargo test --workspace --locked [ARGS]
  ci           build everything, run the tests, then run every case against the reference phone
  bench        the harness's registrar (sipharness serve, release build) against Kamailio 5.6, both
               driven by SIPp over UDP with digest, alternately at 5k, 10k, 20k and 40k REGISTER/s
               offered: tx/s, ratio, p50/p99; latency per message at 1k/s; serve's RSS under load
               (installs sip-tester and kamailio with apt-get when missing; about 6 minutes);
               PART runs one part: throughput [RATE,...] (say 10k,20k), latency or memory
  bench-parser run the sip crate's parser benchmark (criterion), beside rsip 0.4 on the same input
  suite-bench  run every case against refphone (JOBS at once, default the CLI's) and compare the
               wall time with the waits the provisioned timers make unavoidable
  fuzz         install cargo-fuzz if missing, build the libFuzzer targets in fuzz/ and run each
               for an equal share of SECONDS; prints executions per target, fails on a crash
  explore      issue 14's long runs (release build): refphone without a quirk for 2000 random
               steps, and each of no-failback, keep-aor, flap, register-both, ignore-dns-ttl found
               from seeds 1-5 within 200 steps, shrunk to at most 6 steps, replayed; one line per
               run; `cargo xtask explore --help` for its options";

fn main() -> Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    match task.as_str() {
        "test" => {
            let mut extra: Vec<String> = std::env::args().skip(2).collect();
            if extra.first().is_some_and(|a| a == "--") {
                extra.remove(0);
            }
            test(extra)
        }
        "ci" => {
            cargo(&["test", "--workspace"])?;
            cargo(&["build", "--workspace"])?;
            run("target/debug/sipharness", &["run", "--phone", "refphone"])
        }
        "bench" => bench::bench(&std::env::args().skip(2).collect::<Vec<_>>()),
        "bench-parser" => cargo(&["bench", "-p", "sip", "--bench", "parse"]),
        "suite-bench" => suite_bench(std::env::args().nth(2)),
        "fuzz" => fuzz::fuzz(std::env::args().nth(2)),
        "explore" => explore::explore(&std::env::args().skip(2).collect::<Vec<_>>()),
        _ => bail!("{USAGE}"),
    }
}

/// The programs the tests drive as peers of the lab (`suites/tests/peers.rs`), each with the
/// Debian package that ships it.
const PEERS: [(&str, &str); 5] = [
    ("baresip", "baresip-core"),
    ("sipp", "sip-tester"),
    ("xmllint", "libxml2-utils"),
    ("chromium", "chromium"),
    ("tshark", "tshark"),
];

/// What CI runs (`.ci/run`): the peers installed if missing, then the workspace's tests; exits
/// with cargo's code.
fn test(extra: Vec<String>) -> Result<()> {
    install_peers()?;
    let mut args = vec!["test".to_owned(), "--workspace".into(), "--locked".into()];
    args.extend(extra);
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(&args)
        .current_dir(workspace_root())
        .status()
        .context("cannot run cargo")?;
    std::process::exit(status.code().unwrap_or(1));
}

/// Installs the Debian packages of the peers that are not on PATH (`apt-get`, as root).
fn install_peers() -> Result<()> {
    install_missing(&PEERS)
}

/// Installs the Debian package of each `(program, package)` whose program is not on PATH.
fn install_missing(wanted: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<(&str, &str)> = wanted.iter().copied().filter(|(program, _)| !on_path(program)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let programs: Vec<&str> = missing.iter().map(|(program, _)| *program).collect();
    let packages: Vec<&str> = missing.iter().map(|(_, package)| *package).collect();
    if !is_root() {
        bail!(
            "not installed: {} (Debian: {}), peers the tests drive through the lab; run `cargo xtask test` \
             as root to install them, or `apt-get install --no-install-recommends {}`",
            programs.join(", "),
            packages.join(", "),
            packages.join(" ")
        );
    }
    note(&format!("xtask: not installed: {}; installing {}\n", programs.join(", "), packages.join(" ")))?;
    run("apt-get", &["update"]).context("apt-get update failed; the tests need Debian's package archive")?;
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend(&packages);
    let status = Command::new("apt-get")
        .args(&install)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("cannot run apt-get")?;
    if !status.success() {
        bail!("apt-get install {} failed: {status}", packages.join(" "));
    }
    if let Some((program, package)) = missing.iter().find(|(program, _)| !on_path(program)) {
        bail!("{package} installed, yet `{program}` is still not on PATH");
    }
    Ok(())
}

/// Whether this process runs as root (its effective uid, from `/proc/self/status`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            .is_some_and(|effective| effective == "0")
    })
}

/// Whether `program` is on PATH (what `command -v` says).
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// The suite's wall time against the sum, over cases, of the time each spent waiting on the
/// phone (its timers' refreshes, detections, probes, and the observation windows): that sum over
/// the jobs is the wall time a runner without overhead would take. Figures, never assertions.
fn suite_bench(jobs: Option<String>) -> Result<()> {
    cargo(&["build", "-p", "suites", "-p", "phone"])?;
    let mut args = vec!["run", "--phone", "refphone", "--json"];
    let jobs_arg;
    if let Some(jobs) = &jobs {
        jobs_arg = jobs.clone();
        args.extend(["--jobs", jobs_arg.as_str()]);
    }
    let started = std::time::Instant::now();
    let output = Command::new(workspace_root().join("target/debug/sipharness"))
        .args(&args)
        .current_dir(workspace_root())
        .output()
        .context("cannot run sipharness")?;
    let wall = started.elapsed().as_secs_f64();
    let (mut cases, mut passed, mut waited_ms, mut duration_ms) = (0u64, 0u64, 0u64, 0u64);
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let value: serde_json::Value = serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))?;
        cases += 1;
        passed += u64::from(value["verdict"] == "pass");
        waited_ms += value["waited_ms"].as_u64().unwrap_or(0);
        duration_ms += value["duration_ms"].as_u64().unwrap_or(0);
    }
    let jobs: f64 = jobs.as_deref().unwrap_or("4").parse().context("JOBS is a number")?;
    let waits = waited_ms as f64 / 1000.0;
    let ideal = waits / jobs;
    let report = format!(
        "cases: {cases} ({passed} passed)\nwall: {wall:.1} s with {jobs} jobs\n\
sum of case durations: {:.1} s\nsum of waits the timers impose: {waits:.1} s, over {jobs} jobs: {ideal:.1} s\n\
wall / (waits / jobs): {:.2} (target: at most 1.5)\n",
        duration_ms as f64 / 1000.0,
        wall / ideal
    );
    note(&report)
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

/// Progress and reports go to stderr: xtask's stdout is left to the programs it runs.
fn note(text: &str) -> Result<()> {
    std::io::Write::write_all(&mut std::io::stderr(), text.as_bytes())?;
    Ok(())
}

fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Into::into).unwrap_or_default()
}
