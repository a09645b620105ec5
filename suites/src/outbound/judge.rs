//! The RFC 5626 checks as pure functions of the trace: the outbound Contact of a REGISTER, keep-alives and their spacing, attempts at a failed flow and their backoff.

use std::net::IpAddr;
use std::time::Duration;

use harness::trace::{Direction, Payload};
use harness::{CaseError, Element, Lab, Requirement, TraceEvent, Transport, Violation};
use sip::{HeaderName, Method, StunClass};

pub(crate) fn violation(requirement: Requirement, expected: String, arrived: String, message: &str) -> CaseError {
    Violation::new(requirement, expected, arrived, message.into()).into()
}

/// The REGISTER a registrar's 2xx answered, as the phone sent it: the request received on the
/// phone's own hop (the outbound proxy, else the registrar) with the response's Call-ID and CSeq.
pub fn registration_request<'a>(events: &'a [TraceEvent], accepted: &TraceEvent) -> Option<&'a TraceEvent> {
    let answer = accepted.sip()?;
    let (call_id, cseq) = (answer.call_id().ok()?, answer.cseq().ok()?);
    events.iter().find(|e| {
        e.direction == Direction::Received
            && e.sip().is_some_and(|m| {
                m.method() == Some(&Method::Register)
                    && m.call_id().is_ok_and(|c| c == call_id)
                    && m.cseq().is_ok_and(|c| c == cseq)
                    && m.vias().is_ok_and(|v| v.len() == 1)
            })
    })
}

/// What RFC 5626 §4.2.1 puts on a REGISTER: the device's instance and the flow's reg-id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundContact {
    pub instance: String,
    pub reg_id: u32,
}

/// F2: the REGISTER that `accepted` answered carries `Supported: outbound` and one Contact with
/// `+sip.instance` (a URN in angle brackets) and `reg-id` (RFC 5626 §4.2.1; draft-15 has the
/// same forms).
pub fn outbound_contact(
    lab: &Lab,
    accepted: &TraceEvent,
    requirement: Requirement,
) -> Result<OutboundContact, CaseError> {
    let events = lab.trace().snapshot();
    let Some(register) = registration_request(&events, accepted).and_then(TraceEvent::sip) else {
        return Err(CaseError::Harness(harness::HarnessError::Other(
            "the accepted registration's REGISTER is not in the trace".into(),
        )));
    };
    let expected = "a REGISTER with Supported: outbound and a Contact with +sip.instance=\"<urn:...>\" and reg-id (RFC 5626 §4.2.1)";
    if !register.has_option_tag(&HeaderName::Supported, "outbound") {
        let supported = register.header(&HeaderName::Supported).unwrap_or("none");
        return Err(violation(
            requirement,
            expected.into(),
            format!("Supported: {supported}"),
            "no Supported: outbound",
        ));
    }
    let contacts = register.contacts().unwrap_or_default();
    let found = contacts.iter().find_map(|c| {
        let instance = c.instance()?;
        let urn = instance.trim_matches('"');
        (urn.starts_with("<urn:") && urn.ends_with('>')).then(|| (urn.to_owned(), c.reg_id()))
    });
    match found {
        Some((instance, Some(reg_id))) if reg_id > 0 => Ok(OutboundContact { instance, reg_id }),
        Some((instance, _)) => Err(violation(
            requirement,
            expected.into(),
            format!("+sip.instance {instance} without a positive reg-id"),
            "no reg-id on the outbound Contact",
        )),
        None => Err(violation(
            requirement,
            expected.into(),
            format!("Contact: {}", register.header(&HeaderName::Contact).unwrap_or("none")),
            "no +sip.instance URN on the Contact",
        )),
    }
}

/// F2 (RFC 5626 §4.1): the instance identifies the device, so `later` (registered `when`) carries
/// the `+sip.instance` `first` did.
pub fn same_instance(first: &OutboundContact, later: &OutboundContact, when: &str) -> Result<(), CaseError> {
    if later.instance == first.instance {
        return Ok(());
    }
    Err(violation(
        Requirement::F2,
        format!("the same +sip.instance {when}: {}", first.instance),
        format!("+sip.instance {}", later.instance),
        &format!("the phone registered another +sip.instance {when}"),
    ))
}

/// One keep-alive the phone sent an element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    pub at: Duration,
    pub kind: &'static str,
    pub transport: Transport,
}

/// The keep-alives the phone sent `element` from `from` on: CRLF pings and STUN binding
/// requests (a STUN retransmission, same transaction id, counted once).
pub fn keepalives_to(events: &[TraceEvent], element: Element, from: Duration) -> Vec<Keepalive> {
    let mut seen_stun = Vec::new();
    events
        .iter()
        .filter(|e| e.element == element && e.direction == Direction::Received && e.at >= from)
        .filter_map(|e| {
            let kind = match &e.payload {
                Payload::KeepAlive => "CRLF ping",
                Payload::Stun(stun) if stun.class == StunClass::BindingRequest => {
                    if seen_stun.contains(&stun.transaction_id) {
                        return None;
                    }
                    seen_stun.push(stun.transaction_id);
                    "STUN binding request"
                }
                _ => return None,
            };
            Some(Keepalive { at: e.at, kind, transport: e.transport })
        })
        .collect()
}

