//! Shrinking: a failing schedule made as short and plain as it can be while it still fails the same requirement (twice in a row, so a flake is not kept), each candidate replayed against the phone, within a cap on replays and time.

use std::time::{Duration, Instant};

use super::runner::{Played, play};
use super::schedule::{Action, Schedule};
use crate::dut::Profile;
use crate::faults::Fault;

/// How much replaying a shrink may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub replays: usize,
    pub time: Duration,
}

impl Default for Limits {
    /// 40 replays or 10 minutes: a schedule of 20 steps shrinks to its core in far fewer.
    fn default() -> Limits {
        Limits { replays: 40, time: Duration::from_secs(600) }
    }
}

/// The smallest failing schedule found and what it cost.
#[derive(Debug, Clone)]
pub struct Shrunk {
    pub schedule: Schedule,
    pub played: Played,
    pub replays: usize,
    pub elapsed: Duration,
    /// Whether one more replay of the final schedule failed the same requirement again.
    pub confirmed: bool,
}

/// The steps up to the one whose check failed: the steps after it were never played.
pub fn truncated(schedule: &Schedule, failed_step: usize) -> Schedule {
    let mut cut = schedule.clone();
    cut.steps.truncate(failed_step);
    cut
}

/// Simpler schedules to try, most promising first: every step that is no fault or restore (DNS
/// changes, reboots, calls, resets, restarts) dropped at once, then a fail dropped with its
/// restore (the biggest cut), then a single step, then a mid-move step made settled, then a
/// fault made plainer
/// (`refuse` and `reject` to `silent`: no answer at all, the fault every phone finds by its
/// transaction timer; `reject 408` to `reject 503`). Only valid schedules (nothing restored
/// that is not failed) are offered.
pub fn candidates(schedule: &Schedule) -> Vec<Schedule> {
    let mut out = Vec::new();
    let steps = &schedule.steps;
    let without = |drop: &[usize]| Schedule {
        steps: steps.iter().enumerate().filter(|(i, _)| !drop.contains(i)).map(|(_, s)| *s).collect(),
        ..schedule.clone()
    };
    let extras: Vec<usize> = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| !matches!(s.action, Action::Fail { .. } | Action::Restore { .. }))
        .map(|(i, _)| i)
        .collect();
    if !extras.is_empty() {
        out.push(without(&extras));
    }
    for (i, step) in steps.iter().enumerate() {
        if let Action::Fail { element, .. } = step.action {
            let restore = steps
                .iter()
                .enumerate()
                .skip(i + 1)
                .find(|(_, s)| s.action == Action::Restore { element })
                .map(|(j, _)| j);
            if let Some(j) = restore {
                out.push(without(&[i, j]));
            }
        }
    }
    for i in 0..steps.len() {
        out.push(without(&[i]));
    }
    for (i, step) in steps.iter().enumerate() {
        if !step.settle {
            let mut settled = schedule.clone();
            settled.steps[i].settle = true;
            out.push(settled);
        }
        if let Action::Fail { element, fault } = step.action {
            let plainer = match fault {
                Fault::Refuse | Fault::Reject { code: 503, .. } => Some(Fault::Silent),
                Fault::Reject { .. } => Some(Fault::reject(503)),
                _ => None,
            };
            if let Some(fault) = plainer {
                let mut simpler = schedule.clone();
                simpler.steps[i].action = Action::Fail { element, fault };
                out.push(simpler);
            }
        }
    }
    out.retain(|c| c.check().is_ok() && c != schedule);
    out.dedup();
    out
}

