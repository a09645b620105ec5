//! Failover: the servers break, the phone must move its registration, AOR and subscriptions as the seed's table says, hold still while the primary is down, and move back.

mod table;
mod walks;

use std::sync::Arc;
use std::time::Duration;

use harness::{
    Case, CaseError, Deadline, Element, Fault, Lab, Register, Requirement, SteadyRules, Subscribe, Timers, Transport,
};

use crate::steps::{PACKAGES, new_dialogs, starts_at, stays_at};
pub use table::{ROWS, Release, Row};

/// How long a 503's Retry-After asks the phone to wait: longer than the probe interval and the
/// steady window, so a phone that ignores it is seen probing inside it.
pub const RETRY_AFTER_S: u32 = 4;

/// The lasting faults every row is run with: one per detection path of the phone.
pub const FAULTS: [Fault; 6] = [
    Fault::Silent,
    Fault::Refuse,
    Fault::Reject { code: 503, retry_after: None },
    Fault::Reject { code: 408, retry_after: None },
    Fault::Reject { code: 503, retry_after: Some(RETRY_AFTER_S) },
    Fault::Stall,
];

/// The faults rows 2 and 3 also run with SIP outbound on: one per way a flow dies (no answer,
/// closed, an answer that means failed, a flow black-holed while new ones are served).
pub const RFC5626_FAULTS: [Fault; 4] =
    [Fault::Silent, Fault::Refuse, Fault::Reject { code: 503, retry_after: None }, Fault::Stall];

/// Every transport a case runs over.
pub const TRANSPORTS: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Tls];

/// The timers a case provisions for `fault`: with `refuse`, a transaction timer of at least four
/// times the scheduling jitter, so detection by ICMP and by the timer are told apart.
pub fn timers_for(fault: Fault) -> Timers {
    let mut timers = Timers::fast();
    if fault == Fault::Refuse {
        timers.transaction_timer = timers.transaction_timer.max(harness::timing::SCHEDULING_JITTER * 4);
    }
    timers
}

pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for row in ROWS {
        for transport in TRANSPORTS {
            for fault in FAULTS {
                cases.push(row_case(row, fault, transport, None));
            }
            // A fault on the case's own transport only: the phone sees the same failure. (Behind an
            // outbound proxy the element is reached over the proxy's UDP, not the phone's transport.)
            let on_phone_hop = row.before.via.is_none() || row.before.via == Some(row.fails);
            if transport != Transport::Udp && on_phone_hop {
                cases.push(row_case(row, Fault::Silent, transport, Some(transport)));
            }
            cases.push(slow_primary_case(row, transport));
            if row.configuration.has_outbound_proxies() {
                // Rows 2 and 3 with RFC 5626 flows (BRIEF §2: only row 1 says outbound is off).
                let row = Row { configuration: row.configuration.with_sip_outbound(), ..row };
                for fault in RFC5626_FAULTS {
                    cases.push(row_case(row, fault, transport, None));
                }
            }
        }
    }
    cases.extend(TRANSPORTS.map(answers_430_case));
    cases.extend(walks::cases());
    cases.extend(walks::both_down_cases());
    cases
}

fn row_case(row: Row, fault: Fault, transport: Transport, only: Option<Transport>) -> Case {
    let mut segment = fault.id_segment();
    if only.is_some() {
        segment.push_str("-only");
    }
    let mut requirements = vec![row.start, row.moved, row.returned, Requirement::C1];
    requirements.extend(outbound_requirements(row.configuration));
    if let Fault::Reject { retry_after: Some(_), .. } = fault {
        requirements.push(Requirement::Rfc3261_21_5_4);
    }
    Case {
        id: format!("failover.{}.{}.{segment}.{transport}", row.configuration.id_segment(), row.behaviour),
        requirements,
        configuration: row.configuration,
        transport,
        fault: Some(fault),
        needs: row.needs,
        timers: timers_for(fault),
        lab: harness::standard_lab,
        run: Arc::new(move |lab| Box::pin(fail_and_return(lab, row, fault, only, Calls::None))),
    }
}

/// F1 in every case whose phone has a backup outbound proxy, F2 in every case with SIP outbound on.
pub(crate) fn outbound_requirements(configuration: harness::Configuration) -> Vec<Requirement> {
    let mut requirements = Vec::new();
    if configuration.has_outbound_proxies() {
        requirements.push(Requirement::F1);
    }
    if configuration.sip_outbound() {
        requirements.push(Requirement::F2);
    }
    requirements
}

