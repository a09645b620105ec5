//! `sipharness run`: the selected cases against a phone, their results as lines, JSON Lines and JUnit, and the exit code.

use std::io::Write as _;

use super::outputs::Outputs;
use super::progress::{Mode, Progress, stderr_is_terminal};
use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, Selection, usage_error};
use crate::case::{Case, CaseResult, Verdict};
use crate::dut::Profile;
use crate::runner::run_cases;

pub(super) fn run(
    catalog: Vec<Case>,
    selection: Selection<'_>,
    phone: &str,
    json: bool,
    jobs: usize,
    lab: Option<(std::sync::Arc<crate::topology::Topology>, &std::path::Path)>,
    outputs: &Outputs,
) -> u8 {
    let (lab, lab_file) = lab.unzip();
    let profile = match Profile::parse(phone) {
        Ok(p) => p,
        Err(e) => return usage_error(&e.to_string()),
    };
    if let Err(e) = profile.check(lab.as_deref()) {
        return usage_error(&e.to_string());
    }
    let selected: Vec<Case> = match selection.of(&catalog) {
        Ok(selected) => selected.into_iter().cloned().collect(),
        Err(message) => return usage_error(&message),
    };
    // Created now, so a report that cannot be written stops the run before any case starts.
    let mut writers = match outputs.open() {
        Ok(writers) => writers,
        Err(message) => return usage_error(&message),
    };
    let title = format!("sipharness run --phone {profile}");
    let started = std::time::Instant::now();
    if selected.is_empty() {
        return match writers.finish(&[], &title, started.elapsed()) {
            Ok(()) => EXIT_OK,
            Err(message) => usage_error(&message),
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return usage_error(&format!("cannot start the runtime: {e}")),
    };
    if let (Some(topology), Some(file)) = (&lab, lab_file)
        && let Err(e) = runtime.block_on(async { crate::lab::check_lab_file(topology) })
    {
        return usage_error(&format!("--lab {}: {e}", file.display()));
    }
    let capabilities = match profile.driver() {
        Ok(driver) => driver.capabilities().clone(),
        Err(e) => return usage_error(&e.to_string()),
    };
    let budgets: std::collections::HashMap<String, std::time::Duration> =
        selected.iter().map(|case| (case.id.clone(), crate::runner::case_budget(case, &capabilities))).collect();
    let results = runtime.block_on(async {
        let running = std::sync::Arc::new(crate::runner::Running::default());
        let progress = Progress::new(
            Mode::choose(json, stderr_is_terminal()),
            &budgets.values().copied().collect::<Vec<_>>(),
            crate::runner::jobs_at_once(&profile, lab.is_some(), jobs),
            running.clone(),
        );
        let rerun = rerun_command(&profile, lab_file);
        let work = run_cases(selected, &profile, lab, jobs, running.clone(), |result, finished, total| {
            progress.finished(result, budgets.get(&result.id).copied().unwrap_or_default());
            progress.print(|| print_result(result, Some(&rerun), json, Some((finished, total))));
            writers.add(result);
        });
        let results = tokio::select! {
            results = work => Some(results),
            () = interrupted() => None,
            () = progress.watch() => None,
        };
        progress.done();
        results
    });
    // Dropping the runtime drops every lab, which kills every phone it started.
    drop(runtime);
    let Some(results) = results else {
        writers.interrupted(&title, started.elapsed());
        let _ = writeln!(std::io::stderr(), "sipharness: interrupted; every phone was stopped and its files removed");
        return EXIT_USAGE;
    };
    if !json {
        print_summary(&results);
    }
    match writers.finish(&results, &title, started.elapsed()) {
        Ok(()) => exit_code(&results),
        Err(message) => usage_error(&message),
    }
}

/// SIGINT (Ctrl-C) or SIGTERM (a CI runner's stop): either way every lab is dropped, so every
/// phone is stopped and every case's temporary directory removed.
pub(super) async fn interrupted() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// The exit code BRIEF §5 gives a set of results.
pub fn exit_code(results: &[CaseResult]) -> u8 {
    if results.iter().any(|r| r.verdict == Verdict::Error) {
        EXIT_USAGE
    } else if results.iter().any(|r| matches!(r.verdict, Verdict::Fail | Verdict::Xpass)) {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

/// One result on stdout: a JSON line, or its verdict line (`[done/total]` when `position` is
/// given), its failures, its trace, and the command that reruns it when `rerun` is given.
pub(super) fn print_result(
    result: &CaseResult,
    rerun: Option<&dyn Fn(&str) -> String>,
    json: bool,
    position: Option<(usize, usize)>,
) {
    let mut out = std::io::stdout().lock();
    if json {
        let line = serde_json::to_string(&result.json()).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        return;
    }
    let position = position.map(|(done, total)| format!("[{done}/{total}] ")).unwrap_or_default();
    let _ = writeln!(
        out,
        "{position}{:<5} {}  ({:.2} s){}",
        result.verdict.label(),
        result.id,
        result.duration.as_secs_f64(),
        result.reason.as_deref().map(|n| format!("  {n}")).unwrap_or_default()
    );
    for failure in &result.failures {
        let _ = writeln!(out, "      {}", failure.to_string().replace('\n', "\n      "));
    }
    if matches!(result.verdict, Verdict::Fail | Verdict::Error) && !result.full_ladder.is_empty() {
        let _ = writeln!(out, "      trace:");
        for line in result.full_ladder.lines() {
            let _ = writeln!(out, "        {line}");
        }
    }
    if let Some(rerun) = rerun
        && matches!(result.verdict, Verdict::Fail | Verdict::Error | Verdict::Xpass)
    {
        let _ = writeln!(out, "      rerun alone: {}", rerun(&result.id));
    }
    let _ = out.flush();
}

/// The command that runs one case alone against the same profile on the same lab, quoted for a
/// POSIX shell.
fn rerun_command<'a>(profile: &'a Profile, lab_file: Option<&'a std::path::Path>) -> impl Fn(&str) -> String + 'a {
    fn quote(s: &str) -> String {
        if s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:=,/".contains(c)) {
            s.to_owned()
        } else {
            format!("'{}'", s.replace('\'', "'\\''"))
        }
    }
    move |id| {
        let mut command = format!("sipharness run {} --phone {}", quote(id), quote(&profile.to_string()));
        if let Some(file) = lab_file {
            command.push_str(&format!(" --lab {}", quote(&file.to_string_lossy())));
        }
        command
    }
}

fn print_summary(results: &[CaseResult]) {
    let count = |v: Verdict| results.iter().filter(|r| r.verdict == v).count();
    let _ = writeln!(
        std::io::stdout(),
        "{} passed, {} failed, {} errors, {} skipped, {} xfail, {} xpass",
        count(Verdict::Pass),
        count(Verdict::Fail),
        count(Verdict::Error),
        count(Verdict::Skip),
        count(Verdict::Xfail),
        count(Verdict::Xpass)
    );
}
