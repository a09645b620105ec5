//! The model of the seed's table the explorer judges against: from the configuration and which elements are failed, where the phone must be, what it may send, and how long each move may take.

use std::collections::BTreeMap;

use crate::faults::{Event, Fault};
use crate::placement::Placement;
use crate::provision::Configuration;
use crate::requirement::Requirement;
use crate::steady::SteadyRules;
use crate::timing::{Deadline, Timing};
use crate::topology::Element;

use Element::{Dns, OutboundA, OutboundB, ProxyA, ProxyB, RegistrarA, RegistrarB};

/// How an element is failed: since which step, with which fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub since: usize,
    pub fault: Fault,
}

/// The state of the lab's servers: every element not named is healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct World {
    pub configuration: Configuration,
    pub failed: BTreeMap<Element, Failure>,
    /// Row 1 with the registrar named by the registrars' SIP service (NAPTR, SRV: F5) instead of
    /// `sip registrar ip` and `sip backup registrar ip`: the DNS's records say which registrar.
    pub registrar_service: bool,
    /// With `registrar_service`: the registrar the SRV records prefer (registrar-a at the start).
    pub srv_prefers: Element,
}

/// What the model says of one state.
#[derive(Debug, Clone)]
pub struct Expected {
    /// Where the phone must be once it converged; `None` when a dimension has no healthy choice
    /// (a primary and its backup both down): then nothing is placed, the phone keeps trying.
    pub placement: Option<Placement>,
    /// What the phone may send while in this state (BRIEF §2's steady state).
    pub rules: SteadyRules,
    /// The seed's bullet this state stands for.
    pub requirement: Requirement,
}

/// The elements a configuration uses (rows 2 and 3 also with SIP outbound on, which this step
/// of the explorer does not draw).
pub fn elements(configuration: Configuration) -> &'static [Element] {
    match configuration {
        Configuration::NoOutbound => &[RegistrarA, RegistrarB, ProxyA, ProxyB],
        Configuration::FullBackup | Configuration::FullBackupRfc5626 => {
            &[OutboundA, OutboundB, RegistrarA, RegistrarB, ProxyA, ProxyB]
        }
        // Row 3 has one registrar and one proxy: what fails behind outbound-a there is a question
        // for the vendor (ARCHITECTURE.md, "How the spec is read"), so only the outbound proxies.
        Configuration::OutboundOnly | Configuration::OutboundOnlyRfc5626 => &[OutboundA, OutboundB],
    }
}

/// Row 2's sides: "any connection fails" moves everything from the one to the other.
const ROW_2_PRIMARIES: [Element; 3] = [OutboundA, RegistrarA, ProxyA];
const ROW_2_BACKUPS: [Element; 3] = [OutboundB, RegistrarB, ProxyB];

impl World {
    pub fn new(configuration: Configuration) -> World {
        World::of_lab(configuration, false)
    }

    /// The start of a lab, the registrar named by its SIP service or not.
    pub fn of_lab(configuration: Configuration, registrar_service: bool) -> World {
        World { configuration, failed: BTreeMap::new(), registrar_service, srv_prefers: RegistrarA }
    }

    /// Whether `element` is failed: under a lasting fault that is no mere `delay` (a slow but
    /// healthy server, which the phone must not leave: BRIEF §2).
    pub fn is_failed(&self, element: Element) -> bool {
        self.failed.get(&element).is_some_and(|f| !matches!(f.fault, Fault::Delay { .. }))
    }

    /// Whether `element` is under any lasting fault, a `delay` included (what a `restore` lifts).
    pub fn is_faulted(&self, element: Element) -> bool {
        self.failed.contains_key(&element)
    }

    /// The slowest answer of any element: the longest `delay` in force.
    fn delay(&self) -> Option<u32> {
        self.failed
            .values()
            .filter_map(|f| match f.fault {
                Fault::Delay { ms } => Some(ms),
                _ => None,
            })
            .max()
    }

