//! Plays a schedule against a phone in a lab as the cases get one, checking after each settled step that the phone converged to the model and then keeps its steady state; the outcome is a case result.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::model::move_deadline;
use super::schedule::{Action, Schedule, Step};
use crate::case::{Case, CaseResult, CaseTrace, Needs, Verdict};
use crate::dut::Profile;
use crate::error::{CaseError, HarnessError};
use crate::expect::Request;
use crate::lab::Lab;
use crate::provision::Timers;
use crate::requirement::Requirement;
use crate::timing::Deadline;
use crate::topology::{Element, Party};
use crate::trace::Direction;

/// A schedule's outcome: its result as a case's, and the step whose check failed.
#[derive(Debug, Clone)]
pub struct Played {
    pub result: CaseResult,
    /// The step whose check failed (0: the phone's start), when the verdict is `fail`.
    pub failed_step: Option<usize>,
}

impl Played {
    /// The requirement the failure cites, when it failed.
    pub fn failed_requirement(&self) -> Option<Requirement> {
        (self.result.verdict == Verdict::Fail).then(|| self.result.failures.first().map(|v| v.requirement)).flatten()
    }
}

/// The requirements an exploration of `schedule`'s configuration checks.
fn requirements(schedule: &Schedule) -> Vec<Requirement> {
    use crate::provision::Configuration::*;
    let mut ids = match schedule.configuration {
        NoOutbound => {
            vec![Requirement::R1_1, Requirement::R1_2, Requirement::R1_3, Requirement::R1_4, Requirement::R1_5]
        }
        FullBackup | FullBackupRfc5626 => {
            vec![Requirement::R2_1, Requirement::R2_2, Requirement::R2_3, Requirement::F1]
        }
        OutboundOnly | OutboundOnlyRfc5626 => {
            vec![Requirement::R3_1, Requirement::R3_2, Requirement::R3_3, Requirement::F1]
        }
    };
    ids.push(Requirement::C1);
    ids
}

/// The schedule as a case: its id, requirements, and what it needs of the phone, so its lab is
/// built (`runner::lab_spec`) and a profile's lacks are found as for every case (subscriptions on,
/// the fast timers, as the failover cases). Its body is never run: [`play`] drives the lab.
pub fn case_of(schedule: &Schedule) -> Case {
    let backups = schedule.configuration.has_backups();
    Case {
        id: schedule.id(),
        requirements: requirements(schedule),
        configuration: schedule.configuration,
        transport: schedule.transport,
        fault: None,
        needs: Needs { backup_registrar: backups, backup_proxy: backups, subscriptions: true, ..Needs::NONE },
        timers: Timers::fast(),
        lab: crate::lab::standard_lab,
        run: Arc::new(|_| Box::pin(async { Ok(()) })),
    }
}

/// Plays `schedule` against a fresh phone of `profile`; `progress` gets one line per step.
pub async fn play(schedule: &Schedule, profile: &Profile, progress: &mut (dyn FnMut(String) + Send)) -> Played {
    let case = case_of(schedule);
    let started = Instant::now();
    let dut = match profile.driver() {
        Ok(dut) => dut,
        Err(e) => return unplayed(&case, Verdict::Error, e.to_string()),
    };
    if let Some(reason) = dut.capabilities().lacks(&case, &profile.to_string()) {
        return unplayed(&case, Verdict::Skip, reason);
    }
    let spec = crate::runner::lab_spec(&case, profile, None);
    let mut lab = match Lab::start(&spec, dut).await {
        Ok(lab) => lab,
        Err(e) => return unplayed(&case, Verdict::Error, e.to_string()),
    };
    let budget = budget(schedule, &lab);
    let outcome = match tokio::time::timeout(budget, walk(&mut lab, schedule, progress)).await {
        Ok(outcome) => outcome,
        Err(_) => Err((schedule.steps.len(), HarnessError::Watchdog { budget_s: budget.as_secs_f64() }.into())),
    };
    lab.shutdown().await;
    let (verdict, failures, reason, failed_step) = match outcome {
        Ok(()) => (Verdict::Pass, Vec::new(), None, None),
        Err((step, CaseError::Violation(v))) => (Verdict::Fail, vec![*v], None, Some(step)),
        Err((_, CaseError::Harness(e))) => (Verdict::Error, Vec::new(), Some(e.to_string()), None),
    };
    let trace = CaseTrace::of(&lab);
    let result = CaseResult {
        id: case.id.clone(),
        verdict,
        duration: started.elapsed(),
        waited: lab.waited(),
        failures,
        reason,
        ladder: lab.ladder(),
        full_ladder: lab.full_ladder(),
        requirements: case.requirements.clone(),
        trace: Some(Arc::new(trace)),
    };
    Played { result, failed_step }
}

fn unplayed(case: &Case, verdict: Verdict, reason: String) -> Played {
    Played { result: CaseResult::without_lab(case, verdict, reason), failed_step: None }
}