/// The deadline for the move after `row.fails` breaks with `fault`.
fn failover_deadline(lab: &Lab, row: &Row, fault: Fault) -> Deadline {
    let timing = lab.timing();
    let detect = if row.before.via.is_some() && row.before.via != Some(row.fails) {
        timing.detect_through_outbound(fault)
    } else {
        timing.detect(fault)
    };
    if row.fails.is_registrar() {
        timing.registrar_failover(detect)
    } else if row.fails.is_proxy() {
        timing.proxy_failover(detect)
    } else {
        timing.outbound_failover(fault, row.subscriptions)
    }
}

/// Whether the story places a call in each of its phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calls {
    None,
    /// A `Dial:` once the phone settled before the failure, after the move, and after the return:
    /// each INVITE at the phase's proxy, through its outbound proxy (R1.1, R2.1, R3.1 name INVITE).
    EachPhase,
}

/// Dials, and waits for the INVITE at the placement's proxy through its outbound proxy.
async fn call_reaches(
    lab: &mut Lab,
    placement: crate::steps::Placement,
    requirement: Requirement,
) -> Result<(), CaseError> {
    lab.stimulate(harness::dut::Stimulus::Dial(harness::provision::BLF_EXTENSION.into())).await?;
    let invite = harness::Invite::at(placement.proxy).requirement(requirement).within(lab.timing().dial());
    lab.expect(match placement.via {
        Some(outbound) => invite.via(outbound),
        None => invite,
    })
    .await?;
    Ok(())
}

/// The row's story: primary first; the primary fails and the phone moves; it holds still while
/// the primary is down; the primary returns and the phone moves back and releases the backups.
pub async fn fail_and_return(
    lab: &mut Lab,
    row: Row,
    fault: Fault,
    only: Option<Transport>,
    calls: Calls,
) -> Result<(), CaseError> {
    let target = harness::FaultTarget { element: row.fails, transport: only };
    let before = starts_at(lab, row.before, row.subscriptions, row.start).await?;
    if calls == Calls::EachPhase {
        call_reaches(lab, row.before, row.start).await?;
    }
    lab.fail(target, fault);
    let failed_at = lab.trace().now();
    let deadline = failover_deadline(lab, &row, fault);
    let moved = lab.expect_all(row.after.everything(row.subscriptions, row.moved, &deadline)).await?;
    if row.after.proxy != row.before.proxy || row.after.via != row.before.via {
        new_dialogs(&before, &moved, row.moved)?;
    }
    // Steady state while the primary is down (BRIEF §2): nothing to it but probes, one per
    // interval; bindings only at the active registrar; no move back. A stalled primary serves
    // new flows (a new connection, a new UDP source port), so a phone that opens one rightly
    // finds it working and may move back before the restore: nothing to hold there, and the
    // moves back are looked for from the move on.
    let moved_mark = lab.mark();
    // RFC 3261 §21.5.4: nothing at all to the server before its Retry-After has passed, counted
    // from its first 503.
    let retry_after_ends = match fault {
        Fault::Reject { code, retry_after: Some(seconds) } => {
            first_rejection(lab, row.fails, code, failed_at).map(|at| at + Duration::from_secs(seconds.into()))
        }
        _ => None,
    };
    if fault != Fault::Stall {
        let timing = lab.timing().clone();
        let mut rules =
            SteadyRules::new(row.after.registrar, row.moved, timing.probe_spacing()).failed(row.fails, row.moved);
        if let Some(until) = retry_after_ends {
            rules = rules.quiet_until(row.fails, until, Requirement::Rfc3261_21_5_4);
        }
        lab.hold(rules, timing.steady_window()).await?;
    }
    if calls == Calls::EachPhase {
        call_reaches(lab, row.after, row.moved).await?;
    }
    lab.restore(target);
    if fault == Fault::Stall {
        lab.look_from(moved_mark);
    }
    // Restored before a 503's Retry-After ran out, the server that answered it gets the phone back
    // only after it (a lower bound), and the deadline carries the rest of it.
    let retry_after_rest = retry_after_ends
        .map(|until| Deadline::of("the rest of the 503's Retry-After", until.saturating_sub(lab.trace().now())));
    let mut deadline = lab.timing().failback();
    if let Some(rest) = &retry_after_rest {
        deadline = deadline.and(rest.clone());
    }
    let mut back: Vec<_> = row
        .before
        .everything(row.subscriptions, row.returned, &deadline)
        .into_iter()
        .map(|e| match &retry_after_rest {
            Some(rest) if e.at == row.fails || e.via == Some(row.fails) => {
                e.not_before(rest.clone()).requirement(Requirement::Rfc3261_21_5_4)
            }
            _ => e,
        })
        .collect();
    for release in row.releases {
        back.extend(release_expectations(*release, row.returned, &deadline, &moved));
    }
    let returned = lab.expect_all(back).await?;
    if row.after.proxy != row.before.proxy || row.after.via != row.before.via {
        new_dialogs(&moved, &returned, row.returned)?;
    }
    // Settled back: bindings only at the primary registrar, nothing to the elements it left.
    let timing = lab.timing().clone();
    let mut rules = SteadyRules::new(row.before.registrar, row.returned, timing.probe_spacing());
    for element in row.after.elements().into_iter().filter(|e| !row.before.elements().contains(e)) {
        rules = rules.unused(element, row.returned);
    }
    lab.hold(rules, timing.steady_window()).await?;
    if calls == Calls::EachPhase {
        call_reaches(lab, row.before, row.returned).await?;
    }
    Ok(())
}