    /// Whether `element` may be failed now without leaving what the model can judge. Both of a
    /// pair down is explored for the registrars only: the phone retries them on the registration
    /// retry timer the harness provisions. A proxy's or an outbound proxy's retries run on the
    /// subscription retry timers (`sip subscription failed|timeout retry timer`), which the
    /// harness does not provision (the vendor's 30 s and 120 s), so no deadline bounds the
    /// recovery there yet. Row 2 keeps at most one primary-side element failed, since the phone,
    /// once at the backups, cannot know of a second failure behind the path it left and rightly
    /// tries the primaries again when the first returns (it remembers the first failure only:
    /// ARCHITECTURE.md), and fails no element of one side while the other side has one failed.
    ///
    /// The DNS fails only while every other element works, and nothing else fails while it is
    /// down: a phone must keep the answers it has (using them past their TTL is allowed while the
    /// DNS does not answer), but a failover to a name it never looked up would need the DNS, and
    /// the spec does not say what a phone does then. With the registrar named by its SIP service
    /// the registrars do not fail: what a phone does when the preferred SRV target returns (go
    /// back at once, or at the next query) is not in the seed's table (ARCHITECTURE.md).
    pub fn may_fail(&self, element: Element) -> bool {
        if element == Dns {
            return self.failed.is_empty();
        }
        if self.is_faulted(element) || self.is_failed(Dns) || !elements(self.configuration).contains(&element) {
            return false;
        }
        if self.registrar_service && element.is_registrar() {
            return false;
        }
        let any_failed = |side: &[Element]| side.iter().any(|e| self.is_failed(*e));
        match self.configuration {
            Configuration::FullBackup | Configuration::FullBackupRfc5626 => {
                if ROW_2_PRIMARIES.contains(&element) {
                    !any_failed(&ROW_2_PRIMARIES) && !any_failed(&ROW_2_BACKUPS)
                } else {
                    !any_failed(&ROW_2_PRIMARIES)
                }
            }
            _ if element.is_registrar() => true,
            _ => element.counterpart_in_pair().is_none_or(|other| !self.is_failed(other)),
        }
    }

    /// Whether `element` may fail now, when the phone may still count as failed anything
    /// `recent` has failed (see [`World::since_settled`]: the moves of the `mid-move` steps since
    /// the last settled step may not have happened yet). What may not fail beside an element the
    /// phone may still count as failed may not fail now: a proxy whose counterpart the phone
    /// still counts as failed would leave its subscriptions on `sip subscription failed retry
    /// timer`, which the harness does not provision (found by the explorer against refphone,
    /// seeds 66 and 97: `restore outbound-a mid-move` then `fail outbound-b reject 503`; `fail
    /// proxy-a reject 408 mid-move`, `restore proxy-a mid-move`, then `fail proxy-b reject 408`).
    pub fn may_fail_since(&self, recent: &World, element: Element) -> bool {
        let mut then = recent.clone();
        then.failed.remove(&element);
        self.may_fail(element) && then.may_fail(element)
    }

    /// What the phone may count as failed after a step: after a settled step what is failed
    /// (`now`); after a `mid-move` step also whatever was failed since the last settled step
    /// (`self`), restored or not.
    pub fn since_settled(&self, now: &World, settled: bool) -> World {
        if settled {
            return now.clone();
        }
        let mut recent = now.clone();
        for (element, failure) in &self.failed {
            recent.failed.entry(*element).or_insert(*failure);
        }
        recent
    }

    /// Whether the phone may be rebooted now: not while the DNS is down (a rebooted phone has no
    /// answers to keep).
    pub fn may_reboot(&self) -> bool {
        !self.is_failed(Dns)
    }

    /// Whether a call may be placed now: the phone has somewhere to send it, and the DNS answers
    /// (an INVITE over UDP needs the name).
    pub fn may_dial(&self) -> bool {
        !self.is_failed(Dns) && self.placement().is_some()
    }

    /// Whether the SRV records may change to prefer `registrar` now.
    pub fn may_prefer(&self, registrar: Element) -> bool {
        self.registrar_service && !self.is_failed(Dns) && registrar.is_registrar() && registrar != self.srv_prefers
    }

    /// Whether `element` may get a one-off event (`reset`, `restart`) now: a working SIP element of
    /// the configuration, while the DNS answers (a reconnect may need the name). With the
    /// registrar named by its SIP service, not a registrar: a REGISTER in flight on the flow the
    /// event resets meets a transport error, and RFC 3263 §4.3 sends it on to the next SRV
    /// target, a move the model does not place (found by the explorer against refphone, seed 57:
    /// `reset registrar-b` while the SRV records prefer it, one REGISTER at registrar-a).
    pub fn may_upset(&self, element: Element) -> bool {
        let registrar_by_srv = self.registrar_service && element.is_registrar();
        !(registrar_by_srv || element == Dns || self.is_failed(Dns) || self.is_faulted(element))
            && elements(self.configuration).contains(&element)
    }

