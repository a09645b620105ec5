//! What a long run says while it runs: a progress bar for a person at a terminal, a line now and then in a log while a case waits long.

use std::io::{IsTerminal as _, Write as _};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::case::{CaseResult, Verdict};
use crate::runner::Running;

/// How often a log hears what still runs (a real phone's case takes minutes).
const LINE_EVERY: Duration = Duration::from_secs(30);

/// How often the bar's counts and running cases are redrawn.
const BAR_EVERY: Duration = Duration::from_secs(1);

/// How a run shows its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// A bar on stderr: stderr is a terminal and stdout is not JSON Lines.
    Bar,
    /// Every [`LINE_EVERY`], while a case has run half that long, one line on stderr naming what
    /// runs: a log (CI, `--json` into a pipe) shows that a long wait on a phone is no hang, and
    /// stays quiet while cases finish quickly.
    Lines,
}

impl Mode {
    pub(super) fn choose(json: bool, stderr_is_terminal: bool) -> Mode {
        if stderr_is_terminal && !json { Mode::Bar } else { Mode::Lines }
    }
}

/// A run's progress: cases done, passing and failing, what runs, and the time left.
pub(super) struct Progress {
    mode: Mode,
    bar: ProgressBar,
    running: Arc<Running>,
    jobs: usize,
    tally: Mutex<Tally>,
}

/// What the finished cases say about the rest.
#[derive(Debug, Default)]
struct Tally {
    done: usize,
    passed: usize,
    /// fail, error and xpass: what makes the run fail.
    failing: usize,
    /// The watchdog budgets of the cases not finished yet.
    budget_left: Duration,
    /// Of the finished cases that ran a lab, their budgets and how long they took.
    budget_used: Duration,
    took: Duration,
}

impl Tally {
    /// The time left: the budgets still to run, scaled by how much of its budget a finished case
    /// took, over the cases run at once. Before any case finished, the budgets alone: an upper
    /// bound (`at most`).
    fn time_left(&self, jobs: usize) -> (Duration, bool) {
        let jobs = jobs.max(1) as u32;
        if self.budget_used.is_zero() {
            return (self.budget_left / jobs, true);
        }
        let share = self.took.as_secs_f64() / self.budget_used.as_secs_f64();
        (self.budget_left.mul_f64(share.min(1.0)) / jobs, false)
    }
}

impl Progress {
    /// `budgets`: each selected case's watchdog budget; `jobs`: how many run at once.
    pub(super) fn new(mode: Mode, budgets: &[Duration], jobs: usize, running: Arc<Running>) -> Progress {
        let total = budgets.len() as u64;
        let bar = match mode {
            Mode::Bar => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
            Mode::Lines => ProgressBar::hidden(),
        };
        bar.set_style(
            ProgressStyle::with_template("{elapsed:>4} [{bar:24}] {pos}/{len} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let tally = Tally { budget_left: budgets.iter().sum(), ..Tally::default() };
        Progress { mode, bar, running, jobs, tally: Mutex::new(tally) }
    }

    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a finished case with its budget.
    pub(super) fn finished(&self, result: &CaseResult, budget: Duration) {
        let mut tally = self.tally();
        tally.done += 1;
        match result.verdict {
            Verdict::Pass => tally.passed += 1,
            Verdict::Fail | Verdict::Error | Verdict::Xpass => tally.failing += 1,
            Verdict::Skip | Verdict::Xfail => {}
        }
        tally.budget_left = tally.budget_left.saturating_sub(budget);
        if result.trace.is_some() {
            tally.budget_used += budget;
            tally.took += result.duration;
        }
        drop(tally);
        self.bar.inc(1);
        self.redraw();
    }

    /// Writes on stdout without tearing the bar.
    pub(super) fn print(&self, write: impl FnOnce()) {
        self.bar.suspend(write);
    }

    /// Redraws the bar, or writes a line when a case has waited long; never returns.
    pub(super) async fn watch(&self) {
        let every = match self.mode {
            Mode::Bar => BAR_EVERY,
            Mode::Lines => LINE_EVERY,
        };
        let mut ticks = tokio::time::interval(every);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            match self.mode {
                Mode::Bar => self.redraw(),
                Mode::Lines => self.line(),
            }
        }
    }

    /// Clears the bar before the summary.
    pub(super) fn done(&self) {
        self.bar.finish_and_clear();
    }

    fn redraw(&self) {
        if self.mode == Mode::Bar {
            self.bar.set_message(self.message());
        }
    }

    fn message(&self) -> String {
        let tally = self.tally();
        let (left, upper_bound) = tally.time_left(self.jobs);
        let left = humantime(left);
        let left = if upper_bound { format!("at most {left} left") } else { format!("about {left} left") };
        let mut message = format!("{} passed, {} failing; {left}", tally.passed, tally.failing);
        drop(tally);
        // Last, since a narrow terminal cuts the line there.
        let running = self.running.snapshot();
        if let Some((longest, ran)) = running.first() {
            message.push_str(&format!("; running {}: {longest} ({} s)", running.len(), ran.as_secs()));
        }
        message
    }

    /// The line a log gets while a case has run at least half of [`LINE_EVERY`].
    fn line(&self) {
        let cases = self.running.snapshot();
        if cases.first().is_none_or(|(_, ran)| *ran < LINE_EVERY / 2) {
            return;
        }
        let named: Vec<String> = cases.iter().map(|(id, ran)| format!("{id} ({} s)", ran.as_secs())).collect();
        let done = self.tally().done;
        let total = self.bar.length().unwrap_or_default();
        let _ = writeln!(std::io::stderr(), "sipharness: {done}/{total} done; running: {}", named.join(", "));
    }
}

/// `1h 02m`, `3m 05s`, `42s`.
fn humantime(duration: Duration) -> String {
    let s = duration.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Whether stderr is a person's terminal.
pub(super) fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_only_for_a_terminal_and_never_with_json() {
        assert_eq!(Mode::choose(false, true), Mode::Bar);
        assert_eq!(Mode::choose(true, true), Mode::Lines);
        assert_eq!(Mode::choose(false, false), Mode::Lines);
        assert_eq!(Mode::choose(true, false), Mode::Lines);
    }

    #[test]
    fn time_left_is_the_budgets_scaled_by_what_finished_cases_used() {
        let mut tally = Tally { budget_left: Duration::from_secs(400), ..Tally::default() };
        // Nothing finished: the budgets over the jobs, an upper bound.
        assert_eq!(tally.time_left(4), (Duration::from_secs(100), true));
        // Cases took a quarter of their budgets so far.
        tally.budget_used = Duration::from_secs(80);
        tally.took = Duration::from_secs(20);
        assert_eq!(tally.time_left(4), (Duration::from_secs(25), false));
        // A case past its budget (the watchdog's own margin) never scales the rest up.
        tally.took = Duration::from_secs(160);
        assert_eq!(tally.time_left(1), (Duration::from_secs(400), false));
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(humantime(Duration::from_secs(42)), "42s");
        assert_eq!(humantime(Duration::from_secs(185)), "3m 05s");
        assert_eq!(humantime(Duration::from_secs(3720)), "1h 02m");
    }
}
