//! `sipharness explore`: random fault schedules from a seed against a phone, judged by the model of the seed's table; a failure is shrunk and printed as a schedule that replays it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::outputs::{Outputs, Writers};
use super::run::print_result;
use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, usage_error};
use crate::case::{CaseResult, Verdict};
use crate::dut::Profile;
use crate::explore::{Limits, Played, Schedule, play, shrink};

pub(super) const EXPLORE_ABOUT: &str = "Random fault schedules against a model of the seed's table.\n\n\
Each schedule is drawn from a seed: a configuration (no-outbound, full-backup, outbound-only; no-outbound with the \
registrar named by its SIP service one time in two, `registrar=srv`), a transport, and steps that fail an element \
(silent, refuse, reject 503 or 408, delay 400: a slow server the phone must not leave; the dns silent or refuse) or restore one, over every element the configuration uses, \
backups and the DNS included; `reset` or `restart` a working element; `reboot` the phone (Command: Reset); `dial` \
(the INVITE must reach the active proxy); with registrar=srv, `dns prefer REGISTRAR` (the SRV records change: after \
the TTL the phone registers there). About one fail or restore in four is followed at once by the next (`mid-move`); \
the other steps meet a settled phone. After each settled step the phone must converge to where the model puts it (registrar, AOR, \
subscriptions' proxy, outbound proxy) within the suites' deadline for that move, then keep the steady state for a \
window (nothing but probes to a failed element, no second binding, no move back while a primary is down). \
`--steps K` steps are played as schedules of at most `--schedule-steps` each, seeds N, N+1, ..., each in a fresh \
lab with a fresh phone.\n\n\
On a failure the schedule is shrunk (steps dropped, mid-move steps settled, faults made plainer; each candidate \
replayed against the phone and kept only when it fails the same requirement twice, at most `--shrink-replays` \
replays or 10 minutes; the result replayed once more: `confirmed: yes|no`) and the minimal schedule is printed on \
stdout, one `step N ...` line per step (no other stdout line starts with `step `), after its \
`schedule CONFIGURATION TRANSPORT [registrar=srv] seed=N` line. It is written to FILE (`--save`, else a file in \
the temporary directory, named on stdout) for `--replay FILE`, headed by `# phone:` and `# expect:` lines: a \
regression case to copy into suites/regressions/. Progress goes to stderr, one line per step.";

pub(super) const EXPLORE_AFTER_HELP: &str = "Exit codes: 0 no step failed, 1 a step failed (the minimal schedule \
printed), 2 usage or environment error (one line on stderr), a bad replay file included.\n\n\
The schedule file: `#` comments and blank lines are skipped; then\n  schedule no-outbound udp seed=3\n  \
step 1 fail registrar-a silent\n  step 2 fail proxy-a reject 503 mid-move\n  step 3 restore registrar-a\n  \
step 4 restart proxy-b\n  step 5 reboot\n  step 6 dial\n(and, after `schedule no-outbound udp registrar=srv`, \
`step N dns prefer registrar-b`)\n\n\
With --json stdout is JSON Lines only: one object per schedule played (as `run --json`), the minimal one last \
with \"schedule\" (its text) and \"replay\" (the command).\n\n\
Examples:\n  sipharness explore --phone refphone --seed 1 --steps 40\n  \
sipharness explore --phone refphone:quirk=no-failback --seed 1 --steps 20 --save no-failback.schedule\n  \
sipharness explore --phone refphone:quirk=no-failback --replay no-failback.schedule\n  \
sipharness explore --phone refphone --seed 100 --steps 2000 --time 3600 --junit explore.xml";

#[derive(clap::Args, Debug)]
pub(super) struct ExploreArgs {
    /// The phone under test: NAME[:key=value,...], e.g. `refphone` or `refphone:quirk=no-failback`.
    #[arg(long, value_name = "PROFILE")]
    phone: String,
    /// The first seed; the next schedules take the seeds after it.
    #[arg(long, value_name = "N", default_value_t = 1, conflicts_with = "replay")]
    seed: u64,
    /// Steps to play in all.
    #[arg(long, value_name = "K", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1_000_000), conflicts_with = "replay")]
    steps: u32,
    /// The most steps in one schedule (one lab, one phone).
    #[arg(long, value_name = "K", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    schedule_steps: u32,
    /// Start no new schedule after T seconds (shrinking has its own limit).
    #[arg(long, value_name = "T")]
    time: Option<u64>,
    /// Play this schedule file once instead of drawing any (a shrunk schedule, a regression case).
    #[arg(long, value_name = "FILE")]
    replay: Option<PathBuf>,
    /// Where a failure's minimal schedule is written (default: a file in the temporary directory).
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
    /// Replays the shrinker may spend (0: no shrinking).
    #[arg(long, value_name = "N", default_value_t = 40)]
    shrink_replays: usize,
    /// JSON Lines on stdout, one object per schedule played.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    outputs: Outputs,
}