    /// Where the phone must be once it converged (the seed's table); `None` when a dimension has
    /// no healthy choice.
    pub fn placement(&self) -> Option<Placement> {
        match self.configuration {
            Configuration::NoOutbound => {
                let registrar =
                    if self.registrar_service { Some(self.srv_prefers) } else { self.choose(RegistrarA, RegistrarB) };
                let proxy = self.choose(ProxyA, ProxyB);
                registrar.zip(proxy).map(|(registrar, proxy)| Placement { registrar, aor_of: proxy, proxy, via: None })
            }
            Configuration::FullBackup | Configuration::FullBackupRfc5626 => {
                let any_failed = |side: &[Element]| side.iter().any(|e| self.is_failed(*e));
                if !any_failed(&ROW_2_PRIMARIES) {
                    Some(Placement { registrar: RegistrarA, aor_of: ProxyA, proxy: ProxyA, via: Some(OutboundA) })
                } else if !any_failed(&ROW_2_BACKUPS) {
                    Some(Placement { registrar: RegistrarB, aor_of: ProxyB, proxy: ProxyB, via: Some(OutboundB) })
                } else {
                    None
                }
            }
            Configuration::OutboundOnly | Configuration::OutboundOnlyRfc5626 => self
                .choose(OutboundA, OutboundB)
                .map(|via| Placement { registrar: RegistrarA, aor_of: ProxyA, proxy: ProxyA, via: Some(via) }),
        }
    }

    /// The primary first, else the backup, else nobody (both down).
    fn choose(&self, primary: Element, backup: Element) -> Option<Element> {
        if !self.is_failed(primary) {
            Some(primary)
        } else if !self.is_failed(backup) {
            Some(backup)
        } else {
            None
        }
    }

    /// Where the phone must be, what it may send, and the bullet that says so.
    pub fn expected(&self, timing: &Timing) -> Expected {
        let probe = timing.probe_spacing();
        let retry = timing.timers.registration_retry;
        // One dimension's rules: the backup unused while the primary works, the primary only
        // probed while the backup works, both retried when both are down (BRIEF §2).
        let dimension = |rules: SteadyRules, primary: Element, backup: Element, requirement: Requirement| match (
            self.is_failed(primary),
            self.is_failed(backup),
        ) {
            (false, _) => rules.unused(backup, requirement),
            (true, false) => rules.failed(primary, requirement),
            (true, true) => rules.retrying(primary, retry, requirement).retrying(backup, retry, requirement),
        };
        match self.configuration {
            Configuration::NoOutbound => {
                // Row 1: two independent dimensions; the AOR follows the active proxy.
                let placement = self.placement();
                let requirement = match (self.is_failed(RegistrarA), self.is_failed(ProxyA)) {
                    (false, false) => Requirement::R1_1,
                    (true, false) => Requirement::R1_2,
                    (_, true) => Requirement::R1_3,
                };
                let mut rules = if self.registrar_service {
                    // F5: SRV priority is strict, the other target unused while the preferred works.
                    let other = if self.srv_prefers == RegistrarA { RegistrarB } else { RegistrarA };
                    SteadyRules::new(self.srv_prefers, requirement, probe).unused(other, Requirement::F5)
                } else {
                    let registrar = self.choose(RegistrarA, RegistrarB);
                    let rules = SteadyRules::new(registrar.unwrap_or(RegistrarA), requirement, probe);
                    dimension(rules, RegistrarA, RegistrarB, Requirement::R1_2)
                };
                rules = dimension(rules, ProxyA, ProxyB, Requirement::R1_3);
                Expected { placement, rules, requirement }
            }
            Configuration::FullBackup | Configuration::FullBackupRfc5626 => {
                // Row 2: any primary-side failure moves everything to the backups via outbound-b.
                let primary_down: Vec<Element> = ROW_2_PRIMARIES.into_iter().filter(|e| self.is_failed(*e)).collect();
                let backup_down: Vec<Element> = ROW_2_BACKUPS.into_iter().filter(|e| self.is_failed(*e)).collect();
                if primary_down.is_empty() {
                    let mut rules = SteadyRules::new(RegistrarA, Requirement::R2_1, probe);
                    for backup in ROW_2_BACKUPS {
                        rules = rules.unused(backup, Requirement::R2_1);
                    }
                    let placement =
                        Placement { registrar: RegistrarA, aor_of: ProxyA, proxy: ProxyA, via: Some(OutboundA) };
                    Expected { placement: Some(placement), rules, requirement: Requirement::R2_1 }
                } else if backup_down.is_empty() {
                    // As the suites judge row 2 (failover/mod.rs): the failed element is only
                    // probed; what lies on the probe's path (outbound-a) is not judged.
                    let mut rules = SteadyRules::new(RegistrarB, Requirement::R2_2, probe);
                    for failed in primary_down {
                        rules = rules.failed(failed, Requirement::R2_2);
                    }
                    let placement =
                        Placement { registrar: RegistrarB, aor_of: ProxyB, proxy: ProxyB, via: Some(OutboundB) };
                    Expected { placement: Some(placement), rules, requirement: Requirement::R2_2 }
                } else {
                    // Both sides down: the phone keeps trying every failed element, no faster
                    // than its timers; either registrar may be the one it reaches first.
                    let mut rules = SteadyRules::new(RegistrarA, Requirement::R2_2, probe).registrar_may_change();
                    for failed in primary_down.into_iter().chain(backup_down) {
                        rules = rules.retrying(failed, retry, Requirement::R2_2);
                    }
                    Expected { placement: None, rules, requirement: Requirement::R2_2 }
                }
            }
            Configuration::OutboundOnly | Configuration::OutboundOnlyRfc5626 => {
                // Row 3: only the outbound proxy moves; registrar and AOR never change.
                let requirement = if self.is_failed(OutboundA) { Requirement::R3_2 } else { Requirement::R3_1 };
                let rules = dimension(
                    SteadyRules::new(RegistrarA, requirement, probe),
                    OutboundA,
                    OutboundB,
                    Requirement::R3_2,
                );
                let placement = self.choose(OutboundA, OutboundB).map(|via| Placement {
                    registrar: RegistrarA,
                    aor_of: ProxyA,
                    proxy: ProxyA,
                    via: Some(via),
                });
                Expected { placement, rules, requirement }
            }
        }
    }
}

