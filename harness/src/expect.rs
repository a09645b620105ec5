//! Expectations: what a case waits for, as pure functions of the trace, each citing the requirement it checks.

use std::fmt::Write as _;
use std::time::Duration;

use sip::{HeaderName, Method};

use crate::requirement::Requirement;
use crate::timing::Deadline;
use crate::topology::{Element, Party, Topology};
use crate::trace::{Direction, Fate, Payload, TraceEvent, Transport};

/// What an expectation waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectKind {
    /// A REGISTER from the phone reaches the element (with the element in its Request-URI).
    RegisterRequest,
    /// The element accepts a REGISTER that adds a binding: it sends the phone a 2xx with a Contact.
    Registered,
    /// A REGISTER removing the phone's binding (`Expires: 0`, `expires=0` or `*`) reaches the element.
    Unregister,
    /// The element accepts a SUBSCRIBE that creates or refreshes a subscription (2xx, Expires > 0).
    Subscribed,
    /// A SUBSCRIBE ending a subscription (`Expires: 0`) reaches the element.
    Unsubscribe,
    /// An INVITE from the phone reaches the element.
    InviteRequest,
    /// Any request from the phone reaches the element (directly or through an outbound proxy).
    AnyRequest,
}

/// One expectation: `Register::at(REGISTRAR_A).aor_of(PROXY_A)` and friends.
#[derive(Debug, Clone)]
pub struct Expect {
    pub kind: ExpectKind,
    pub at: Element,
    pub aor_of: Option<Element>,
    /// The hop the message came over: an outbound proxy, or the phone itself when `None`.
    pub via: Option<Element>,
    /// Accept the message from the phone or from any outbound proxy (when the spec leaves the hop open).
    pub any_hop: bool,
    /// The transport the phone must use on its own hop (the lab fills in the case's).
    pub transport: Option<Transport>,
    /// The event package of a subscription (`dialog`, `message-summary`).
    pub event: Option<&'static str>,
    /// The message belongs to one of these dialogs (Call-IDs): an un-SUBSCRIBE must end a
    /// subscription the phone made, not any dialog.
    pub in_dialogs: Option<Vec<String>>,
    pub requirement: Requirement,
    /// How long the phone has, with the terms that sum to it.
    pub deadline: Option<Deadline>,
    /// The moment on the trace's clock the deadline counts from; `None`: when the case starts waiting.
    pub counted_from: Option<Duration>,
    /// The earliest the phone may do it, counted like the deadline, with why (`Retry-After 3 s`):
    /// a match before it is a violation.
    pub not_before: Option<Deadline>,
}

/// Expectations about registrations.
#[derive(Debug)]
pub struct Register;

impl Register {
    /// The registrar accepts a registration of the phone (a 2xx adding a binding).
    pub fn at(registrar: Element) -> Expect {
        Expect::new(ExpectKind::Registered, registrar)
    }

    /// A REGISTER from the phone reaches the registrar.
    pub fn request_at(registrar: Element) -> Expect {
        Expect::new(ExpectKind::RegisterRequest, registrar)
    }

    /// A REGISTER removing the phone's binding reaches the registrar.
    pub fn removed_at(registrar: Element) -> Expect {
        Expect::new(ExpectKind::Unregister, registrar)
    }
}

/// Expectations about subscriptions (RFC 6665).
#[derive(Debug)]
pub struct Subscribe;

impl Subscribe {
    /// The proxy accepts a subscription to `event` (a 2xx to a SUBSCRIBE with Expires > 0).
    pub fn at(proxy: Element, event: &'static str) -> Expect {
        let mut e = Expect::new(ExpectKind::Subscribed, proxy);
        e.event = Some(event);
        e
    }

    /// A SUBSCRIBE to `event` with `Expires: 0` reaches the proxy.
    pub fn ended_at(proxy: Element, event: &'static str) -> Expect {
        let mut e = Expect::new(ExpectKind::Unsubscribe, proxy);
        e.event = Some(event);
        e
    }
}

/// Expectations about calls.
#[derive(Debug)]
pub struct Invite;

impl Invite {
    /// An INVITE from the phone reaches the proxy.
    pub fn at(proxy: Element) -> Expect {
        Expect::new(ExpectKind::InviteRequest, proxy)
    }
}

/// Expectations about any request.
#[derive(Debug)]
pub struct Request;

impl Request {
    /// Any request from the phone reaches the element, over any hop.
    pub fn at(element: Element) -> Expect {
        Expect::new(ExpectKind::AnyRequest, element).any_hop()
    }
}