pub(super) fn explore(args: ExploreArgs) -> u8 {
    let profile = match Profile::parse(&args.phone).and_then(|p| p.check(None).map(|()| p)) {
        Ok(p) => p,
        Err(e) => return usage_error(&e.to_string()),
    };
    let replay = match &args.replay {
        None => None,
        Some(path) => {
            match std::fs::read_to_string(path).map_err(|e| e.to_string()).and_then(|t| Schedule::parse(&t)) {
                Ok(schedule) => Some(schedule),
                Err(e) => return usage_error(&format!("--replay {}: {e}", path.display())),
            }
        }
    };
    let mut writers = match args.outputs.open() {
        Ok(writers) => writers,
        Err(message) => return usage_error(&message),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return usage_error(&format!("cannot start the runtime: {e}")),
    };
    let title = format!("sipharness explore --phone {profile}");
    let started = Instant::now();
    let mut results = Results { kept: Vec::new(), writers: &mut writers };
    let code = runtime.block_on(async {
        tokio::select! {
            code = explore_all(&args, &profile, replay, &mut results) => Some(code),
            () = super::run::interrupted() => None,
        }
    });
    drop(runtime);
    let kept = results.kept;
    let Some(code) = code else {
        writers.interrupted(&title, started.elapsed());
        let _ = writeln!(std::io::stderr(), "sipharness: interrupted; every phone was stopped and its files removed");
        return EXIT_USAGE;
    };
    match writers.finish(&kept, &title, started.elapsed()) {
        Ok(()) => code,
        Err(message) => usage_error(&message),
    }
}

/// The schedules' results, each written to the reports as it lands.
struct Results<'a, 'w> {
    kept: Vec<CaseResult>,
    writers: &'a mut Writers<'w>,
}

impl Results<'_, '_> {
    fn push(&mut self, mut result: CaseResult) {
        self.writers.add(&mut result);
        self.kept.push(result);
    }
}

fn progress(line: String) {
    let _ = writeln!(std::io::stderr(), "explore: {line}");
}

async fn explore_all(
    args: &ExploreArgs,
    profile: &Profile,
    replay: Option<Schedule>,
    results: &mut Results<'_, '_>,
) -> u8 {
    let started = Instant::now();
    let schedules: Box<dyn Iterator<Item = Schedule>> = match replay {
        Some(schedule) => Box::new(std::iter::once(schedule)),
        None => {
            let (total, each) = (u64::from(args.steps), u64::from(args.schedule_steps));
            let count = total.div_ceil(each);
            Box::new((0..count).map(move |i| {
                let steps = each.min(total - i * each);
                Schedule::generate(args.seed.wrapping_add(i), usize::try_from(steps).unwrap_or(usize::MAX))
            }))
        }
    };
    let mut steps_played = 0;
    for schedule in schedules {
        if args.time.is_some_and(|t| started.elapsed() >= Duration::from_secs(t)) {
            progress(format!("--time reached after {steps_played} steps"));
            break;
        }
        progress(format!("{}: {} steps", schedule.id(), schedule.steps.len()));
        let played = play(&schedule, profile, &mut progress).await;
        steps_played += schedule.steps.len();
        print_result(&played.result, None, args.json, None);
        match played.result.verdict {
            Verdict::Pass | Verdict::Xfail => {}
            Verdict::Skip => progress(format!("skipped: {}", played.result.reason.as_deref().unwrap_or(""))),
            Verdict::Error | Verdict::Xpass => {
                let reason = played.result.reason.clone().unwrap_or_default();
                results.push(played.result);
                return usage_error(&format!("{}: {reason}", schedule.id()));
            }
            Verdict::Fail => {
                let failing = played.result.clone();
                results.push(failing);
                return report_failure(args, profile, &schedule, played, args.replay.is_some(), results).await;
            }
        }
        results.push(played.result);
    }
    progress(format!("{steps_played} steps, no failure ({:.0} s)", started.elapsed().as_secs_f64()));
    EXIT_OK
}

