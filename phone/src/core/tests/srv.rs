//! One configured server name with several SRV targets (RFC 3263 §4.3, F5): the next target on 503, timeout and transport error on UDP, TCP and TLS, and which requests ask the DNS.

use std::time::Duration;

use sip::Method;

use super::simulated::*;
use crate::quirks::{Quirk, Quirks};

fn s(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// Row 1 with the registrar a service domain (`lab.test`, port 0: NAPTR/SRV) and no backup
/// registrar; the DNS names registrar-a first, registrar-b second (SRV priorities 10 and 20).
fn srv_lab(transport: &str, quirks: Quirks) -> SimLab {
    let cfg = ROW_1.replace(
        "sip registrar ip: registrar-a.lab.test\nsip registrar port: 5060\n\
         sip backup registrar ip: registrar-b.lab.test\nsip backup registrar port: 5060\n",
        "sip registrar ip: lab.test\nsip registrar port: 0\n",
    );
    assert_ne!(cfg, ROW_1, "the registrar lines of ROW_1 changed");
    let mut lab = SimLab::new(&format!("{cfg}sip transport protocol: {transport}\n"), quirks);
    lab.dns.insert("lab.test".into(), vec![addr(REGISTRAR_A), addr(REGISTRAR_B)]);
    lab.core.start(lab.now);
    lab.settle();
    lab.run_for(ms(100));
    lab
}

/// REGISTERs that ask for a binding (over TLS a new connection is a new Contact, and the old
/// one's binding is un-REGISTERed as well: not counted).
fn registers_to(lab: &SimLab, server: &str, since: Duration) -> usize {
    lab.requests(Method::Register, since).iter().filter(|r| r.to == addr(server) && r.expires() != Some(0)).count()
}

const TRANSPORTS: [(&str, &str); 3] = [("1", "UDP"), ("2", "TCP"), ("4", "TLS")];

#[test]
fn the_register_names_the_service_domain_and_goes_to_the_first_srv_target() {
    for (transport, name) in TRANSPORTS {
        let lab = srv_lab(transport, Quirks::none());
        let registers = lab.requests(Method::Register, Duration::ZERO);
        assert!(!registers.is_empty(), "{name}: no REGISTER\n{}", lab.dump(Duration::ZERO));
        assert!(registers.iter().all(|r| r.to == addr(REGISTRAR_A)), "{name}\n{}", lab.dump(Duration::ZERO));
        assert!(registers.iter().all(|r| r.request_uri() == "sip:lab.test"), "{name}\n{}", lab.dump(Duration::ZERO));
        assert_eq!(lab.resolved.iter().filter(|n| *n == "lab.test").count(), 1, "{name}");
    }
}

#[test]
fn a_failing_first_target_passes_the_request_to_the_second_on_every_transport() {
    for (transport, name) in TRANSPORTS {
        for behaviour in [Behaviour::Reject(503), Behaviour::Silent, Behaviour::Refuse] {
            let mut lab = srv_lab(transport, Quirks::none());
            let since = lab.elapsed();
            lab.set(REGISTRAR_A, behaviour);
            // The refresh at half the 20 s expiry, plus one transaction timer at registrar-a.
            lab.run_for(s(12));
            let context = format!("{name} {behaviour:?}\n{}", lab.dump(since));
            assert!(registers_to(&lab, REGISTRAR_A, since) >= 1, "the refresh tries registrar-a first: {context}");
            assert_eq!(registers_to(&lab, REGISTRAR_B, since), 1, "then registrar-b, in the same request: {context}");
            let at_b = lab.requests(Method::Register, since).into_iter().find(|r| r.to == addr(REGISTRAR_B)).unwrap();
            assert_eq!(at_b.request_uri(), "sip:lab.test", "{context}");
        }
    }
}

#[test]
fn after_moving_to_the_second_target_udp_starts_each_request_at_the_first_and_a_connection_stays() {
    for (transport, name) in TRANSPORTS {
        let mut lab = srv_lab(transport, Quirks::none());
        lab.set(REGISTRAR_A, Behaviour::Reject(503));
        lab.run_for(s(12));
        lab.set(REGISTRAR_A, Behaviour::Answer);
        let since = lab.elapsed();
        lab.run_for(s(10));
        let context = format!("{name}\n{}", lab.dump(since));
        if transport == "1" {
            assert_eq!(
                registers_to(&lab, REGISTRAR_A, since),
                1,
                "UDP: every request starts at priority 10: {context}"
            );
            assert_eq!(registers_to(&lab, REGISTRAR_B, since), 0, "{context}");
        } else {
            assert_eq!(registers_to(&lab, REGISTRAR_A, since), 0, "{context}");
            assert_eq!(registers_to(&lab, REGISTRAR_B, since), 1, "TCP/TLS: the open connection serves: {context}");
        }
    }
}

#[test]
fn requests_on_an_open_connection_do_not_ask_the_dns_but_with_requery_dns_every_request_does() {
    for (transport, name) in &TRANSPORTS[1..] {
        let mut lab = srv_lab(transport, Quirks::none());
        let (lookups, opened) = (lab.resolved.len(), lab.opened.len());
        lab.run_for(s(21));
        assert_eq!(lab.resolved.len(), lookups, "{name}: {:?}", lab.resolved);
        assert_eq!(lab.opened.len(), opened, "{name}");

        let mut lab = srv_lab(transport, Quirks::none().with(Quirk::RequeryDns));
        let (lookups, opened) = (lab.resolved.len(), lab.opened.len());
        let since = lab.elapsed();
        lab.run_for(s(21));
        let requests = lab.since(since).iter().filter(|m| m.method().is_some()).count();
        assert!(requests >= 3, "{name}: refreshes of the registration and the subscriptions\n{}", lab.dump(since));
        assert_eq!(lab.resolved.len(), lookups + requests, "{name}: one lookup per request: {:?}", lab.resolved);
        assert_eq!(lab.opened.len(), opened, "{name}: the answers name the open connections, so they serve");
    }
}

#[test]
fn with_requery_dns_a_request_still_uses_the_answer_it_got() {
    let mut lab = srv_lab("2", Quirks::none().with(Quirk::RequeryDns));
    lab.dns.insert("lab.test".into(), vec![addr(REGISTRAR_B)]);
    let since = lab.elapsed();
    lab.run_for(s(11));
    assert_eq!(registers_to(&lab, REGISTRAR_A, since), 0, "{}", lab.dump(since));
    assert_eq!(registers_to(&lab, REGISTRAR_B, since), 1, "{}", lab.dump(since));
}