impl Expect {
    fn new(kind: ExpectKind, at: Element) -> Expect {
        Expect {
            kind,
            at,
            aor_of: None,
            via: None,
            any_hop: false,
            transport: None,
            event: None,
            in_dialogs: None,
            requirement: Requirement::C1,
            deadline: None,
            counted_from: None,
            not_before: None,
        }
    }

    /// The message may come from the phone or through either outbound proxy.
    pub fn any_hop(mut self) -> Expect {
        self.any_hop = true;
        self
    }

    /// The message reached the element through this outbound proxy (BRIEF §2: "at registrar-b via outbound-b").
    pub fn via(mut self, outbound: Element) -> Expect {
        self.via = Some(outbound);
        self
    }

    /// The AOR registered is the one of this proxy (`sip:<user>@<proxy host>`).
    pub fn aor_of(mut self, proxy: Element) -> Expect {
        self.aor_of = Some(proxy);
        self
    }

    /// The message is in one of these dialogs (by Call-ID).
    pub fn in_dialogs(mut self, call_ids: Vec<String>) -> Expect {
        self.in_dialogs = Some(call_ids);
        self
    }

    /// The requirement this expectation checks (`R1.2`).
    pub fn requirement(mut self, requirement: Requirement) -> Expect {
        self.requirement = requirement;
        self
    }

    /// Met within `deadline` of the moment the case starts waiting.
    pub fn within(mut self, deadline: Deadline) -> Expect {
        self.deadline = Some(deadline);
        self
    }

    /// Met within `deadline` of `from` on the trace's clock (an event already recorded).
    pub fn within_from(mut self, from: Duration, deadline: Deadline) -> Expect {
        self.deadline = Some(deadline);
        self.counted_from = Some(from);
        self
    }

    /// Not met before `earliest` has passed (counted like the deadline): an earlier match is a violation.
    pub fn not_before(mut self, earliest: Deadline) -> Expect {
        self.not_before = Some(earliest);
        self
    }

    /// Whether `event` meets the expectation.
    pub fn matches(&self, event: &TraceEvent, topology: &Topology) -> bool {
        if event.element != self.at {
            return false;
        }
        let Some(message) = event.sip() else { return false };
        let hop = match self.via {
            Some(outbound) => Party::Element(outbound),
            None => Party::Phone,
        };
        let from = topology.party(event.remote.ip());
        let hop_ok = from == hop
            || (self.any_hop && matches!(from, Party::Phone | Party::Element(Element::OutboundA | Element::OutboundB)));
        if !hop_ok {
            return false;
        }
        let aor_ok = |m: &sip::Message| match self.aor_of {
            None => true,
            Some(proxy) => aor_host(m).is_some_and(|h| h.eq_ignore_ascii_case(&topology.fqdn(proxy))),
        };
        let event_ok = |m: &sip::Message| match self.event {
            None => true,
            Some(package) => m.event().ok().flatten().is_some_and(|(p, _)| p.eq_ignore_ascii_case(package)),
        };
        let received_request =
            |method: Method| event.direction == Direction::Received && message.method() == Some(&method);
        let sent_success = |method: Method| {
            event.direction == Direction::Sent
                && message.status().is_some_and(|s| (200..300).contains(&s))
                && message.cseq().is_ok_and(|c| c.method == method)
        };
        match self.kind {
            ExpectKind::Unregister => received_request(Method::Register) && removes_binding(message) && aor_ok(message),
            ExpectKind::Subscribed => {
                sent_success(Method::Subscribe)
                    && message.expires().ok().flatten() != Some(0)
                    && event_ok(message)
                    && subscriber_ok(message, self, topology)
            }
            ExpectKind::Unsubscribe => {
                let dialog_ok = self
                    .in_dialogs
                    .as_ref()
                    .is_none_or(|ids| message.call_id().is_ok_and(|id| ids.iter().any(|known| known == id)));
                received_request(Method::Subscribe)
                    && message.expires().ok().flatten() == Some(0)
                    && event_ok(message)
                    && dialog_ok
            }
            ExpectKind::InviteRequest => received_request(Method::Invite),
            ExpectKind::AnyRequest => event.direction == Direction::Received && message.is_request(),
            ExpectKind::RegisterRequest => {
                event.direction == Direction::Received && message.method() == Some(&Method::Register) && aor_ok(message)
            }
            ExpectKind::Registered => {
                event.direction == Direction::Sent
                    && message.status().is_some_and(|s| (200..300).contains(&s))
                    && message.cseq().is_ok_and(|c| c.method == Method::Register)
                    && message.contacts().is_ok_and(|c| c.iter().any(|c| c.expires() != Some(0)))
                    && aor_ok(message)
            }
        }
    }

