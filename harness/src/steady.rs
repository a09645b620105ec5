//! Steady state after a move (BRIEF §2): what a phone may send while a primary is failed, and where it may hold a binding, as pure functions of trace events.

use std::collections::HashSet;
use std::time::Duration;

use sip::Method;

use crate::expect::removes_binding;
use crate::requirement::Requirement;
use crate::topology::{Element, Party, Topology};
use crate::trace::{Direction, TraceEvent};

/// The rules of one steady state. Built by a case for the placement it just checked; judged
/// over an observation window by [`crate::Lab::hold`].
#[derive(Debug, Clone)]
pub struct SteadyRules {
    /// Elements marked failed: the phone sends them nothing but background probes (OPTIONS), at
    /// most one per probe interval; each with the requirement a breach violates.
    pub failed: Vec<(Element, Requirement)>,
    /// The one registrar that may accept a binding from the phone: a binding accepted anywhere
    /// else means two registrars hold the phone at once (a binding at a failed element cannot be
    /// accepted, so it does not count).
    pub registrar: (Element, Requirement),
    /// Whether the registrar may change in the window (a DNS answer that names another one
    /// may be used as soon as it is fetched): then no registrar rule.
    pub registrar_may_change: bool,
    /// How often the phone may probe a failed primary.
    pub probe_interval: Duration,
    /// Elements that are down while nothing better is up (a primary and its backup both
    /// failed): the phone keeps trying them, REGISTERs no faster than the interval given (its
    /// retry timer), probes no faster than the probe interval (BRIEF §2).
    pub retrying: Vec<(Element, Duration, Requirement)>,
    /// Elements the phone must send nothing at all until a moment on the trace's clock (a 503's
    /// Retry-After, RFC 3261 §21.5.4): not even a probe.
    pub quiet: Vec<(Element, Duration, Requirement)>,
    /// Elements the phone has no business with in this state (the backups while the primaries
    /// work): any request there breaks the requirement.
    pub unused: Vec<(Element, Requirement)>,
    /// Transactions (Call-ID and CSeq) that began before the window: their retransmissions, and
    /// a request in flight when the phone moved, are not new requests.
    pub earlier_transactions: HashSet<(String, u32)>,
}

impl SteadyRules {
    pub fn new(registrar: Element, requirement: Requirement, probe_interval: Duration) -> SteadyRules {
        SteadyRules {
            failed: Vec::new(),
            registrar: (registrar, requirement),
            registrar_may_change: false,
            probe_interval,
            retrying: Vec::new(),
            quiet: Vec::new(),
            unused: Vec::new(),
            earlier_transactions: HashSet::new(),
        }
    }

    /// `element` is failed: a request to it other than a probe breaks `requirement`.
    pub fn failed(mut self, element: Element, requirement: Requirement) -> SteadyRules {
        self.failed.push((element, requirement));
        self
    }

    /// `element` is down with nothing better up: the phone keeps trying it, no faster than
    /// `interval` for REGISTERs and the probe interval for probes.
    pub fn retrying(mut self, element: Element, interval: Duration, requirement: Requirement) -> SteadyRules {
        self.retrying.push((element, interval, requirement));
        self
    }

    /// `element` gets nothing at all, not even a probe, before `until` on the trace's clock.
    pub fn quiet_until(mut self, element: Element, until: Duration, requirement: Requirement) -> SteadyRules {
        self.quiet.push((element, until, requirement));
        self
    }

    /// The phone may move to another registrar within the window: no registrar rule.
    pub fn registrar_may_change(mut self) -> SteadyRules {
        self.registrar_may_change = true;
        self
    }

    /// `element` gets no request at all in this state.
    pub fn unused(mut self, element: Element, requirement: Requirement) -> SteadyRules {
        self.unused.push((element, requirement));
        self
    }

    /// Remembers the transactions seen in `events` (everything before the window).
    pub fn after(mut self, events: &[TraceEvent]) -> SteadyRules {
        self.earlier_transactions.extend(events.iter().filter_map(transaction_of));
        self
    }

    /// The rule `event` breaks, with the requirement it violates.
    pub fn breaks(&self, event: &TraceEvent, topology: &Topology) -> Option<(Requirement, String)> {
        let message = event.sip()?;
        if event.direction == Direction::Received && message.is_request() && from_phone(event, topology) {
            let method = message.method()?;
            let earlier = transaction_of(event).is_some_and(|t| self.earlier_transactions.contains(&t));
            let quiet = self.quiet.iter().find(|(e, until, _)| *e == event.element && event.at < *until);
            if let Some((element, until, requirement)) = quiet.filter(|_| !earlier) {
                let rule = format!(
                    "{} reached {element} before its Retry-After ran out at {:.2} s",
                    a(method),
                    until.as_secs_f64()
                );
                return Some((*requirement, rule));
            }
            // Releasing a binding or a subscription (Expires 0) is what a phone owes the element it
            // left; ACK, BYE and CANCEL finish what began before (a call's dialog keeps its route).
            let release = removes_binding(message)
                || message.expires().ok().flatten() == Some(0)
                || matches!(method, Method::Ack | Method::Bye | Method::Cancel);
            if let Some((element, requirement)) = self.unused.iter().find(|(e, _)| *e == event.element)
                && !earlier
                && !release
            {
                return Some((
                    *requirement,
                    format!("{} reached {element}, which the phone has no use for", a(method)),
                ));
            }
            let failed = self.failed.iter().find(|(element, _)| *element == event.element);
            if let Some((element, requirement)) = failed
                && *method != Method::Options
                && !earlier
                && !release
            {
                return Some((*requirement, format!("{} reached {element}, which is failed", a(method))));
            }
        }
        let (registrar, requirement) = self.registrar;
        let accepted = !self.registrar_may_change
            && event.direction == Direction::Sent
            && event.element.is_registrar()
            && event.element != registrar
            && message.status().is_some_and(|s| (200..300).contains(&s))
            && message.cseq().is_ok_and(|c| c.method == Method::Register)
            && message.contacts().is_ok_and(|c| c.iter().any(|c| c.expires() != Some(0)))
            && !removes_binding(message);
        accepted.then(|| {
            (requirement, format!("{} accepted a binding while the phone is registered at {registrar}", event.element))
        })
    }

