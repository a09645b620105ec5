//! Where the Contact says the phone is: its listening socket over UDP and TCP, and over TLS, where refphone has no listener, the connection the request left on (Via `;alias`, RFC 5923), registered again when that connection is lost.

use std::time::Duration;

use sip::{HeaderName, Method, SipUri, Via};

use super::simulated::*;
use crate::quirks::Quirks;

fn s(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

fn tls() -> String {
    format!("{ROW_1}sip transport protocol: 4\n")
}

fn contact_uri(sent: &Sent) -> SipUri {
    let contacts = sent.message.contacts().expect("a readable Contact");
    let address = contacts.first().and_then(|c| c.address()).expect("one Contact address");
    address.uri.as_sip().expect("a sip: Contact").clone()
}

fn via(sent: &Sent) -> Via {
    sent.message.top_via().expect("a readable Via")
}

fn registers(lab: &SimLab, since: Duration) -> Vec<Sent> {
    lab.requests(Method::Register, since)
}

#[test]
fn over_tls_every_contact_names_the_connection_its_request_left_on_and_the_via_carries_alias() {
    let lab = SimLab::started(&tls(), Quirks::none());
    let sent: Vec<Sent> = lab
        .since(s(0))
        .into_iter()
        .filter(|s| matches!(s.method(), Some(Method::Register) | Some(Method::Subscribe)))
        .collect();
    assert!(sent.iter().any(|s| s.to == addr(PROXY_A)), "SUBSCRIBEs went to proxy-a too: {}", lab.dump(s(0)));
    for request in &sent {
        let (contact, via) = (contact_uri(request), via(request));
        assert_eq!(via.transport, "TLS");
        assert!(via.params.has("alias"), "RFC 5923 alias on {:?}", request.header(HeaderName::Via));
        assert!(via.params.has("rport"));
        assert_eq!(contact.host.to_string(), PHONE);
        assert_eq!(contact.port, via.port, "the Contact names the connection's local port: {contact}");
        assert_ne!(contact.port, Some(5061), "no TLS listener at 5061: {contact}");
        assert_eq!(contact.params.value("transport"), Some("tls"));
    }
    let to_registrar = contact_uri(&sent[0]);
    let to_proxy = sent.iter().find(|s| s.to == addr(PROXY_A)).map(contact_uri).unwrap();
    assert_ne!(to_registrar.port, to_proxy.port, "each connection names itself");
}

#[test]
fn over_tcp_and_udp_the_contact_names_the_listening_socket_and_the_via_has_no_alias() {
    for (cfg, transport) in [(format!("{ROW_1}sip transport protocol: 2\n"), Some("tcp")), (ROW_1.to_owned(), None)] {
        let lab = SimLab::started(&cfg, Quirks::none());
        let register = &registers(&lab, s(0))[0];
        let contact = contact_uri(register);
        assert_eq!(
            contact.to_string(),
            format!("sip:1001@{PHONE}:5060{}", transport.map(|t| format!(";transport={t}")).unwrap_or_default())
        );
        assert!(!via(register).params.has("alias"), "{:?}", register.header(HeaderName::Via));
    }
}

#[test]
fn a_lost_tls_connection_is_registered_again_at_once_and_the_old_contact_released() {
    let mut lab = SimLab::started(&tls(), Quirks::none());
    lab.run_for(s(3));
    let first = contact_uri(&registers(&lab, s(0))[0]);
    let lost_at = lab.elapsed();
    lab.close_flows_to(REGISTRAR_A);
    let after = registers(&lab, lost_at);
    assert!(after.len() >= 2, "a REGISTER and an un-REGISTER at once, not at the 10 s refresh: {}", lab.dump(s(0)));
    let (register, release) = (&after[0], &after[1]);
    assert_eq!((register.at, register.to, register.expires()), (lost_at, addr(REGISTRAR_A), Some(20)));
    let second = contact_uri(register);
    assert_ne!(second.port, first.port, "the new connection's port");
    assert_eq!(second.port, via(register).port);
    assert_eq!((release.to, release.expires()), (addr(REGISTRAR_A), Some(0)));
    assert_eq!(contact_uri(release), first, "the released binding is named by the Contact it was made with");
    assert_eq!(release.call_id(), register.call_id(), "one call leg per registrar and AOR");
    assert!(matches!(lab.core.registration_state(), crate::core::RegistrationState::Registered { .. }));
}

#[test]
fn a_lost_tcp_connection_waits_for_the_refresh_as_its_listener_still_answers() {
    let mut lab = SimLab::started(&format!("{ROW_1}sip transport protocol: 2\n"), Quirks::none());
    lab.run_for(s(3));
    lab.close_flows_to(REGISTRAR_A);
    lab.run_for(s(6));
    assert_eq!(registers(&lab, s(0)).len(), 1, "{}", lab.dump(s(0)));
    lab.run_for(s(2));
    let refresh = &registers(&lab, s(0))[1];
    assert_eq!((refresh.at, contact_uri(refresh).port), (s(10), Some(5060)));
}