/// Shrinks `failing` (already played: `played`) against `profile`: each candidate is a full
/// replay, and counts as failing only when it fails the same requirement on a second replay too
/// (a timing flake does not shrink the schedule to something that passes); the first that does
/// restarts the search from it. Stops when no candidate fails, or at `limits` (both replays
/// count). The result is replayed once more (`confirmed`), beyond the limits.
pub async fn shrink(
    failing: &Schedule,
    played: Played,
    profile: &Profile,
    limits: Limits,
    progress: &mut (dyn FnMut(String) + Send),
) -> Shrunk {
    let started = Instant::now();
    let requirement = played.failed_requirement();
    let mut best = truncated(failing, played.failed_step.unwrap_or(failing.steps.len()));
    let mut best_played = played;
    let mut replays = 0;
    let fails_the_same =
        |outcome: &Played| outcome.failed_requirement().is_some() && outcome.failed_requirement() == requirement;
    'search: loop {
        for candidate in candidates(&best) {
            if replays + 2 > limits.replays || started.elapsed() >= limits.time {
                progress(format!(
                    "shrink: stopped at the limit ({replays} replays, {:.0} s)",
                    started.elapsed().as_secs_f64()
                ));
                break 'search;
            }
            replays += 1;
            let outcome = play(&candidate, profile, &mut |_| {}).await;
            let mut same = fails_the_same(&outcome);
            if same {
                replays += 1;
                same = fails_the_same(&play(&candidate, profile, &mut |_| {}).await);
            }
            progress(format!(
                "shrink: replay {replays}, {} steps: {}",
                candidate.steps.len(),
                if same { "still fails, twice" } else { "passes (or fails otherwise, or only once)" }
            ));
            if same {
                best = truncated(&candidate, outcome.failed_step.unwrap_or(candidate.steps.len()));
                best_played = outcome;
                continue 'search;
            }
        }
        break;
    }
    let confirmation = play(&best, profile, &mut |_| {}).await;
    let confirmed = fails_the_same(&confirmation);
    progress(format!(
        "shrink: the final {} steps replayed once more: {}",
        best.steps.len(),
        if confirmed { "fails the same requirement" } else { "did not fail the same requirement (a flaky failure)" }
    ));
    if confirmed {
        best_played = confirmation;
    }
    Shrunk { schedule: best, played: best_played, replays, elapsed: started.elapsed(), confirmed }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_valid_and_simpler() {
        let schedule = Schedule::parse(
            "schedule no-outbound udp seed=1\nstep 1 fail registrar-a refuse mid-move\nstep 2 fail proxy-a reject 503\n\
             step 3 restore registrar-a\nstep 4 restore proxy-a\n",
        )
        .unwrap();
        let all = candidates(&schedule);
        // Pairs first: registrar-a's fail and restore, then proxy-a's.
        assert_eq!(
            all[0].to_string(),
            "schedule no-outbound udp seed=1\nstep 1 fail proxy-a reject 503\nstep 2 restore proxy-a\n"
        );
        assert_eq!(all[1].steps.len(), 2);
        // Dropping a fail alone leaves its restore invalid: never offered.
        assert!(all.iter().all(|c| c.check().is_ok()));
        assert!(all.iter().any(|c| c.steps.len() == 3));
        assert!(all.iter().any(|c| c.steps.iter().all(|s| s.settle) && c.steps.len() == 4));
        assert!(
            all.iter().any(
                |c| c.steps[0].action == Action::Fail { element: crate::Element::RegistrarA, fault: Fault::Silent }
            )
        );
        assert!(!all.contains(&schedule));
    }

    #[test]
    fn the_steps_that_are_no_faults_go_first_and_together() {
        let schedule = Schedule::parse(
            "schedule no-outbound tcp registrar=srv\nstep 1 dial\nstep 2 fail proxy-a silent\nstep 3 reboot\n\
             step 4 dns prefer registrar-b\nstep 5 restart proxy-b\nstep 6 restore proxy-a\n",
        )
        .unwrap();
        let all = candidates(&schedule);
        assert_eq!(
            all[0].to_string(),
            "schedule no-outbound tcp registrar=srv\nstep 1 fail proxy-a silent\nstep 2 restore proxy-a\n"
        );
        assert!(all.iter().all(|c| c.check().is_ok()));
        assert!(all.iter().any(|c| c.steps.len() == 5 && !c.steps.iter().any(|s| s.action == Action::Dial)));
    }

    #[test]
    fn truncation_keeps_the_failing_step() {
        let schedule = Schedule::generate(3, 10);
        assert_eq!(truncated(&schedule, 4).steps, schedule.steps[..4]);
        assert!(truncated(&schedule, 0).steps.is_empty());
    }
}