/// F3: keep-alives of the transport's kind (STUN on UDP, CRLF on TCP/TLS: RFC 5626 §4.4), the
/// first within `Flow-Timer` of the registration, each next at 80-100% of `Flow-Timer` after the
/// one before (§4.4.1), at least `gaps` of them. Late timers only lengthen a gap, so the lower
/// bound allows a quarter of the jitter (trace timestamps), the upper the whole.
pub fn spaced_keepalives(
    keepalives: &[Keepalive],
    registered_at: Duration,
    flow_timer: Duration,
    gaps: u32,
    jitter: Duration,
) -> Result<(), CaseError> {
    let (low, high) = (flow_timer.mul_f64(0.8), flow_timer);
    let expected = format!(
        "keep-alives every {:.2}-{:.2} s (80-100% of Flow-Timer {} s, RFC 5626 §4.4.1), at least {} in a row",
        low.as_secs_f64(),
        high.as_secs_f64(),
        flow_timer.as_secs(),
        gaps + 1
    );
    for keepalive in keepalives {
        let wanted = if keepalive.transport == Transport::Udp { "STUN binding request" } else { "CRLF ping" };
        if keepalive.kind != wanted {
            return Err(violation(
                Requirement::F3,
                format!("a {wanted} as keep-alive over {} (RFC 5626 §4.4)", keepalive.transport),
                format!("a {} over {}", keepalive.kind, keepalive.transport),
                "the wrong kind of keep-alive for the transport",
            ));
        }
    }
    let mut previous = registered_at;
    for (n, keepalive) in keepalives.iter().enumerate() {
        let gap = keepalive.at.saturating_sub(previous);
        let what = if n == 0 { "after the registration" } else { "after the keep-alive before" };
        if gap > high + jitter || (n > 0 && gap + jitter / 4 < low) {
            return Err(violation(
                Requirement::F3,
                expected,
                format!("keep-alive {} {:.2} s {what}", n + 1, gap.as_secs_f64()),
                "keep-alives off the Flow-Timer's spacing",
            ));
        }
        previous = keepalive.at;
    }
    if keepalives.len() <= gaps as usize {
        return Err(violation(
            Requirement::F3,
            expected,
            format!("{} keep-alives", keepalives.len()),
            "too few keep-alives on the flow",
        ));
    }
    Ok(())
}

/// When the phone began a new transaction at `element` from `from` on (requests it sent there;
/// a retransmission, same Call-ID and CSeq, counted once).
pub fn attempts_at(events: &[TraceEvent], element: Element, phone: IpAddr, from: Duration) -> Vec<Duration> {
    let mut seen: Vec<(String, String)> = Vec::new();
    events
        .iter()
        .filter(|e| e.element == element && e.direction == Direction::Received && e.at >= from)
        .filter(|e| e.remote.ip() == phone)
        .filter_map(|e| {
            let message = e.sip().filter(|m| m.is_request())?;
            let key = (message.call_id().ok()?.to_owned(), message.cseq().ok()?.to_string());
            if seen.contains(&key) {
                return None;
            }
            seen.push(key);
            Some(e.at)
        })
        .collect()
}

/// F4, RFC 5626 §4.5 (a breach cites F4, the bullet the backoff serves): after the request that failed (`tried[0]`), attempt n comes after a wait
/// of `min(max-time, base-time * 2^n)` times 0.5 to 1 since attempt n-1 (each answered at once);
/// at least `attempts` of them.
pub fn backed_off(tried: &[Duration], timing: &harness::Timing, attempts: usize) -> Result<(), CaseError> {
    let jitter = timing.jitter();
    let Some(&failed) = tried.first() else {
        return Err(violation(
            Requirement::F4,
            "the failing request at the primary outbound proxy".into(),
            "no request reached it after the fault".into(),
            "nothing to measure the backoff from",
        ));
    };
    let mut previous = failed;
    for n in 1..=attempts {
        let (low, high) = timing.backoff_bounds(n as u32);
        let expected = format!(
            "attempt {n} at the failed flow {:.2}-{:.2} s after the one before (RFC 5626 §4.5: min(max-time, base-time * 2^{n}) * 0.5..1)",
            low.as_secs_f64(),
            high.as_secs_f64()
        );
        let Some(&at) = tried.get(n) else {
            return Err(violation(
                Requirement::F4,
                expected,
                format!("{} attempts after the failure", n - 1),
                "the failed flow is not re-established in the background",
            ));
        };
        let gap = at.saturating_sub(previous);
        if gap + jitter / 4 < low || gap > high + jitter {
            return Err(violation(
                Requirement::F4,
                expected,
                format!("attempt {n} {:.2} s after the one before", gap.as_secs_f64()),
                "a flow re-established off the RFC 5626 backoff",
            ));
        }
        previous = at;
    }
    Ok(())
}