    /// Whether an element got requests faster than allowed over the window begun at `started`:
    /// probes (OPTIONS) to a failed or retrying element at most one per probe interval, REGISTERs
    /// to a retrying element at most one per its retry interval (one more each for the interval
    /// the window cut). Retransmissions and authenticated repeats (same Call-ID) of one attempt
    /// count once.
    pub fn too_many_probes(
        &self,
        events: &[TraceEvent],
        started: Duration,
        topology: &Topology,
    ) -> Option<(Requirement, String, TraceEvent)> {
        let end = events.last().map_or(started, |e| e.at);
        let window = end.saturating_sub(started);
        // Arrival times carry the scheduling jitter: attempts a phone spaced by exactly the
        // interval may arrive closer than that.
        let tolerance = crate::timing::SCHEDULING_JITTER;
        let allowed =
            |interval: Duration| ((window + tolerance).as_secs_f64() / interval.as_secs_f64()).floor() as usize + 1;
        let mut limits: Vec<(Element, Method, Duration, Requirement)> = Vec::new();
        for (element, requirement) in &self.failed {
            limits.push((*element, Method::Options, self.probe_interval, *requirement));
        }
        for (element, interval, requirement) in &self.retrying {
            limits.push((*element, Method::Options, self.probe_interval, *requirement));
            limits.push((*element, Method::Register, *interval, *requirement));
        }
        for (element, method, interval, requirement) in limits {
            let mut attempts = HashSet::new();
            for event in events {
                let counted = event.element == element
                    && event.direction == Direction::Received
                    && from_phone(event, topology)
                    && event.sip().is_some_and(|m| m.method() == Some(&method) && !removes_binding(m));
                if counted && attempts.insert(attempt_of(event)) && attempts.len() > allowed(interval) {
                    let rule = format!(
                        "{} {method} attempts at {element} in {:.2} s: more than one per {:.2} s",
                        attempts.len(),
                        window.as_secs_f64(),
                        interval.as_secs_f64()
                    );
                    return Some((requirement, rule, event.clone()));
                }
            }
        }
        None
    }

    /// The rules in words, for a failure report.
    pub fn describe(&self, _topology: &Topology) -> String {
        let mut parts: Vec<String> = self
            .failed
            .iter()
            .map(|(e, _)| {
                format!("nothing but probes to {e}, at most one per {:.2} s", self.probe_interval.as_secs_f64())
            })
            .collect();
        for (e, until, _) in &self.quiet {
            parts.push(format!("nothing at all to {e} before {:.2} s (Retry-After)", until.as_secs_f64()));
        }
        for (e, interval, _) in &self.retrying {
            parts.push(format!(
                "REGISTERs to {e} no faster than one per {:.2} s, probes one per {:.2} s",
                interval.as_secs_f64(),
                self.probe_interval.as_secs_f64()
            ));
        }
        for (e, _) in &self.unused {
            parts.push(format!("nothing to {e}"));
        }
        parts.push(format!("bindings accepted only by {}", self.registrar.0));
        parts.join("; ")
    }
}

/// A request from the phone, directly or through an outbound proxy.
fn from_phone(event: &TraceEvent, topology: &Topology) -> bool {
    matches!(topology.party(event.remote.ip()), Party::Phone | Party::Element(Element::OutboundA | Element::OutboundB))
}

/// One attempt of the phone: a transaction by Call-ID and CSeq, its authenticated repeat (the
/// next CSeq on the same Call-ID) counted with it.
fn attempt_of(event: &TraceEvent) -> Option<(String, u32)> {
    let (call_id, seq) = transaction_of(event)?;
    let authorized = event.sip()?.header(&sip::HeaderName::Authorization).is_some();
    Some((call_id, if authorized && seq > 1 { seq - 1 } else { seq }))
}

/// The transaction a SIP request belongs to, by Call-ID and CSeq number.
fn transaction_of(event: &TraceEvent) -> Option<(String, u32)> {
    let message = event.sip()?;
    if !message.is_request() {
        return None;
    }
    Some((message.call_id().ok()?.to_owned(), message.cseq().ok()?.seq))
}

/// A request named with its article: "an OPTIONS", "a REGISTER".
fn a(method: &Method) -> String {
    let name = method.to_string();
    let article = if name.starts_with(['A', 'E', 'I', 'O', 'U']) { "an" } else { "a" };
    format!("{article} {name}")
}