/// What a step does to the servers or the phone, as the model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Fail(Element, Fault),
    Restore(Element),
    /// A one-off event (`reset`, `restart`): nothing moves, the phone reconnects or resubscribes.
    Event(Element, Event),
    /// The phone reboots: it starts anew, primaries first, and finds any failed primary again.
    Reboot,
    /// The phone places a call: the INVITE goes to the active proxy; nothing moves.
    Dial,
    /// The registrars' SRV records change to prefer this registrar: once the old answer's TTL ran
    /// out, the phone registers there (F5).
    Dns(Element),
}

impl World {
    /// The state after `change` at step `step`.
    pub fn after(&self, change: Change, step: usize) -> World {
        let mut next = self.clone();
        match change {
            Change::Fail(element, fault) => {
                next.failed.insert(element, Failure { since: step, fault });
            }
            Change::Restore(element) => {
                next.failed.remove(&element);
            }
            Change::Dns(registrar) => next.srv_prefers = registrar,
            Change::Event(..) | Change::Reboot | Change::Dial => {}
        }
        next
    }
}

/// The requirement a primary's return checks (the failback bullets).
fn failback_requirement(configuration: Configuration, element: Element) -> Requirement {
    match (configuration, element) {
        (Configuration::NoOutbound, RegistrarA) => Requirement::R1_4,
        (Configuration::NoOutbound, _) => Requirement::R1_5,
        (Configuration::OutboundOnly | Configuration::OutboundOnlyRfc5626, _) => Requirement::R3_3,
        _ => Requirement::R2_3,
    }
}

/// What the model says of the state after `change`, with the failback's own rules: after a
/// primary's return the elements the phone left are unused and bindings are accepted only at the
/// active registrar, both cited as the failback bullet (R1.4, R1.5, R2.3, R3.3), as the suites'
/// failover cases cite them: a REGISTER refreshing a binding kept at the backup registrar is a
/// double binding (`register-both`), not a first failover gone wrong.
pub fn expected_after(before: &World, change: Change, timing: &Timing) -> Expected {
    let mut expected = before.after(change, 0).expected(timing);
    expected.rules = with_failback_rules(expected.rules, before, change);
    expected
}

/// `rules` with the failback's own rules when `change` returns a primary the phone had left in
/// `before` (see [`expected_after`]); unchanged otherwise.
pub fn with_failback_rules(mut rules: SteadyRules, before: &World, change: Change) -> SteadyRules {
    let after = before.after(change, 0);
    if let (Change::Restore(element), Some(from), Some(to)) = (change, before.placement(), after.placement())
        && from != to
    {
        let requirement = failback_requirement(before.configuration, element);
        let left: Vec<Element> = from.elements().into_iter().filter(|e| !to.elements().contains(e)).collect();
        rules.unused.retain(|(e, _)| !left.contains(e));
        for element in left {
            rules = rules.unused(element, requirement);
        }
        rules.registrar.1 = requirement;
    }
    rules
}