/// When the failed element first answered `code` after the fault: the start of its Retry-After.
fn first_rejection(lab: &Lab, element: Element, code: u16, after: Duration) -> Option<Duration> {
    lab.trace().snapshot().into_iter().find_map(|e| {
        let rejected = e.element == element
            && e.at >= after
            && e.direction == harness::trace::Direction::Sent
            && e.sip().is_some_and(|m| m.status() == Some(code));
        rejected.then_some(e.at)
    })
}

/// The un-REGISTER or un-SUBSCRIBEs a failback owes, over the hop that made what they remove.
/// `made` are the events that made the subscriptions (their accepting 2xx): an un-SUBSCRIBE
/// must end one of those dialogs, not any dialog.
pub(crate) fn release_expectations(
    release: Release,
    requirement: Requirement,
    deadline: &Deadline,
    made: &[harness::TraceEvent],
) -> Vec<harness::Expect> {
    let hop = |e: harness::Expect, via: Option<Element>| match via {
        Some(outbound) => e.via(outbound),
        None => e,
    };
    match release {
        Release::Binding { registrar, aor_of, via } => vec![hop(
            Register::removed_at(registrar).aor_of(aor_of).requirement(requirement).within(deadline.clone()),
            via,
        )],
        Release::Subscriptions { proxy, via } => {
            let dialogs: Vec<String> = made
                .iter()
                .filter(|e| e.element == proxy)
                .filter_map(|e| e.sip().and_then(|m| m.call_id().ok().map(str::to_owned)))
                .collect();
            PACKAGES
                .into_iter()
                .map(|package| {
                    let ended = Subscribe::ended_at(proxy, package).requirement(requirement).within(deadline.clone());
                    hop(if dialogs.is_empty() { ended } else { ended.in_dialogs(dialogs.clone()) }, via)
                })
                .collect()
        }
    }
}

/// A slow but healthy primary (`delay`, half the transaction timer) is not failed: the phone
/// stays at the primaries (R1.1, R2.1, R3.1: primary first while it works).
fn slow_primary_case(row: Row, transport: Transport) -> Case {
    let fault = Fault::Delay { ms: (Timers::fast().transaction_timer / 2).as_millis() as u32 };
    not_failed_case(row, &row.behaviour.replace("-fails", "-slow"), fault, transport)
}

/// A 430 (Flow Failed) the phone receives is treated as 400 (RFC 5626 §11: the edge proxy sends
/// it towards the authoritative proxy, never to a UA): no failure, nothing moves (R2.1).
fn answers_430_case(transport: Transport) -> Case {
    not_failed_case(ROWS[2], "primary-outbound-answers-430", Fault::reject(430), transport)
}

fn not_failed_case(row: Row, behaviour: &str, fault: Fault, transport: Transport) -> Case {
    Case {
        id: format!("failover.{}.{behaviour}.{}.{transport}", row.configuration.id_segment(), fault.id_segment()),
        requirements: [vec![row.start, Requirement::C1], outbound_requirements(row.configuration)].concat(),
        configuration: row.configuration,
        transport,
        fault: Some(fault),
        needs: row.needs,
        timers: Timers::fast(),
        lab: harness::standard_lab,
        run: Arc::new(move |lab| Box::pin(not_failed(lab, row, fault))),
    }
}

/// The primary answers (late, or with an answer that is no server failure): the phone keeps
/// everything at the primaries and sends nothing to the other elements.
async fn not_failed(lab: &mut Lab, row: Row, fault: Fault) -> Result<(), CaseError> {
    starts_at(lab, row.before, row.subscriptions, row.start).await?;
    lab.fail(row.fails, fault);
    let timing = lab.timing().clone();
    stays_at(lab, row.before, row.start).await?;
    if let Fault::Delay { .. } = fault {
        // Still registered and subscribed at the primaries, each refresh answered late.
        let deadline = timing.next_register().and(timing.detect(fault)).plus("scheduling jitter", timing.jitter());
        lab.expect_all(row.before.everything(row.subscriptions, row.start, &deadline)).await?;
    }
    Ok(())
}
