//! SIP outbound (RFC 5626) on every transport: the instance a phone keeps across reboots (F2), its keep-alives (F3), the flows it re-establishes in the background (F4), with the backup outbound proxy (F1).

mod judge;

use std::sync::Arc;
use std::time::Duration;

use harness::dut::Stimulus;
use harness::{
    Case, CaseError, Configuration, Deadline, Element, Fault, Lab, LabSpec, Needs, Requirement, Timers, Transport,
};

use crate::failover::{ROWS, Row, TRANSPORTS};
use crate::steps::starts_at;
pub use judge::{Keepalive, attempts_at, keepalives_to, registration_request};

/// Rows 2 and 3 with SIP outbound on: their primary outbound proxy fails.
fn rows() -> [Row; 2] {
    let with_flows =
        |row: Row| Row { configuration: row.configuration.with_sip_outbound(), subscriptions: false, ..row };
    [with_flows(ROWS[2]), with_flows(ROWS[5])]
}

pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for row in rows() {
        for transport in TRANSPORTS {
            let case = |behaviour: &str, requirements: Vec<Requirement>, timers: Timers, fault: Option<Fault>| Case {
                id: Case::id_of("outbound", row.configuration, behaviour, fault, transport),
                requirements,
                configuration: row.configuration,
                transport,
                fault,
                needs: Needs { subscriptions: false, ..row.needs },
                timers,
                lab: harness::standard_lab,
                run: Arc::new(|_| Box::pin(async { Ok(()) })),
            };
            cases.push(Case {
                needs: Needs { subscriptions: false, reboot: true, ..row.needs },
                run: Arc::new(move |lab| Box::pin(instance_kept_across_reboot(lab, row))),
                ..case(
                    "instance-kept-across-reboot",
                    vec![row.start, Requirement::F2, Requirement::C1],
                    Timers::fast(),
                    None,
                )
            });
            cases.push(Case {
                run: Arc::new(move |lab| Box::pin(keepalives_on_the_flow(lab, row))),
                ..case(
                    "keepalives",
                    vec![row.start, Requirement::F2, Requirement::F3, Requirement::C1],
                    quiet_timers(),
                    None,
                )
            });
            cases.push(Case {
                lab: registrars_without_require,
                run: Arc::new(move |lab| Box::pin(no_keepalives_without_require(lab, row))),
                ..case("no-require-no-keepalives", vec![row.start, Requirement::F3], quiet_timers(), None)
            });
            cases.push(Case {
                run: Arc::new(move |lab| Box::pin(stalled_flow_found_by_keepalives(lab, row))),
                ..case(
                    "flow-fails-between-requests",
                    vec![row.moved, Requirement::F1, Requirement::F2, Requirement::F3],
                    quiet_timers(),
                    Some(Fault::Stall),
                )
            });
            let refused = Fault::reject(503);
            cases.push(Case {
                run: Arc::new(move |lab| Box::pin(failed_flow_reestablished(lab, row))),
                ..case(
                    "flow-reestablished",
                    vec![row.moved, row.returned, Requirement::F1, Requirement::F4, Requirement::Rfc5626_4_5],
                    Timers::fast(),
                    Some(refused),
                )
            });
        }
    }
    cases
}

/// Timers under which the phone sends no request for a long while (registration period 30 s),
/// so what it does between requests is the keep-alives' doing alone.
fn quiet_timers() -> Timers {
    Timers {
        registration_period: Duration::from_secs(30),
        subscription_period: Duration::from_secs(30),
        ..Timers::fast()
    }
}

/// Registrars that bind the phone's flow but leave `Require: outbound` out of their 2xx.
fn registrars_without_require(spec: &mut LabSpec) {
    spec.outbound = None;
}

/// F2: the REGISTER carries `Supported: outbound`, a `+sip.instance` and a `reg-id` (RFC 5626
/// §4.2.1), and after a reboot (`Command: Reset`) the same `+sip.instance` (§4.1: it identifies
/// the device, so the registrar replaces the old flows instead of keeping stale ones).
async fn instance_kept_across_reboot(lab: &mut Lab, row: Row) -> Result<(), CaseError> {
    let registered = starts_at(lab, row.before, false, row.start).await?;
    let first = judge::outbound_contact(lab, &registered[0], Requirement::F2)?;
    lab.stimulate(Stimulus::Reset).await?;
    let mark = lab.mark();
    lab.look_from(mark);
    let deadline = lab.timing().startup().and(lab.timing().dial());
    let again = lab.expect(row.before.registration(Requirement::F2).within(deadline)).await?;
    let after_reboot = judge::outbound_contact(lab, &again, Requirement::F2)?;
    judge::same_instance(&first, &after_reboot, "after a reboot")
}

/// F3: once a 2xx with `Require: outbound` and `Flow-Timer` came, keep-alives on the flow (CRLF
/// ping on TCP/TLS, STUN binding on UDP: RFC 5626 §4.4), each at 80-100% of `Flow-Timer` after the
/// one before (§4.4.1), over several intervals; and the answers keep the flow: nothing moves.
async fn keepalives_on_the_flow(lab: &mut Lab, row: Row) -> Result<(), CaseError> {
    let registered = starts_at(lab, row.before, false, row.start).await?;
    judge::outbound_contact(lab, &registered[0], Requirement::F2)?;
    let flow_timer = lab.timing().timers.outbound.flow_timer;
    let intervals = 4;
    crate::steps::stays_at_for(lab, row.before, row.start, flow_timer * intervals + lab.timing().jitter()).await?;
    let outbound = row.before.via.expect("rows 2 and 3 have an outbound proxy");
    let events = lab.trace().snapshot();
    let keepalives = keepalives_to(&events, outbound, registered[0].at);
    judge::spaced_keepalives(&keepalives, registered[0].at, flow_timer, intervals - 1, lab.timing().jitter())
}

