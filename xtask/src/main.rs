//! cargo xtask: the project's chores as one small binary (rust-analyzer style): ci, bench.

mod tidy;

use std::process::Command;

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: cargo xtask <ci|bench|suite-bench [JOBS]>
  ci           build everything, run the tests, then run every case against the reference phone
  bench        run the sip crate's parser benchmark (criterion), beside rsip 0.4 on the same input
  suite-bench  run every case against refphone (JOBS at once, default the CLI's) and compare the
               wall time with the waits the provisioned timers make unavoidable";

fn main() -> Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    match task.as_str() {
        "ci" => {
            cargo(&["test", "--workspace"])?;
            cargo(&["build", "--workspace"])?;
            run("target/debug/sipharness", &["run", "--phone", "refphone"])
        }
        "bench" => cargo(&["bench", "-p", "sip", "--bench", "parse"]),
        "suite-bench" => suite_bench(std::env::args().nth(2)),
        _ => bail!("{USAGE}"),
    }
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
    std::io::Write::write_all(&mut std::io::stderr(), report.as_bytes())?;
    Ok(())
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