/// How long the phone may take to move away from `element` failing with `fault` (the suites'
/// failover deadlines): row 1 a registrar by its next REGISTER, a proxy by its next SUBSCRIBE;
/// row 2 behind outbound-a detected through it; an outbound proxy by its next request.
fn failover_deadline(configuration: Configuration, element: Element, fault: Fault, timing: &Timing) -> Deadline {
    let row_2 = matches!(configuration, Configuration::FullBackup | Configuration::FullBackupRfc5626);
    let detect =
        if row_2 && element != OutboundA { timing.detect_through_outbound(fault) } else { timing.detect(fault) };
    if element.is_registrar() {
        timing.registrar_failover(detect)
    } else if element.is_proxy() {
        timing.proxy_failover(detect)
    } else {
        timing.outbound_failover(fault, true)
    }
}

/// How long the move `change` causes from `before` may take, and the bullet it checks; `None`
/// when there is nowhere to converge to (both of a pair down). The deadlines are the suites':
/// row 1 a registrar's failover by its next REGISTER, a proxy's by its next SUBSCRIBE; row 2
/// behind outbound-a detected through it; an outbound proxy's by whichever request comes first;
/// a return by the failback probe. A step that moves nothing is judged by the next refreshes.
/// Out of a state with both of a pair down the phone is on its retry timer: the longest path
/// (its next attempt, the retry timer, a timeout, then the failback) bounds it.
///
/// A reboot: the start-up, then every failed primary the phone meets first found again (its
/// failover deadline). A `reset` or `restart`: the next refresh and one more transaction (a new
/// connection, or a new subscription after the 481 of a proxy that forgot it). A DNS change: the
/// next REGISTER once the old answer's TTL ran out (the runner waits out the TTL first). The DNS
/// failing or returning: the next REGISTER and a DNS query timing out.
///
/// While an element answers late (`delay`), every deadline carries that delay twice (a request
/// and its repeat with credentials each wait for the slow answer).
pub fn move_deadline(before: &World, change: Change, timing: &Timing) -> Option<(Deadline, Requirement)> {
    let (deadline, requirement) = undelayed_move_deadline(before, change, timing)?;
    let slowest = before.delay().max(before.after(change, 0).delay());
    Some(match slowest {
        Some(ms) => (
            deadline.plus(
                format!("answers delayed by {ms} ms, twice"),
                std::time::Duration::from_millis(u64::from(ms) * 2),
            ),
            requirement,
        ),
        None => (deadline, requirement),
    })
}

