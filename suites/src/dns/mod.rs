//! F5, DNS (RFC 3263): the registrar named by the registrars' SIP service (NAPTR, SRV with registrar-a preferred): SRV priority, the next target, TTLs honoured, and the DNS itself failing.

use std::sync::Arc;
use std::time::Duration;

use harness::dns::SERVICE_TTL_S;
use harness::trace::Direction;
use harness::{
    Case, CaseError, Configuration, Deadline, Element, Event, Fault, Lab, LabSpec, Needs, Requirement, SteadyRules,
    Timers, TraceEvent, Transport,
};
use sip::Method;

use crate::failover::TRANSPORTS;
use crate::steps::{Placement, starts_at, stays_at};

/// Registered at the preferred SRV target.
const AT_A: Placement =
    Placement { registrar: Element::RegistrarA, aor_of: Element::ProxyA, proxy: Element::ProxyA, via: None };
/// Registered at the other SRV target.
const AT_B: Placement = Placement { registrar: Element::RegistrarB, ..AT_A };

/// The faults that send a request to the next SRV target (RFC 3263 §4.3: 503, timeout,
/// transport error).
pub const NEXT_TARGET_FAULTS: [Fault; 3] =
    [Fault::Silent, Fault::Refuse, Fault::Reject { code: 503, retry_after: None }];

/// The DNS faults the phone must ride out with the answers it has.
pub const DNS_FAULTS: [Fault; 2] = [Fault::Silent, Fault::Refuse];

/// The registrar provisioned as the registrars' SIP service (`sip registrar ip: registrars.<zone>`, port 0).
fn registrar_as_service(spec: &mut LabSpec) {
    spec.registrar_service = true;
}

pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for transport in TRANSPORTS {
        let case = |behaviour: &str, fault: Option<Fault>, requirements: Vec<Requirement>| Case {
            id: Case::id_of("dns", Configuration::NoOutbound, behaviour, fault, transport),
            requirements,
            configuration: Configuration::NoOutbound,
            transport,
            fault,
            needs: Needs::default(),
            timers: Timers::fast(),
            lab: registrar_as_service,
            run: Arc::new(|_| Box::pin(async { Ok(()) })),
        };
        cases.push(Case {
            run: Arc::new(|lab| Box::pin(srv_priority(lab))),
            ..case("srv-priority", None, vec![Requirement::F5, Requirement::C1])
        });
        for fault in NEXT_TARGET_FAULTS {
            cases.push(Case {
                run: Arc::new(move |lab| Box::pin(next_target(lab, fault))),
                ..case("next-srv-target", Some(fault), vec![Requirement::F5, Requirement::C1])
            });
        }
        cases.push(Case {
            run: Arc::new(|lab| Box::pin(ttl_honoured(lab))),
            ..case("record-changes", None, vec![Requirement::F5, Requirement::C1])
        });
        for fault in DNS_FAULTS {
            cases.push(Case {
                run: Arc::new(move |lab| Box::pin(dns_fails(lab, fault))),
                ..case("dns-fails", Some(fault), vec![Requirement::F5])
            });
        }
    }
    cases
}

/// F5: SRV priority is strict (RFC 2782): every REGISTER goes to the priority-10 target,
/// registrar-a, never to registrar-b while registrar-a answers.
async fn srv_priority(lab: &mut Lab) -> Result<(), CaseError> {
    starts_at(lab, AT_A, false, Requirement::F5).await?;
    stays_at(lab, AT_A, Requirement::F5).await
}

/// F5, RFC 3263 §4.3: registrar-a fails (no answer, closed, 503): the REGISTER goes on to the
/// next SRV target, registrar-b.
async fn next_target(lab: &mut Lab, fault: Fault) -> Result<(), CaseError> {
    starts_at(lab, AT_A, false, Requirement::F5).await?;
    lab.fail(Element::RegistrarA, fault);
    let timing = lab.timing().clone();
    let deadline = timing.registrar_failover(timing.detect(fault));
    lab.expect(AT_B.registration(Requirement::F5).within(deadline)).await?;
    Ok(())
}

/// Makes registrar-b the preferred SRV target on every transport.
async fn prefer_registrar_b(lab: &mut Lab) -> Result<(), CaseError> {
    let service = lab.topology.registrar_service();
    let (b, a) = (lab.topology.fqdn(Element::RegistrarB), lab.topology.fqdn(Element::RegistrarA));
    for (prefix, port) in [("_sip._udp", 5060), ("_sip._tcp", 5060), ("_sips._tcp", 5061)] {
        let records = [format!("10 60 {port} {b}."), format!("20 60 {port} {a}.")];
        let records: Vec<&str> = records.iter().map(String::as_str).collect();
        lab.zone()
            .set(&format!("{prefix}.{service}"), "SRV", SERVICE_TTL_S, &records)
            .await
            .map_err(|e| CaseError::Harness(harness::HarnessError::Other(format!("changing the SRV records: {e}"))))?;
    }
    lab.note_action(Element::Dns, "zone: SRV prefers registrar-b");
    Ok(())
}

/// A new connection is what makes a TCP or TLS request need the name (BRIEF §2): registrar-a's
/// flows are reset so the next REGISTER opens one.
fn needs_the_name_again(lab: &mut Lab) {
    if lab.provisioning.transport != Transport::Udp {
        lab.event(Element::RegistrarA, Event::Reset);
    }
}