/// Shrinks (unless replaying), prints the minimal schedule, saves it, and names the replay.
async fn report_failure(
    args: &ExploreArgs,
    profile: &Profile,
    schedule: &Schedule,
    played: Played,
    replaying: bool,
    results: &mut Results<'_, '_>,
) -> u8 {
    let shrinking = !replaying && args.shrink_replays > 0;
    let mut confirmed = None;
    let (minimal, played) = if !shrinking {
        let failed_step = played.failed_step.unwrap_or(schedule.steps.len());
        (crate::explore::shrink::truncated(schedule, failed_step), played)
    } else {
        progress(format!("shrinking {} steps", schedule.steps.len()));
        let limits = Limits { replays: args.shrink_replays, ..Limits::default() };
        let shrunk = shrink(schedule, played, profile, limits, &mut progress).await;
        progress(format!(
            "shrunk to {} steps in {} replays ({:.0} s)",
            shrunk.schedule.steps.len(),
            shrunk.replays,
            shrunk.elapsed.as_secs_f64()
        ));
        confirmed = Some(shrunk.confirmed);
        (shrunk.schedule, shrunk.played)
    };
    let requirement = played.failed_requirement().map_or_else(|| "?".to_owned(), |r| r.to_string());
    let saved = match save(args.save.as_deref(), &minimal, profile, &requirement) {
        Ok(path) => path,
        Err(e) => return usage_error(&e),
    };
    let replay = format!("sipharness explore --replay {} --phone {}", saved.display(), profile);
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut object = serde_json::to_value(played.result.json()).unwrap_or_default();
        object["schedule"] = serde_json::Value::String(minimal.to_string());
        object["replay"] = serde_json::Value::String(replay);
        if let Some(confirmed) = confirmed {
            object["confirmed"] = serde_json::Value::Bool(confirmed);
        }
        let _ = writeln!(out, "{object}");
    } else {
        if shrinking {
            print_result(&played.result, None, false, None);
        }
        let _ = writeln!(out, "minimal schedule ({} steps):", minimal.steps.len());
        let _ = write!(out, "{minimal}");
        if let Some(confirmed) = confirmed {
            let _ = writeln!(
                out,
                "confirmed: {}",
                if confirmed {
                    "yes, one more replay failed the same requirement"
                } else {
                    "no, one more replay did not fail the same requirement (flaky)"
                }
            );
        }
        let _ = writeln!(out, "saved: {}", saved.display());
        let _ = writeln!(out, "replay: {replay}");
        let _ = writeln!(
            out,
            "regression case: copy {} into suites/regressions/ (its `# phone:` and `# expect:` lines are filled in); cargo test -p suites --test explore replays every file there",
            saved.display()
        );
    }
    let _ = out.flush();
    if shrinking {
        // The minimal schedule is a result of its own beside the one it was shrunk from.
        let mut result = played.result;
        if let Some((head, transport)) = result.id.rsplit_once('.') {
            result.id = format!("{head}-minimal.{transport}");
        }
        results.push(result);
    }
    EXIT_FAILED
}

/// Writes the schedule to `path`, or to a file of its own in the temporary directory, headed by
/// the comment lines a regression case in `suites/regressions/` carries: the phone it fails
/// against and the requirement it fails.
fn save(path: Option<&Path>, schedule: &Schedule, profile: &Profile, requirement: &str) -> Result<PathBuf, String> {
    let text = format!(
        "# sipharness explore: a minimal failing schedule; replay with --replay\n# phone: {profile}\n# expect: fail {requirement}\n{schedule}"
    );
    match path {
        Some(path) => {
            std::fs::write(path, text).map_err(|e| format!("--save {}: {e}", path.display()))?;
            Ok(path.to_path_buf())
        }
        None => {
            let file = tempfile::Builder::new()
                .prefix(&format!("sipharness-{}-", schedule.id()))
                .suffix(".schedule")
                .tempfile()
                .and_then(|f| f.keep().map_err(|e| e.error))
                .map_err(|e| format!("cannot write the schedule to the temporary directory: {e}"))?;
            std::fs::write(&file.1, text).map_err(|e| format!("{}: {e}", file.1.display()))?;
            Ok(file.1)
        }
    }
}