fn undelayed_move_deadline(before: &World, change: Change, timing: &Timing) -> Option<(Deadline, Requirement)> {
    let after = before.after(change, 0);
    let was = before.expected(timing);
    let now = after.expected(timing);
    let target = now.placement?;
    match change {
        Change::Reboot => {
            let mut deadline = timing.startup();
            for (element, failure) in &before.failed {
                let primary_met_first = match before.configuration {
                    Configuration::NoOutbound => [RegistrarA, ProxyA].contains(element),
                    Configuration::FullBackup | Configuration::FullBackupRfc5626 => ROW_2_PRIMARIES.contains(element),
                    Configuration::OutboundOnly | Configuration::OutboundOnlyRfc5626 => *element == OutboundA,
                };
                if primary_met_first {
                    deadline = deadline.and(failover_deadline(before.configuration, *element, failure.fault, timing));
                }
            }
            return Some((deadline, now.requirement));
        }
        Change::Dns(_) => {
            return Some((timing.next_register().plus("scheduling jitter", timing.jitter()), Requirement::F5));
        }
        Change::Fail(Dns, _) | Change::Restore(Dns) if was.placement.is_some() => {
            // As `dns.*.dns-fails` judges it: a request that needs a name whose answer ran out
            // (any over UDP with the SRV's 2 s TTL) waits for the query to time out, then uses the
            // last answer; a query sent before the DNS returned may still time out.
            let deadline = timing
                .next_register()
                .and(Deadline::of("a DNS query timing out (transaction timer)", timing.transaction_timeout()))
                .plus("scheduling jitter", timing.jitter());
            return Some((deadline, now.requirement));
        }
        Change::Event(..) if was.placement.is_some() => {
            let refresh = if timing.timers.subscription_period > timing.timers.registration_period {
                timing.next_subscribe()
            } else {
                timing.next_register()
            };
            let deadline = refresh
                .plus(
                    "a new connection, or a new subscription after a 481 (one transaction)",
                    timing.transaction_timeout(),
                )
                .plus("scheduling jitter", timing.jitter());
            return Some((deadline, now.requirement));
        }
        _ => {}
    }
    let Some(from) = was.placement else {
        let deadline = timing
            .next_register()
            .plus("the registration retry timer", timing.timers.registration_retry)
            .and(timing.detect(Fault::Silent))
            .and(timing.failback());
        return Some((deadline, now.requirement));
    };
    if from == target {
        let refresh = if timing.timers.subscription_period > timing.timers.registration_period {
            timing.next_subscribe()
        } else {
            timing.next_register()
        };
        return Some((refresh.plus("scheduling jitter", timing.jitter()), now.requirement));
    }
    match change {
        Change::Restore(element) => Some((timing.failback(), failback_requirement(before.configuration, element))),
        Change::Fail(element, fault) => {
            Some((failover_deadline(before.configuration, element, fault, timing), now.requirement))
        }
        // Nothing else moves the phone (handled above, or from == target).
        _ => Some((timing.failback(), now.requirement)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dut::Capabilities;
    use crate::provision::Timers;
    use crate::trace::Transport;

    fn timing() -> Timing {
        let transports = vec![Transport::Udp, Transport::Tcp, Transport::Tls];
        Timing::new(Timers::fast(), Capabilities::reference(transports, std::time::Duration::from_secs(5)))
    }

    fn world(configuration: Configuration, failed: &[Element]) -> World {
        let mut world = World::new(configuration);
        for (i, element) in failed.iter().enumerate() {
            world = world.after(Change::Fail(*element, Fault::Silent), i + 1);
        }
        world
    }

    const fn at(registrar: Element, proxy: Element, via: Option<Element>) -> Option<Placement> {
        Some(Placement { registrar, aor_of: proxy, proxy, via })
    }

    /// The model as a table: configuration, failed elements, where the phone must be, the bullet.
    #[test]
    fn the_table() {
        use Configuration::{FullBackup, NoOutbound, OutboundOnly};
        let rows: &[(Configuration, &[Element], Option<Placement>, Requirement)] = &[
            (NoOutbound, &[], at(RegistrarA, ProxyA, None), Requirement::R1_1),
            (NoOutbound, &[RegistrarA], at(RegistrarB, ProxyA, None), Requirement::R1_2),
            (NoOutbound, &[ProxyA], at(RegistrarA, ProxyB, None), Requirement::R1_3),
            (NoOutbound, &[RegistrarA, ProxyA], at(RegistrarB, ProxyB, None), Requirement::R1_3),
            (NoOutbound, &[RegistrarB], at(RegistrarA, ProxyA, None), Requirement::R1_1),
            (NoOutbound, &[ProxyB, RegistrarA], at(RegistrarB, ProxyA, None), Requirement::R1_2),
            (NoOutbound, &[RegistrarA, RegistrarB], None, Requirement::R1_2),
            (NoOutbound, &[ProxyA, ProxyB], None, Requirement::R1_3),
            (FullBackup, &[], at(RegistrarA, ProxyA, Some(OutboundA)), Requirement::R2_1),
            (FullBackup, &[OutboundA], at(RegistrarB, ProxyB, Some(OutboundB)), Requirement::R2_2),
            (FullBackup, &[RegistrarA], at(RegistrarB, ProxyB, Some(OutboundB)), Requirement::R2_2),
            (FullBackup, &[ProxyA], at(RegistrarB, ProxyB, Some(OutboundB)), Requirement::R2_2),
            (FullBackup, &[ProxyB, RegistrarB], at(RegistrarA, ProxyA, Some(OutboundA)), Requirement::R2_1),
            (FullBackup, &[OutboundA, ProxyB], None, Requirement::R2_2),
            (OutboundOnly, &[], at(RegistrarA, ProxyA, Some(OutboundA)), Requirement::R3_1),
            (OutboundOnly, &[OutboundA], at(RegistrarA, ProxyA, Some(OutboundB)), Requirement::R3_2),
            (OutboundOnly, &[OutboundB], at(RegistrarA, ProxyA, Some(OutboundA)), Requirement::R3_1),
            (OutboundOnly, &[OutboundA, OutboundB], None, Requirement::R3_2),
        ];
        for (configuration, failed, placement, requirement) in rows {
            let expected = world(*configuration, failed).expected(&timing());
            assert_eq!(expected.placement, *placement, "{configuration:?} {failed:?}");
            assert_eq!(expected.requirement, *requirement, "{configuration:?} {failed:?}");
        }
    }

    #[test]
    fn the_rules_follow_the_state() {
        let t = timing();
        // Primaries working: the backups unused.
        let rules = world(Configuration::NoOutbound, &[]).expected(&t).rules;
        assert!(rules.unused.iter().any(|(e, _)| *e == RegistrarB) && rules.unused.iter().any(|(e, _)| *e == ProxyB));
        assert!(rules.failed.is_empty() && rules.retrying.is_empty());
        // A failed primary only probed, its backup in use.
        let rules = world(Configuration::NoOutbound, &[RegistrarA]).expected(&t).rules;
        assert_eq!(rules.failed, vec![(RegistrarA, Requirement::R1_2)]);
        assert_eq!(rules.registrar.0, RegistrarB);
        // Both down: both retried, no faster than the retry timer.
        let rules = world(Configuration::NoOutbound, &[RegistrarA, RegistrarB]).expected(&t).rules;
        let retried: Vec<Element> = rules.retrying.iter().map(|(e, _, _)| *e).collect();
        assert_eq!(retried, vec![RegistrarA, RegistrarB]);
        assert!(rules.retrying.iter().all(|(_, interval, _)| *interval == t.timers.registration_retry));
        // Row 2, a failure behind outbound-a: the failed element only probed.
        let rules = world(Configuration::FullBackup, &[ProxyA]).expected(&t).rules;
        assert_eq!(rules.failed, vec![(ProxyA, Requirement::R2_2)]);
        assert!(rules.unused.is_empty());
    }

    #[test]
    fn what_may_fail_keeps_the_model_judgeable() {
        // Row 2: one primary-side failure at a time, and no side failing while the other is.
        let w = world(Configuration::FullBackup, &[RegistrarA]);
        assert!(!w.may_fail(ProxyA) && !w.may_fail(OutboundA) && !w.may_fail(RegistrarA));
        assert!(!w.may_fail(OutboundB) && !w.may_fail(ProxyB));
        let w = world(Configuration::FullBackup, &[ProxyB]);
        assert!(!w.may_fail(OutboundA) && w.may_fail(RegistrarB));
        // Row 1: both registrars may be down, never both proxies.
        let w = world(Configuration::NoOutbound, &[RegistrarA, ProxyA]);
        assert!(w.may_fail(RegistrarB) && !w.may_fail(ProxyB));
        // Row 3: its outbound proxies only, one at a time.
        assert!(!world(Configuration::OutboundOnly, &[]).may_fail(RegistrarA));
        assert!(!world(Configuration::OutboundOnly, &[OutboundB]).may_fail(OutboundA));
    }

    #[test]
    fn each_move_has_the_suites_deadline() {
        let t = timing();
        let healthy = World::new(Configuration::NoOutbound);
        let (deadline, requirement) = move_deadline(&healthy, Change::Fail(RegistrarA, Fault::Silent), &t).unwrap();
        assert_eq!(deadline, t.registrar_failover(t.detect(Fault::Silent)));
        assert_eq!(requirement, Requirement::R1_2);
        let (deadline, requirement) = move_deadline(&healthy, Change::Fail(ProxyA, Fault::reject(503)), &t).unwrap();
        assert_eq!(deadline, t.proxy_failover(t.detect(Fault::reject(503))));
        assert_eq!(requirement, Requirement::R1_3);
        let failed = healthy.after(Change::Fail(ProxyA, Fault::Silent), 1);
        let (deadline, requirement) = move_deadline(&failed, Change::Restore(ProxyA), &t).unwrap();
        assert_eq!((deadline, requirement), (t.failback(), Requirement::R1_5));
        // Row 2 behind outbound-a: detected through it.
        let row_2 = World::new(Configuration::FullBackup);
        let (deadline, _) = move_deadline(&row_2, Change::Fail(RegistrarA, Fault::Refuse), &t).unwrap();
        assert_eq!(deadline, t.registrar_failover(t.detect_through_outbound(Fault::Refuse)));
        let (deadline, _) = move_deadline(&row_2, Change::Fail(OutboundA, Fault::Silent), &t).unwrap();
        assert_eq!(deadline, t.outbound_failover(Fault::Silent, true));
        // Into both down: nowhere to converge.
        let one = healthy.after(Change::Fail(RegistrarA, Fault::Silent), 1);
        assert!(move_deadline(&one, Change::Fail(RegistrarB, Fault::Silent), &t).is_none());
        // The DNS failing: the next refresh may wait for a query to time out.
        let (deadline, _) = move_deadline(&healthy, Change::Fail(Dns, Fault::Silent), &t).unwrap();
        assert_eq!(deadline.limit(), t.next_register().limit() + t.transaction_timeout() + t.jitter());
        // An unused backup failing moves nothing: the next refresh.
        let (deadline, requirement) = move_deadline(&healthy, Change::Fail(ProxyB, Fault::Silent), &t).unwrap();
        assert_eq!(deadline.limit(), t.next_register().limit() + t.jitter());
        assert_eq!(requirement, Requirement::R1_1);
    }

    /// After a primary's return the elements the phone left are unused, and a second binding is a
    /// breach of the failback bullet (as the suites' failover cases cite it: register-both).
    #[test]
    fn a_return_has_the_failbacks_rules() {
        let t = timing();
        let row_1 = world(Configuration::NoOutbound, &[RegistrarA]);
        let rules = expected_after(&row_1, Change::Restore(RegistrarA), &t).rules;
        assert_eq!(rules.registrar, (RegistrarA, Requirement::R1_4));
        assert!(rules.unused.contains(&(RegistrarB, Requirement::R1_4)), "{:?}", rules.unused);
        assert_eq!(rules.unused.iter().filter(|(e, _)| *e == RegistrarB).count(), 1);
        let row_2 = world(Configuration::FullBackup, &[ProxyA]);
        let rules = expected_after(&row_2, Change::Restore(ProxyA), &t).rules;
        for left in [OutboundB, RegistrarB, ProxyB] {
            assert!(rules.unused.contains(&(left, Requirement::R2_3)), "{left}: {:?}", rules.unused);
        }
        // No move, no failback rules: a backup's return keeps the state's own.
        let backup = world(Configuration::NoOutbound, &[ProxyB]);
        let rules = expected_after(&backup, Change::Restore(ProxyB), &t).rules;
        assert_eq!(rules.registrar, (RegistrarA, Requirement::R1_1));
    }

    #[test]
    fn one_off_steps_have_their_deadlines() {
        let t = timing();
        let healthy = World::new(Configuration::NoOutbound);
        // A reboot with registrar-a failed: the start-up, then registrar-a found failed again.
        let failed = healthy.after(Change::Fail(RegistrarA, Fault::Refuse), 1);
        let (deadline, requirement) = move_deadline(&failed, Change::Reboot, &t).unwrap();
        assert_eq!(deadline, t.startup().and(t.registrar_failover(t.detect(Fault::Refuse))));
        assert_eq!(requirement, Requirement::R1_2);
        // A reboot with only a backup failed: the start-up.
        let backup = healthy.after(Change::Fail(ProxyB, Fault::Silent), 1);
        assert_eq!(move_deadline(&backup, Change::Reboot, &t).unwrap().0, t.startup());
        // A restart: the next refresh and one transaction.
        let (deadline, _) = move_deadline(&healthy, Change::Event(ProxyA, Event::Restart), &t).unwrap();
        assert_eq!(deadline.limit(), t.next_register().limit() + t.transaction_timeout() + t.jitter());
        // A DNS change moves the registrar once the TTL ran out (F5); nothing else moves.
        let service = World::of_lab(Configuration::NoOutbound, true);
        let changed = service.after(Change::Dns(RegistrarB), 1);
        assert_eq!(changed.placement(), at(RegistrarB, ProxyA, None));
        assert_eq!(move_deadline(&service, Change::Dns(RegistrarB), &t).unwrap().1, Requirement::F5);
        let rules = changed.expected(&t).rules;
        assert!(rules.unused.contains(&(RegistrarA, Requirement::F5)));
        // With the registrar a SIP service the registrars do not fail; the DNS only alone.
        assert!(!service.may_fail(RegistrarA) && service.may_fail(Dns) && service.may_fail(ProxyA));
        let dns_down = service.after(Change::Fail(Dns, Fault::Silent), 1);
        assert!(!dns_down.may_fail(ProxyA) && !dns_down.may_reboot() && !dns_down.may_dial());
        assert!(!dns_down.may_prefer(RegistrarB) && !dns_down.may_upset(ProxyA));
        assert!(!service.may_upset(RegistrarA) && service.may_upset(ProxyA));
    }

    /// A `delay`ed primary is no failed one: the phone stays, and its deadlines wait for the answers.
    #[test]
    fn a_delayed_primary_is_not_failed() {
        let t = timing();
        let healthy = World::new(Configuration::NoOutbound);
        let slow = Fault::Delay { ms: 400 };
        let delayed = healthy.after(Change::Fail(RegistrarA, slow), 1);
        assert!(!delayed.is_failed(RegistrarA) && delayed.is_faulted(RegistrarA));
        assert_eq!(delayed.placement(), healthy.placement());
        assert!(delayed.expected(&t).rules.unused.contains(&(RegistrarB, Requirement::R1_2)));
        assert!(!delayed.may_fail(RegistrarA) && delayed.may_fail(ProxyA));
        let (deadline, requirement) = move_deadline(&healthy, Change::Fail(RegistrarA, slow), &t).unwrap();
        assert_eq!(requirement, Requirement::R1_1);
        let undelayed = t.next_register().limit() + t.jitter();
        assert_eq!(deadline.limit(), undelayed + std::time::Duration::from_millis(800));
    }
}