/// F3: no 2xx carried `Require: outbound`, so no keep-alives at all (RFC 5626 §4.2.1: the
/// registrar did not take the flow), over two keep-alive intervals.
async fn no_keepalives_without_require(lab: &mut Lab, row: Row) -> Result<(), CaseError> {
    let registered = starts_at(lab, row.before, false, row.start).await?;
    let timers = lab.timing().timers.outbound;
    let window = timers.keep_alive.max(timers.flow_timer) * 2 + lab.timing().jitter();
    crate::steps::stays_at_for(lab, row.before, row.start, window).await?;
    let outbound = row.before.via.expect("rows 2 and 3 have an outbound proxy");
    let events = lab.trace().snapshot();
    if let Some(first) = keepalives_to(&events, outbound, registered[0].at).first() {
        return Err(judge::violation(
            Requirement::F3,
            "no keep-alives: the registrar's 2xx carried no Require: outbound (RFC 5626 §4.2.1)".into(),
            format!(
                "{} at {outbound} {:.2} s after the registration",
                first.kind,
                (first.at - registered[0].at).as_secs_f64()
            ),
            "keep-alives on a flow the registrar did not take",
        ));
    }
    Ok(())
}

/// F3: the outbound proxy black-holes the flow between requests (`stall`): only the keep-alives
/// can find it (RFC 5626 §4.4.1: no pong within the pong timeout; §4.4.2: a STUN transaction
/// that times out), and the phone moves to the backup outbound proxy (F1) with the same
/// `+sip.instance` (F2) long before its next request.
async fn stalled_flow_found_by_keepalives(lab: &mut Lab, row: Row) -> Result<(), CaseError> {
    let registered = starts_at(lab, row.before, false, row.start).await?;
    let first = judge::outbound_contact(lab, &registered[0], Requirement::F2)?;
    // The flow idle and kept: its registration answered and a keep-alive exchanged.
    let timing = lab.timing().clone();
    let outbound = timing.timers.outbound;
    crate::steps::stays_at_for(lab, row.before, row.start, outbound.flow_timer + timing.jitter()).await?;
    lab.fail(row.fails, Fault::Stall);
    let found = match lab.provisioning.transport {
        Transport::Udp => Deadline::of("a STUN keep-alive timing out (79 RTO)", outbound.stun_timeout()),
        Transport::Tcp | Transport::Tls => Deadline::of("the pong timeout", outbound.pong_timeout),
    };
    let deadline = Deadline::of("the next keep-alive, at most Flow-Timer", outbound.flow_timer)
        .and(found)
        .plus("scheduling jitter", timing.jitter());
    let moved = lab.expect(row.after.registration(Requirement::F3).within(deadline)).await?;
    let after = judge::outbound_contact(lab, &moved, Requirement::F2)?;
    judge::same_instance(&first, &after, "through the backup outbound proxy")
}

/// F4: the primary outbound proxy answers 503 to everything; the phone moves to the backup
/// (F1) and tries the failed primary again in the background, each attempt after the RFC 5626
/// §4.5 backoff (`min(max-time, base-time * 2^failures)` times 0.5 to 1, measured between
/// attempts); when the primary answers again, its flow is back within the next wait.
async fn failed_flow_reestablished(lab: &mut Lab, row: Row) -> Result<(), CaseError> {
    starts_at(lab, row.before, false, row.start).await?;
    lab.fail(row.fails, Fault::reject(503));
    let failed_at = lab.trace().now();
    let timing = lab.timing().clone();
    let deadline = timing.outbound_failover(Fault::reject(503), false);
    lab.expect(row.after.registration(row.moved).within(deadline)).await?;
    // Three attempts after the failure that marked it: waits of at most 1, 2 and 4 base-times.
    let attempts = 3;
    let window: Duration = (1..=attempts).map(|n| timing.backoff_bounds(n).1).sum::<Duration>() + timing.jitter();
    // Meanwhile nothing but the attempts at the failed flow, bindings at one registrar.
    // (The attempts themselves are judged below, against the backoff.)
    let mut rules = harness::SteadyRules::new(row.after.registrar, row.moved, timing.probe_spacing());
    for other in Element::SIP.into_iter().filter(|e| !row.after.elements().contains(e) && *e != row.fails) {
        rules = rules.unused(other, row.moved);
    }
    lab.hold(rules, window).await?;
    let events = lab.trace().snapshot();
    let tried = attempts_at(&events, row.fails, lab.topology.phone_ip(), failed_at);
    judge::backed_off(&tried, &timing, attempts as usize)?;
    lab.restore(row.fails);
    let back = timing.failback();
    lab.expect(row.before.registration(row.returned).within(back)).await?;
    Ok(())
}

/// The configurations this area runs.
pub const CONFIGURATIONS: [Configuration; 2] = [Configuration::FullBackupRfc5626, Configuration::OutboundOnlyRfc5626];

#[cfg(test)]
mod tests {
    #[test]
    fn both_rows_with_flows_are_run() {
        let rows = super::rows();
        assert_eq!(rows.map(|r| r.configuration), super::CONFIGURATIONS);
        assert!(rows.iter().all(|r| r.fails == harness::Element::OutboundA));
    }
}
