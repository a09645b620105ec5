//! Plays a schedule against a phone in a lab as the cases get one, checking after each settled step that the phone converged to the model and then keeps its steady state; the outcome is a case result.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::model::{World, expected_after, move_deadline, with_failback_rules};
use super::schedule::{Action, Schedule, Step};
use crate::case::{Case, CaseResult, CaseTrace, Needs, Verdict};
use crate::dut::{Profile, Stimulus};
use crate::error::{CaseError, HarnessError};
use crate::expect::{Invite, Request};
use crate::faults::Event;
use crate::lab::{Lab, LabSpec};
use crate::provision::Timers;
use crate::requirement::Requirement;
use crate::timing::Deadline;
use crate::topology::{Element, Party};
use crate::trace::{Direction, Transport};

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
    if schedule.registrar_service {
        ids.push(Requirement::F5);
    }
    ids.push(Requirement::C1);
    ids
}

/// The lab of a `registrar=srv` schedule: the registrar named by the registrars' SIP service
/// (NAPTR, SRV preferring registrar-a), as the F5 cases have it.
fn registrar_as_service(spec: &mut LabSpec) {
    spec.registrar_service = true;
}

/// The schedule as a case: its id, requirements, and what it needs of the phone, so its lab is
/// built (`runner::lab_spec`) and a profile's lacks are found as for every case (subscriptions on,
/// the fast timers, as the failover cases). Its body is never run: [`play`] drives the lab.
pub fn case_of(schedule: &Schedule) -> Case {
    let backups = schedule.configuration.has_backups();
    let has = |wanted: fn(&Action) -> bool| schedule.steps.iter().any(|s| wanted(&s.action));
    Case {
        id: schedule.id(),
        requirements: requirements(schedule),
        configuration: schedule.configuration,
        transport: schedule.transport,
        fault: None,
        needs: Needs {
            backup_registrar: backups && !schedule.registrar_service,
            backup_proxy: backups,
            subscriptions: true,
            dial: has(|a| *a == Action::Dial),
            reboot: has(|a| *a == Action::Reboot),
        },
        timers: Timers::fast(),
        lab: if schedule.registrar_service { registrar_as_service } else { crate::lab::standard_lab },
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
/// step, twice its longest deadline (a reboot's start-up included) and its steady window, so it
/// trips only on a livelock.
fn budget(schedule: &Schedule, lab: &Lab) -> Duration {
    let timing = lab.timing();
    let per_step = timing.startup().limit()
        + timing.failback().limit()
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
    // The last mid-move step that moved the phone: a settled step that moves nothing itself is
    // checked against that move (its bullet, and a failback's own rules): the phone must be
    // where that move put it.
    let mut pending_move: Option<usize> = None;
    for (index, step) in schedule.steps.iter().enumerate() {
        let number = index + 1;
        let step_began = Instant::now();
        let at_step = |e: CaseError| (number, named(e, &format!("at step {number} ({step})")));
        let before = &worlds[index];
        match step.action {
            Action::Dns { prefer } => change_dns(lab, before, prefer).await.map_err(at_step)?,
            _ => apply(lab, step).await.map_err(at_step)?,
        }
        let moved = move_deadline(before, step.change(), &timing);
        if !step.settle && number < total {
            let limit = moved.as_ref().map_or_else(|| timing.failback(), |(d, _)| d.clone());
            pending = Some(match pending.take() {
                Some(sum) => sum.and(limit.clone()),
                None => limit.clone(),
            });
            if before.placement() != worlds[number].placement() {
                pending_move = Some(index);
            }
            next_request(lab, limit.limit()).await;
            progress(format!("step {number}/{total} {step}: next step mid-move"));
            continue;
        }
        let expected = expected_after(before, step.change(), &timing);
        if step.action == Action::Dial
            && let Some(placement) = expected.placement
        {
            // The call reaches the active proxy, through the active outbound proxy (R1.1, R2.1,
            // R3.1 name INVITE; R1.3, R2.2, R3.2 where it moved).
            let mark = lab.mark();
            let invite = Invite::at(placement.proxy).requirement(expected.requirement).within(timing.dial());
            lab.expect(match placement.via {
                Some(outbound) => invite.via(outbound),
                None => invite,
            })
            .await
            .map_err(at_step)?;
            lab.look_from(mark);
        }
        let mut rules = expected.rules;
        let mut moved = moved;
        if let Some(earlier) = pending_move.take()
            && before.placement() == worlds[number].placement()
        {
            let change = schedule.steps[earlier].change();
            rules = with_failback_rules(rules, &worlds[earlier], change);
            if let (Some((_, requirement)), Some((_, cited))) =
                (moved.as_mut(), move_deadline(&worlds[earlier], change, &timing))
            {
                *requirement = cited;
            }
        }
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

/// Does what the step says to the lab or the phone (a DNS change is [`change_dns`]). A `reset`
/// or `restart` meets an idle phone ([`idle_phone`]).
async fn apply(lab: &mut Lab, step: &Step) -> Result<(), CaseError> {
    if let Action::Upset { .. } = step.action {
        idle_phone(lab, steady_window(lab)).await;
    }
    match step.action {
        Action::Fail { element, fault } => lab.fail(element, fault),
        Action::Restore { element } => lab.restore(element),
        Action::Upset { element, event } => lab.event(element, event),
        Action::Reboot => lab.stimulate(Stimulus::Reset).await?,
        Action::Dial => lab.stimulate(Stimulus::Dial(crate::provision::BLF_EXTENSION.into())).await?,
        Action::Dns { .. } => {}
    }
    Ok(())
}

/// F5, as the `dns.*.record-changes` cases judge it: the registrars' SRV records change to prefer
/// `prefer`; until the old answer's TTL ran out the phone may use either registrar (re-querying
/// early is allowed), and nothing else moves. Then a REGISTER needs the name again: any over UDP,
/// over TCP and TLS one that opens a connection, so the old registrar's flows are reset. The
/// step's check that follows wants the phone registered at `prefer` by its next REGISTER.
async fn change_dns(lab: &mut Lab, before: &World, prefer: Element) -> Result<(), CaseError> {
    let left = before.srv_prefers;
    let service = lab.topology.registrar_service();
    let (first, second) = (lab.topology.fqdn(prefer), lab.topology.fqdn(left));
    for (prefix, port) in [("_sip._udp", 5060), ("_sip._tcp", 5060), ("_sips._tcp", 5061)] {
        let records = [format!("10 60 {port} {first}."), format!("20 60 {port} {second}.")];
        let records: Vec<&str> = records.iter().map(String::as_str).collect();
        lab.zone()
            .set(&format!("{prefix}.{service}"), "SRV", crate::dns::SERVICE_TTL_S, &records)
            .await
            .map_err(|e| HarnessError::Other(format!("changing the SRV records: {e}")))?;
    }
    lab.note_action(Element::Dns, format!("zone: SRV prefers {prefer}"));
    lab.look_from(lab.trace().len());
    let timing = lab.timing().clone();
    let ttl = Duration::from_secs(crate::dns::SERVICE_TTL_S.into());
    let mut rules = before.expected(&timing).rules.registrar_may_change();
    rules.unused.retain(|(e, _)| !e.is_registrar());
    lab.hold(rules, ttl + timing.jitter() / 4).await?;
    if lab.provisioning.transport != Transport::Udp {
        lab.event(left, Event::Reset);
    }
    Ok(())
}

/// Waits (at most `limit`) for the phone to be idle, as the suites' `steps::settle` lets it be
/// before a one-off event: every REGISTER, SUBSCRIBE or other request it sent since the wait
/// began answered finally (probes aside: a failed element answers none), then 100 ms without a
/// new one. A request in flight on a connection the event resets fails with a transport error,
/// which RFC 3263 lets a phone take for a failed server (row 2: "any connection fails"), so the
/// event must meet an idle phone for the model to judge it (found by the explorer against
/// refphone, seed 31: `restart outbound-a` during a SUBSCRIBE refresh, a rightful move to the
/// backups). Not idle in time is no failure: the event is applied then.
async fn idle_phone(lab: &Lab, limit: Duration) {
    let topology = lab.topology.clone();
    let until = tokio::time::Instant::now() + limit;
    let mut open: HashSet<(String, u32)> = HashSet::new();
    // From a little before now, so requests already in flight are known.
    let mut from = lab.trace().len().saturating_sub(64);
    // Whether `event` leaves every tracked request of the phone answered (after a final answer).
    let track = |event: &crate::trace::TraceEvent, open: &mut HashSet<(String, u32)>| -> bool {
        let Some(message) = event.sip() else { return false };
        let phone = topology.party(event.remote.ip()) == Party::Phone;
        let Some(key) = message.call_id().ok().zip(message.cseq().ok()).map(|(c, q)| (c.to_owned(), q.seq)) else {
            return false;
        };
        let method = message.method().cloned();
        if event.direction == Direction::Received && phone && message.is_request() {
            if !matches!(method, Some(sip::Method::Options | sip::Method::Ack)) {
                open.insert(key);
            }
            return false;
        }
        if event.direction == Direction::Sent && phone && message.status().is_some_and(|s| s >= 200) {
            open.remove(&key);
            return open.is_empty();
        }
        false
    };
    loop {
        let Some(answered) = lab.trace().wait_for(from, until, |e| track(e, &mut open)).await else {
            tracing::debug!("the phone was not idle within {:.2} s of a one-off event", limit.as_secs_f64());
            return;
        };
        let quiet_until = (tokio::time::Instant::now() + Duration::from_millis(100)).min(until);
        let next = lab
            .trace()
            .wait_for(answered.index + 1, quiet_until, |e| {
                e.direction == Direction::Received
                    && topology.party(e.remote.ip()) == Party::Phone
                    && e.sip().is_some_and(|m| m.is_request())
            })
            .await;
        match next {
            None => return,
            Some(request) => from = request.index,
        }
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
