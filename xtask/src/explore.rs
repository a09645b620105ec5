//! `cargo xtask explore`: issue 14's long runs (refphone without a quirk for 2000 steps, each quirk the explorer must catch found, shrunk and replayed), one line per run and a non-zero exit when a must-show item fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::{cargo, workspace_root};

/// The quirks issue 14 says the explorer must catch, each within `QUIRK_STEPS` steps from one of
/// the seeds 1 to 5, shrunk to at most `MOST_SHRUNK_STEPS` steps.
pub const QUIRKS: [&str; 5] = ["no-failback", "keep-aor", "flap", "register-both", "ignore-dns-ttl"];
const QUIRK_SEEDS: std::ops::RangeInclusive<u64> = 1..=5;
const QUIRK_STEPS: u32 = 200;
const MOST_SHRUNK_STEPS: usize = 6;
/// refphone without a quirk: this many steps in all, no failure.
const REFPHONE_STEPS: u32 = 2000;
/// Steps per schedule (one lab, one phone): long enough for orders of events no case wrote,
/// short enough that a failure's schedule starts shrinking from a few dozen steps.
const SCHEDULE_STEPS: u32 = 20;
/// Replays the shrinker may spend on one failure (each candidate is replayed twice).
const SHRINK_REPLAYS: u32 = 24;

pub const USAGE: &str = "cargo xtask explore [refphone|quirks|all] [--steps N] [--jobs N]
  refphone: refphone without a quirk, N steps (default 2000) in schedules of 20 from seed 1, N/20
  runs at most --jobs at once (default 2); quirks: each of no-failback, keep-aor, flap,
  register-both, ignore-dns-ttl from seeds 1 to 5, 200 steps each until found, shrunk (at most
  6 steps) and replayed. One line per run; exit 1 when a must-show item fails. Builds the release
  binaries first unless SIPHARNESS_EXPLORE_BINARY names a sipharness (refphone beside it).
  Schedules, and the reports of the runs that failed, are saved in target/explore/.";

/// What one run found.
struct Run {
    label: String,
    seed: u64,
    steps: usize,
    found: Option<String>,
    shrunk: Option<usize>,
    reproduced: Option<bool>,
    seconds: f64,
}

impl Run {
    fn line(&self) -> String {
        format!(
            "{:<16} seed {:<3} steps {:<5} found {:<6} shrunk {:<4} replay reproduced {:<4} ({:.0} s)",
            self.label,
            self.seed,
            self.steps,
            self.found.as_deref().unwrap_or("-"),
            self.shrunk.map_or_else(|| "-".to_owned(), |n| n.to_string()),
            match self.reproduced {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            },
            self.seconds
        )
    }
}

pub fn explore(args: &[String]) -> Result<()> {
    let mut part = "all".to_owned();
    let mut steps = REFPHONE_STEPS;
    let mut jobs = 2usize;
    let mut words = args.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "refphone" | "quirks" | "all" => part.clone_from(word),
            "--help" | "-h" => return super::note(&format!("{USAGE}\n")),
            "--steps" => steps = words.next().and_then(|n| n.parse().ok()).context(USAGE)?,
            "--jobs" => jobs = words.next().and_then(|n| n.parse().ok()).filter(|n| *n > 0).context(USAGE)?,
            _ => bail!("{USAGE}"),
        }
    }
    let binary = binary()?;
    let scratch = workspace_root().join("target/explore");
    std::fs::create_dir_all(&scratch).with_context(|| format!("cannot make {}", scratch.display()))?;
    let started = Instant::now();
    let mut broken = Vec::new();
    if part == "refphone" || part == "all" {
        broken.extend(refphone(&binary, steps, jobs, &scratch));
    }
    if part == "quirks" || part == "all" {
        broken.extend(quirks(&binary, jobs, &scratch));
    }
    say(&format!("explore: {:.0} s in all", started.elapsed().as_secs_f64()));
    if !broken.is_empty() {
        bail!("must-show items failed:\n  {}", broken.join("\n  "));
    }
    Ok(())
}

/// The sipharness to run: `SIPHARNESS_EXPLORE_BINARY`, else the release build made now.
fn binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("SIPHARNESS_EXPLORE_BINARY") {
        return Ok(PathBuf::from(path));
    }
    cargo(&["build", "--release", "-p", "suites", "--bin", "sipharness", "-p", "phone", "--bin", "refphone"])?;
    Ok(workspace_root().join("target/release/sipharness"))
}