    /// The expectation in words, for a failure report.
    pub fn describe(&self, topology: &Topology) -> String {
        let event = self.event.unwrap_or("any");
        let mut text = match self.kind {
            ExpectKind::RegisterRequest => format!("REGISTER at {}", self.at),
            ExpectKind::Registered => format!("registration accepted by {}", self.at),
            ExpectKind::Unregister => format!("un-REGISTER (Expires 0) at {}", self.at),
            ExpectKind::Subscribed => format!("{event} subscription accepted by {}", self.at),
            ExpectKind::Unsubscribe if self.in_dialogs.is_some() => {
                format!("un-SUBSCRIBE (Expires 0) of {event} at {}, ending a subscription made there", self.at)
            }
            ExpectKind::Unsubscribe => format!("un-SUBSCRIBE (Expires 0) of {event} at {}", self.at),
            ExpectKind::InviteRequest => format!("INVITE at {}", self.at),
            ExpectKind::AnyRequest => format!("a request at {}", self.at),
        };
        if let Some(outbound) = self.via {
            let _ = write!(text, " via {outbound}");
        }
        if let Some(transport) = self.transport {
            let _ = write!(text, " (the phone's hop over {transport})");
        }
        if let Some(proxy) = self.aor_of {
            let _ = write!(text, " with AOR host {}", topology.fqdn(proxy));
        }
        if let Some(earliest) = &self.not_before {
            let _ = write!(text, " not before {earliest}");
        }
        if let Some(deadline) = &self.deadline {
            let _ = write!(text, " within {deadline}");
        }
        text
    }
}

/// Whether a REGISTER removes bindings: `Expires: 0` with no other expiry, `expires=0` on every
/// Contact, or `Contact: *` (RFC 3261 §10.2.2).
pub fn removes_binding(message: &sip::Message) -> bool {
    let Ok(contacts) = message.contacts() else { return false };
    let header_zero = message.expires().ok().flatten() == Some(0);
    if contacts.iter().any(|c| matches!(c, sip::Contact::Star)) {
        return header_zero;
    }
    !contacts.is_empty() && contacts.iter().all(|c| c.expires().map_or(header_zero, |e| e == 0))
}

/// For a subscription: when an AOR is named, the subscriber's From host is that proxy's (the
/// AOR the phone subscribes as).
fn subscriber_ok(message: &sip::Message, expect: &Expect, topology: &Topology) -> bool {
    match expect.aor_of {
        None => true,
        Some(proxy) => message
            .from()
            .ok()
            .and_then(|f| f.uri.as_sip().map(|u| u.host.to_string()))
            .is_some_and(|h| h.eq_ignore_ascii_case(&topology.fqdn(proxy))),
    }
}

/// The host of the To URI: the AOR a REGISTER registers.
pub fn aor_host(message: &sip::Message) -> Option<String> {
    let to = message.to().ok()?;
    Some(to.uri.as_sip()?.host.to_string())
}

/// Checks the Request-URI of the REGISTER a 2xx answered names the registrar (BRIEF §2: "at
/// registrar X means ... with X in its Request-URI"). Returns a complaint, or `None` if it does.
pub fn request_uri_complaint(events: &[TraceEvent], response: &TraceEvent, topology: &Topology) -> Option<String> {
    let message = response.sip()?;
    let call_id = message.call_id().ok()?;
    let cseq = message.cseq().ok()?.seq;
    let request = events.iter().rev().find(|e| {
        e.index < response.index
            && e.element == response.element
            && e.direction == Direction::Received
            && e.sip().is_some_and(|m| {
                m.is_request() && m.call_id().ok() == Some(call_id) && m.cseq().is_ok_and(|c| c.seq == cseq)
            })
    })?;
    let uri = request.sip()?.request_uri()?.ok()?;
    let host = uri.as_sip()?.host.to_string();
    // A registrar provisioned as the registrars' SIP service is named by it (RFC 3263).
    let service = response.element.is_registrar()
        && host.trim_end_matches('.').eq_ignore_ascii_case(&topology.registrar_service());
    if topology.element_named(&host) == Some(response.element) || service {
        None
    } else {
        Some(format!("the REGISTER reached {} but its Request-URI names {host}", response.element))
    }
}