/// F5: the SRV records change to prefer registrar-b. Until the old answer's TTL runs out the phone
/// may use either; after it, the first REGISTER that needs the name (any over UDP; over TCP and
/// TLS one that opens a connection) goes to registrar-b, and none reaches registrar-a again.
async fn ttl_honoured(lab: &mut Lab) -> Result<(), CaseError> {
    starts_at(lab, AT_A, false, Requirement::F5).await?;
    prefer_registrar_b(lab).await?;
    let ttl = Duration::from_secs(SERVICE_TTL_S.into());
    let expired_at = lab.trace().now() + ttl;
    let timing = lab.timing().clone();
    // Re-querying early is allowed, so either registrar may hold the phone until the TTL ran out.
    let rules = SteadyRules::new(Element::RegistrarA, Requirement::F5, timing.probe_spacing()).registrar_may_change();
    lab.hold(unused_but_registrars(rules), ttl + timing.jitter() / 4).await?;
    needs_the_name_again(lab);
    let reconnected_at = lab.trace().now();
    let deadline = timing.next_register().plus("scheduling jitter", timing.jitter());
    lab.expect(AT_B.registration(Requirement::F5).within(deadline)).await?;
    let stale_after = if lab.provisioning.transport == Transport::Udp { expired_at } else { reconnected_at };
    no_register_at_a_after(lab, stale_after, "the old answer's TTL ran out")?;
    stays_at(lab, AT_B, Requirement::F5).await
}

/// F5: the DNS stops answering (`silent`, `refuse`). The phone keeps working with the answers it
/// has, past their TTL (allowed while no fresh answer can be had). Meanwhile the records change;
/// once the DNS answers again, the first REGISTER that needs the name uses the fresh answer.
async fn dns_fails(lab: &mut Lab, fault: Fault) -> Result<(), CaseError> {
    starts_at(lab, AT_A, false, Requirement::F5).await?;
    lab.fail(Element::Dns, fault);
    let timing = lab.timing().clone();
    let ttl = Duration::from_secs(SERVICE_TTL_S.into());
    let query_timeout = Deadline::of("a DNS query timing out (transaction timer)", timing.transaction_timeout());
    // Past the TTL, still registered at registrar-a: the old answer kept.
    let rules = SteadyRules::new(Element::RegistrarA, Requirement::F5, timing.probe_spacing());
    lab.hold(unused_but_registrars(rules).unused(Element::RegistrarB, Requirement::F5), ttl + timing.jitter()).await?;
    let deadline = timing.next_register().and(query_timeout.clone()).plus("scheduling jitter", timing.jitter());
    lab.expect(AT_A.registration(Requirement::F5).within(deadline)).await?;
    prefer_registrar_b(lab).await?;
    lab.restore(Element::Dns);
    needs_the_name_again(lab);
    // A query sent before the DNS returned may still time out and its request use the old answer;
    // the request after it needs a fresh one.
    let deadline = query_timeout
        .plus("the next REGISTER", timing.next_register().limit() * 2)
        .plus("scheduling jitter", timing.jitter());
    lab.expect(AT_B.registration(Requirement::F5).within(deadline)).await?;
    stays_at(lab, AT_B, Requirement::F5).await
}

/// Rules for a window in which the phone may use either registrar: nothing at the other elements.
fn unused_but_registrars(mut rules: SteadyRules) -> SteadyRules {
    for element in Element::SIP.into_iter().filter(|e| !e.is_registrar() && *e != Element::ProxyA) {
        rules = rules.unused(element, Requirement::F5);
    }
    rules
}

/// F5: no REGISTER transaction begun at registrar-a after `after` (plus a tenth of the jitter for
/// the trace's timestamps): it would have used an answer past its TTL.
fn no_register_at_a_after(lab: &Lab, after: Duration, why: &str) -> Result<(), CaseError> {
    let events = lab.trace().snapshot();
    let boundary = after + lab.timing().jitter() / 10;
    if let Some(stale) = first_new_register(&events, Element::RegistrarA, lab.topology.phone_ip(), boundary) {
        return Err(CaseError::from(
            harness::Violation::new(
                Requirement::F5,
                format!(
                    "no REGISTER at registrar-a after {why} ({:.2} s): the fresh answer names registrar-b first",
                    boundary.as_secs_f64()
                ),
                format!("#{} a REGISTER at registrar-a at {:.2} s", stale.index, stale.at.as_secs_f64()),
                "a DNS answer used after its TTL ran out".into(),
            )
            .pointing_at(vec![stale.index]),
        ));
    }
    Ok(())
}

/// The first REGISTER transaction the phone began at `element` after `boundary` (its first
/// request after it; a retransmission of an earlier one, or its retry with credentials, is not new).
fn first_new_register(
    events: &[TraceEvent],
    element: Element,
    phone: std::net::IpAddr,
    boundary: Duration,
) -> Option<&TraceEvent> {
    let register = |e: &&TraceEvent| {
        e.element == element
            && e.direction == Direction::Received
            && e.remote.ip() == phone
            && e.sip().is_some_and(|m| m.method() == Some(&Method::Register))
    };
    let key = |e: &TraceEvent| e.sip().and_then(|m| Some((m.call_id().ok()?.to_owned(), m.cseq().ok()?.seq)));
    let earlier: Vec<_> = events.iter().filter(register).filter(|e| e.at <= boundary).filter_map(key).collect();
    // A request answered with credentials goes to the server that challenged it: it finishes the
    // earlier request rather than needing the name anew.
    let credential_retry = |e: &TraceEvent, (call_id, seq): &(String, u32)| {
        e.sip().is_some_and(|m| m.header(&sip::HeaderName::Authorization).is_some())
            && earlier.iter().any(|(c, s)| c == call_id && s + 1 == *seq)
    };
    events
        .iter()
        .filter(register)
        .find(|e| e.at > boundary && key(e).is_none_or(|k| !earlier.contains(&k) && !credential_retry(e, &k)))
}