/// Runs `work` over `items`, at most `jobs` at once, the results in the items' order.
fn parallel<T: Send + Clone + 'static, R: Send + 'static>(
    items: Vec<T>,
    jobs: usize,
    work: impl Fn(T) -> R + Send + Sync + 'static,
) -> Vec<R> {
    let work = Arc::new(work);
    let queue = Arc::new(Mutex::new(items.into_iter().enumerate().collect::<Vec<_>>()));
    let results = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..jobs)
        .map(|_| {
            let (work, queue, results) = (work.clone(), queue.clone(), results.clone());
            std::thread::spawn(move || {
                loop {
                    let next = queue.lock().unwrap().pop();
                    let Some((index, item)) = next else { break };
                    let result = work(item);
                    results.lock().unwrap().push((index, result));
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
    let mut results = std::mem::take(&mut *results.lock().unwrap());
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, r)| r).collect()
}

/// (a) refphone without a quirk: `steps` steps, in runs of 100 steps (5 schedules) spread over
/// `jobs`; any failure is a must-show item broken (a refphone bug or a model error to settle).
fn refphone(binary: &Path, steps: u32, jobs: usize, scratch: &Path) -> Vec<String> {
    const RUN_STEPS: u32 = 100;
    let runs: Vec<(u64, u32)> = (0..steps.div_ceil(RUN_STEPS))
        .map(|i| (1 + u64::from(i * RUN_STEPS / SCHEDULE_STEPS), RUN_STEPS.min(steps - i * RUN_STEPS)))
        .collect();
    let (binary, scratch) = (binary.to_path_buf(), scratch.to_path_buf());
    let results = parallel(runs, jobs, move |(seed, steps)| {
        let run = explore_run(&binary, "refphone", "refphone", seed, steps, &scratch);
        say(&run.line());
        run
    });
    let played: usize = results.iter().map(|r| r.steps).sum();
    let failed: Vec<&Run> = results.iter().filter(|r| r.found.is_some()).collect();
    say(&format!("refphone: {played} steps over seeds 1-{}, {} failures", 1 + steps / SCHEDULE_STEPS, failed.len()));
    failed.iter().map(|r| format!("refphone failed from seed {}: {}", r.seed, r.line())).collect()
}

/// (b) every quirk of [`QUIRKS`], seeds 1 to 5 in turn until one finds it.
fn quirks(binary: &Path, jobs: usize, scratch: &Path) -> Vec<String> {
    let (binary, scratch) = (binary.to_path_buf(), scratch.to_path_buf());
    let results = parallel(QUIRKS.to_vec(), jobs, move |quirk| {
        let phone = format!("refphone:quirk={quirk}");
        let mut runs = Vec::new();
        for seed in QUIRK_SEEDS {
            let run = explore_run(&binary, quirk, &phone, seed, QUIRK_STEPS, &scratch);
            say(&run.line());
            let found = run.found.is_some();
            runs.push(run);
            if found {
                break;
            }
        }
        (quirk, runs)
    });
    let mut broken = Vec::new();
    for (quirk, runs) in results {
        match runs.last() {
            Some(run) if run.found.is_some() => {
                if run.shrunk.is_none_or(|n| n > MOST_SHRUNK_STEPS) {
                    broken.push(format!("{quirk}: shrunk to {:?} steps, more than {MOST_SHRUNK_STEPS}", run.shrunk));
                }
                if run.reproduced != Some(true) {
                    broken.push(format!("{quirk}: the replay of the minimal schedule did not reproduce it"));
                }
            }
            _ => broken.push(format!("{quirk}: not found in {QUIRK_STEPS} steps from any of the seeds 1 to 5")),
        }
    }
    broken
}

/// One `sipharness explore` run, and on a failure the replay of the schedule it saved.
fn explore_run(binary: &Path, label: &str, phone: &str, seed: u64, steps: u32, scratch: &Path) -> Run {
    let started = Instant::now();
    let saved = scratch.join(format!("{label}-seed-{seed}.schedule"));
    let output = sipharness(
        binary,
        &[
            "explore",
            "--phone",
            phone,
            "--seed",
            &seed.to_string(),
            "--steps",
            &steps.to_string(),
            "--schedule-steps",
            &SCHEDULE_STEPS.to_string(),
            "--shrink-replays",
            &SHRINK_REPLAYS.to_string(),
            "--save",
            saved.to_str().unwrap_or_default(),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.code() != Some(0) {
        // The whole report (the failure, its ladder), to read after the run.
        let _ = std::fs::write(scratch.join(format!("{label}-seed-{seed}.out")), &output.stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The step that failed prints no progress line: counted when something was found.
    let played = stderr
        .lines()
        .take_while(|l| !l.starts_with("explore: shrinking"))
        .filter(|l| l.starts_with("explore: step "))
        .count();
    let mut run =
        Run { label: label.to_owned(), seed, steps: played, found: None, shrunk: None, reproduced: None, seconds: 0.0 };
    match output.status.code() {
        Some(1) => {
            // The minimal schedule's own result comes just before its steps.
            let (result, minimal) = stdout.rsplit_once("minimal schedule").unwrap_or_default();
            run.steps += 1;
            run.found = Some(last_requirement(result).unwrap_or_else(|| "?".into()));
            run.shrunk = Some(minimal.lines().filter(|l| l.starts_with("step ")).count());
            let replay =
                sipharness(binary, &["explore", "--replay", saved.to_str().unwrap_or_default(), "--phone", phone]);
            let again = String::from_utf8_lossy(&replay.stdout);
            run.reproduced = Some(replay.status.code() == Some(1) && last_requirement(&again) == run.found);
            let kept = scratch.join(format!("{label}.schedule"));
            if std::fs::copy(&saved, &kept).is_ok() {
                say(&format!(
                    "{label}: minimal schedule saved as {} (a regression case for suites/regressions/):\n{}",
                    kept.display(),
                    std::fs::read_to_string(&kept).unwrap_or_default().trim_end()
                ));
            }
        }
        Some(0) => {}
        code => {
            run.found = Some(format!("error (exit {code:?}): {}", stderr.lines().last().unwrap_or_default()));
        }
    }
    run.seconds = started.elapsed().as_secs_f64();
    run
}

/// One line (or a few) on stdout, whole: runs on several threads print between each other's lines.
fn say(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

fn sipharness(binary: &Path, args: &[&str]) -> Output {
    Command::new(binary).args(args).output().unwrap_or_else(|e| Output {
        status: std::os::unix::process::ExitStatusExt::from_raw(2 << 8),
        stdout: Vec::new(),
        stderr: format!("cannot run {}: {e}", binary.display()).into_bytes(),
    })
}

/// The requirement the last failure in `text` cites (`      R2.3: at step 2 ...`).
fn last_requirement(text: &str) -> Option<String> {
    text.lines().map(str::trim).rfind(|l| l.contains(": at step ")).and_then(|l| l.split(':').next()).map(str::to_owned)
}