/// The phone's own hop of the matched message must have used the case's transport (C1): the
/// matched message itself when it came from the phone, else the request with the same Call-ID
/// and CSeq that reached the outbound proxy. Returns a complaint, or `None`.
pub fn phone_hop_complaint(
    events: &[TraceEvent],
    matched: &TraceEvent,
    expect: &Expect,
    topology: &Topology,
) -> Option<String> {
    let transport = expect.transport?;
    if topology.party(matched.remote.ip()) == Party::Phone {
        return (matched.transport != transport)
            .then(|| format!("the phone reached {} over {}, not {transport}", matched.element, matched.transport));
    }
    let outbound = expect.via?;
    let message = matched.sip()?;
    let (call_id, cseq) = (message.call_id().ok()?, message.cseq().ok()?.seq);
    // The phone's own hop of the matched message: same Call-ID and CSeq, not merely the first
    // request of the Call-ID (a dialog may have started over another transport).
    let hop = events.iter().rev().find(|e| {
        e.index < matched.index
            && e.element == outbound
            && e.direction == Direction::Received
            && topology.party(e.remote.ip()) == Party::Phone
            && e.sip().is_some_and(|m| m.call_id().ok() == Some(call_id) && m.cseq().is_ok_and(|c| c.seq == cseq))
    })?;
    (hop.transport != transport)
        .then(|| format!("the phone reached {outbound} over {}, not {transport}", hop.transport))
}

/// What the phone sent in `events`, in a sentence for "arrived" in a failure report, each part
/// with its message numbers in the ladder (`#12`, `#12..#30` for a run of the same), and those
/// numbers.
pub fn arrivals(events: &[TraceEvent], topology: &Topology) -> (String, Vec<usize>) {
    // (what, how many, first and last message number)
    let mut groups: Vec<(String, usize, usize, usize)> = Vec::new();
    let mut numbers = Vec::new();
    for event in events {
        let from = topology.party(event.remote.ip());
        let from_outbound = matches!(from, Party::Element(Element::OutboundA | Element::OutboundB));
        if event.direction != Direction::Received || !(from == Party::Phone || from_outbound) {
            continue;
        }
        let what = match &event.payload {
            Payload::Sip(m) if m.is_request() => {
                let method = m.method().map(|m| m.to_string()).unwrap_or_default();
                let mut s = format!("{method} at {}", event.element);
                if m.method() == Some(&Method::Register)
                    && let Some(host) = aor_host(m)
                {
                    let _ = write!(s, " (AOR host {host}");
                    if m.header(&HeaderName::Expires) == Some("0") {
                        s.push_str(", Expires 0");
                    }
                    s.push(')');
                }
                s
            }
            Payload::Sip(m) => format!("{} response at {}", m.status().unwrap_or(0), event.element),
            Payload::Malformed(_) => format!("a malformed message at {}", event.element),
            Payload::Dns(crate::trace::DnsRecord::Query { name, record_type, .. }) => {
                format!("DNS {record_type} {name}")
            }
            Payload::Dns(_) => continue,
            Payload::Stun(_) => format!("STUN at {}", event.element),
            Payload::KeepAlive => format!("keep-alive at {}", event.element),
            Payload::Action(_) => continue,
            Payload::Refused(crate::trace::RefusedAttempt::Datagram(inner)) => match &**inner {
                Payload::Sip(m) => {
                    format!(
                        "{} at {}",
                        m.method().map(|m| m.to_string()).unwrap_or_else(|| "a response".into()),
                        event.element
                    )
                }
                _ => format!("a datagram at {}", event.element),
            },
            Payload::Refused(crate::trace::RefusedAttempt::Connect) => format!("a connection to {}", event.element),
        };
        let what =
            if from_outbound { format!("{what} via {from}") } else { format!("{what} over {}", event.transport) };
        let what = match &event.fate {
            Fate::Delivered => what,
            Fate::Dropped(why) if matches!(event.payload, Payload::Refused(_)) => format!("{what} [{why}]"),
            Fate::Dropped(fault) => format!("{what} [dropped: {fault}]"),
        };
        numbers.push(event.index);
        match groups.last_mut() {
            Some((last, n, _, until)) if *last == what => {
                *n += 1;
                *until = event.index;
            }
            _ => groups.push((what, 1, event.index, event.index)),
        }
    }
    if groups.is_empty() {
        return ("nothing from the phone".into(), numbers);
    }
    let parts: Vec<String> = groups
        .into_iter()
        .map(|(what, n, first, last)| match n {
            1 => format!("{what} (#{first})"),
            _ => format!("{n}x {what} (#{first}..#{last})"),
        })
        .collect();
    (parts.join("; "), numbers)
}