/// The watchdog's budget: the lab's own (start-up and a case's worth of moves) plus, for every
/// step, twice its longest deadline and its steady window, so it trips only on a livelock.
fn budget(schedule: &Schedule, lab: &Lab) -> Duration {
    let timing = lab.timing();
    let per_step = timing.failback().limit()
        + timing.registrar_failover(timing.detect(crate::faults::Fault::Silent)).limit()
        + timing.timers.registration_retry
        + timing.steady_window();
    lab.budget() + per_step * 2 * u32::try_from(schedule.steps.len()).unwrap_or(u32::MAX)
}

/// The hold after each settled step: the suites' steady window, two refresh intervals at the
/// refresh point (2 s with the fast timers), so at least one refresh of every binding and
/// subscription and one probe interval fall inside it: a phone breaking a steady rule (a
/// request to a failed element other than a probe, a second binding, a move back) shows there.
fn steady_window(lab: &Lab) -> Duration {
    lab.timing().steady_window()
}

/// The schedule step by step; an error names the step whose check failed.
async fn walk(
    lab: &mut Lab,
    schedule: &Schedule,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<(), (usize, CaseError)> {
    let timing = lab.timing().clone();
    let worlds = schedule.worlds();
    let total = schedule.steps.len();
    // The start (R1.1, R2.1, R3.1): everything at the primaries, nothing at any other element.
    let start = worlds[0].expected(&timing);
    if let Some(placement) = start.placement {
        let at_start = |e: CaseError| (0, named(e, "at the start"));
        lab.expect_all(placement.everything(true, start.requirement, &timing.startup())).await.map_err(at_start)?;
        for element in Element::SIP.into_iter().filter(|e| !placement.elements().contains(e)) {
            lab.expect_none_so_far(
                &Request::at(element).requirement(start.requirement),
                &format!("nothing at {element} while the primaries work"),
            )
            .map_err(at_start)?;
        }
    }
    progress(format!("{}: started at the primaries", schedule.id()));
    // The deadlines of mid-move steps not yet checked: the check after the next settled step
    // allows their sum on top of its own (each move may have to finish before the next).
    let mut pending: Option<Deadline> = None;
    for (index, step) in schedule.steps.iter().enumerate() {
        let number = index + 1;
        let step_began = Instant::now();
        let at_step = |e: CaseError| (number, named(e, &format!("at step {number} ({step})")));
        apply(lab, step);
        let moved = move_deadline(&worlds[index], step.change(), &timing);
        if !step.settle && number < total {
            let limit = moved.as_ref().map_or_else(|| timing.failback(), |(d, _)| d.clone());
            pending = Some(match pending.take() {
                Some(sum) => sum.and(limit.clone()),
                None => limit.clone(),
            });
            next_request(lab, limit.limit()).await;
            progress(format!("step {number}/{total} {step}: next step mid-move"));
            continue;
        }
        let expected = worlds[number].expected(&timing);
        let mut rules = expected.rules;
        match (expected.placement, moved) {
            (Some(placement), Some((deadline, requirement))) => {
                let deadline = match pending.take() {
                    Some(sum) => sum.and(deadline),
                    None => deadline,
                };
                lab.expect_all(placement.everything(true, requirement, &deadline)).await.map_err(at_step)?;
            }
            _ => {
                // Nowhere to converge to (both of a pair down). While earlier moves may still be
                // under way only the retry limits are judged.
                if pending.take().is_some() {
                    rules.failed.clear();
                    rules.unused.clear();
                    rules = rules.registrar_may_change();
                }
            }
        }
        lab.hold(rules, steady_window(lab)).await.map_err(at_step)?;
        progress(format!("step {number}/{total} {step}: ok ({:.1} s)", step_began.elapsed().as_secs_f64()));
    }
    Ok(())
}

/// The violation's message names where it was found (the step number, so the shrunk schedule's
/// lines can be read against it).
fn named(error: CaseError, at: &str) -> CaseError {
    match error {
        CaseError::Violation(mut v) => {
            v.message = format!("{at}: {}", v.message);
            CaseError::Violation(v)
        }
        other => other,
    }
}

fn apply(lab: &mut Lab, step: &Step) {
    match step.action {
        Action::Fail { element, fault } => lab.fail(element, fault),
        Action::Restore { element } => lab.restore(element),
    }
}

/// Waits (at most `limit`) for the phone's next request to any element: the moment a mid-move
/// step's successor hits it. No request in time is no failure; the check comes later.
async fn next_request(lab: &Lab, limit: Duration) {
    let topology = lab.topology.clone();
    let from = lab.trace().len();
    let until = tokio::time::Instant::now() + limit;
    let found = lab
        .trace()
        .wait_for(from, until, |e| {
            e.direction == Direction::Received
                && e.sip().is_some_and(|m| m.is_request())
                && topology.party(e.remote.ip()) == Party::Phone
        })
        .await;
    if found.is_none() {
        tracing::debug!("no request from the phone within {:.2} s of a mid-move step", limit.as_secs_f64());
    }
}
