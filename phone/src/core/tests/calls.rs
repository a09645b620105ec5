//! Calls placed by the XML push, DNS needs per transport, and the transport quirks, driven through the core.

use std::time::Duration;

use sip::{HeaderName, Message, Method};

use super::simulated::*;
use super::{TestPhone, ms};
use crate::core::*;
use crate::quirks::{Quirk, Quirks};

fn s(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

#[test]
fn dial_sends_an_invite_with_an_sdp_offer_acks_the_2xx_and_hangs_up_after_the_call_duration() {
    let cfg = format!("{ROW_1}refphone call duration: 3\n");
    let mut lab = SimLab::started(&cfg, Quirks::none());
    let dialed_at = lab.elapsed();
    lab.core.on_push(lab.now, PushCommand::Dial("1234".into()));
    lab.run_for(s(5));
    let invite = &lab.requests(Method::Invite, s(0))[0];
    assert_eq!(invite.to, addr(PROXY_A));
    assert_eq!(invite.request_uri(), "sip:1234@proxy-a.lab.test");
    assert_eq!(invite.header(HeaderName::To), Some("<sip:1234@proxy-a.lab.test>"));
    assert!(invite.header(HeaderName::From).unwrap().contains("<sip:1001@proxy-a.lab.test>;tag="));
    assert_eq!(invite.header(HeaderName::ContentType), Some("application/sdp"));
    let sdp = String::from_utf8(invite.message.body.clone()).unwrap();
    assert!(
        sdp.starts_with("v=0\r\n")
            && sdp.contains("c=IN IP4 127.66.0.20\r\n")
            && sdp.contains("m=audio 3000 RTP/AVP 0 8 101")
    );
    let ack = &lab.requests(Method::Ack, s(0))[0];
    assert_eq!(ack.request_uri(), "sip:callee@127.66.0.99:5060", "the ACK goes to the callee's Contact");
    assert_eq!(ack.header(HeaderName::CSeq), Some("1 ACK"));
    assert_eq!(ack.call_id(), invite.call_id());
    assert!(ack.header(HeaderName::To).unwrap().contains("tag="));
    let bye = &lab.requests(Method::Bye, s(0))[0];
    assert_eq!(bye.at - dialed_at, s(3));
    assert_eq!(bye.header(HeaderName::CSeq), Some("2 BYE"));
    assert_eq!(bye.call_id(), invite.call_id());
}

#[test]
fn dial_goes_through_the_active_outbound_proxy_to_the_active_proxy() {
    let mut lab = SimLab::started(&row_2(), Quirks::none());
    lab.core.on_push(lab.now, PushCommand::Dial("1234".into()));
    lab.settle();
    let invite = &lab.requests(Method::Invite, s(0))[0];
    assert_eq!(invite.to, addr(OUTBOUND_A));
    assert_eq!(invite.request_uri(), "sip:1234@proxy-a.lab.test");
    assert_eq!(invite.header(HeaderName::Route), Some("<sip:outbound-a.lab.test:5060;lr>"));
}

#[test]
fn an_unanswered_call_is_cancelled_after_the_call_duration_and_its_487_acked() {
    let cfg = format!("{}refphone call duration: 1\n", super::row_1_with_ip_literals());
    let mut phone = TestPhone::started(&cfg, Quirks::none());
    let (flow, register) = phone.expect_register_to(super::REGISTRAR_A);
    phone.ok(flow, &register);
    phone.core.on_push(phone.now, PushCommand::Dial("1234".into()));
    let (_, flow, invite) = phone.expect_sent();
    assert_eq!(invite.method(), Some(&Method::Invite));
    phone.answer(flow, &invite, 180, |_| {});
    assert_eq!(phone.fire_next_timer(), TimerId::CallHangup(0));
    assert_eq!(phone.elapsed(), ms(1000));
    let (_, _, cancel) = phone.expect_sent();
    assert_eq!(cancel.method(), Some(&Method::Cancel));
    assert_eq!(
        cancel.top_via().unwrap().branch(),
        invite.top_via().unwrap().branch(),
        "CANCEL shares the INVITE's branch"
    );
    assert_eq!(cancel.header(&HeaderName::CSeq), Some("1 CANCEL"));
    phone.answer(flow, &invite, 487, |_| {});
    let (_, _, ack) = phone.expect_sent();
    assert_eq!(ack.method(), Some(&Method::Ack));
    assert_eq!(ack.top_via().unwrap().branch(), invite.top_via().unwrap().branch(), "the transaction ACKs a non-2xx");
}

#[test]
fn a_bye_from_the_far_end_is_answered_200_and_an_unknown_one_481() {
    let mut lab = SimLab::started(ROW_1, Quirks::none());
    lab.core.on_push(lab.now, PushCommand::Dial("1234".into()));
    lab.settle();
    let invite = lab.requests(Method::Invite, s(0))[0].clone();
    let bye = |call_id: &str| {
        let mut bye = Message::request(Method::Bye, "sip:1001@127.66.0.20:5060");
        bye.push_header(HeaderName::Via, "SIP/2.0/UDP 127.66.0.1:5060;branch=z9hG4bKbye1");
        bye.push_header(HeaderName::From, "<sip:1234@proxy-a.lab.test>;tag=callee");
        bye.push_header(HeaderName::To, invite.header(HeaderName::From).unwrap());
        bye.push_header(HeaderName::CallId, call_id);
        bye.push_header(HeaderName::CSeq, "1 BYE");
        bye.to_bytes()
    };
    for (call_id, status) in [(invite.call_id(), 200), (invite.call_id(), 481), ("other@x".to_owned(), 481)] {
        let before = lab.log.len();
        lab.core.on_datagram(lab.now, Arrival::Listener { remote: addr(PROXY_A) }, &bye(&call_id));
        lab.settle();
        assert_eq!(lab.log[before..].iter().find_map(|s| s.message.status()), Some(status));
    }
}

// --- Which requests need the DNS (BRIEF §2, F5) ---

fn resolves(lab: &SimLab) -> usize {
    lab.resolved.len()
}

#[test]
fn over_udp_every_request_asks_the_resolver_again() {
    let mut lab = SimLab::started(ROW_1, Quirks::none());
    let after_start = resolves(&lab);
    lab.run_for(s(10));
    // The registration refresh at 10 s and nothing else new: one more lookup.
    assert_eq!(resolves(&lab), after_start + 1);
    assert_eq!(lab.resolved.last().unwrap(), "registrar-a.lab.test");
}

#[test]
fn over_tcp_a_request_on_an_open_connection_needs_no_lookup_but_a_new_connection_does() {
    let cfg = format!("{ROW_1}sip transport protocol: 2\n");
    let mut lab = SimLab::started(&cfg, Quirks::none());
    let names: Vec<String> = lab.resolved.clone();
    assert_eq!(names.iter().filter(|n| *n == "registrar-a.lab.test").count(), 1);
    assert_eq!(
        names.iter().filter(|n| *n == "proxy-a.lab.test").count(),
        1,
        "three SUBSCRIBEs, one connection, one lookup"
    );
    lab.run_for(s(16));
    assert_eq!(lab.resolved.len(), names.len(), "refreshes reuse the connections: {:?}", lab.resolved);
    lab.close_flows_to(REGISTRAR_A);
    lab.run_for(s(10));
    assert_eq!(lab.resolved.len(), names.len() + 1, "a new connection asks again");
}

#[test]
fn quirk_udp_only_ignores_the_transport_setting() {
    let cfg = format!("{ROW_1}sip transport protocol: 4\n");
    let settings = super::settings(&cfg, Quirks::none().with(Quirk::UdpOnly));
    assert_eq!(settings.transport, Transport::Udp);
    assert_eq!(super::settings(&cfg, Quirks::none()).transport, Transport::Tls);
    let lab = SimLab::started(&cfg, Quirks::none().with(Quirk::UdpOnly));
    assert!(lab.opened.iter().all(|t| *t == Transport::Udp));
    let lab = SimLab::started(&cfg, Quirks::none());
    assert!(lab.opened.iter().all(|t| *t == Transport::Tls));
}

#[test]
fn quirk_ignore_icmp_notices_a_refusing_registrar_only_by_the_transaction_timer() {
    let mut lab = SimLab::started(ROW_1, Quirks::none().with(Quirk::IgnoreIcmp));
    lab.set(REGISTRAR_A, Behaviour::Refuse);
    lab.run_for(s(9));
    let took = lab.run_until(s(5), |log| log.iter().any(|s| s.to == addr(REGISTRAR_B)));
    assert_eq!(took, s(2), "the refresh at 10 s plus the 1 s transaction timer");
}

// --- RFC 3263: the next address on 503, timeout or transport error ---

#[test]
fn a_503_from_one_address_moves_the_request_to_the_next_one() {
    let mut lab = SimLab::new(ROW_1, Quirks::none());
    let second = "127.66.0.13:5060";
    lab.dns.insert("registrar-a.lab.test".into(), vec![addr(REGISTRAR_A), addr(second)]);
    lab.behaviours.insert(addr(second), Behaviour::Answer);
    lab.set(REGISTRAR_A, Behaviour::Reject(503));
    lab.core.start(lab.now);
    lab.settle();
    let registers = lab.requests(Method::Register, s(0));
    assert_eq!(registers[0].to, addr(REGISTRAR_A));
    assert_eq!(registers[1].to, addr(second));
    assert_eq!(registers[1].call_id(), registers[0].call_id());
    assert_eq!(lab.core.active_placement(), Placement::PRIMARY, "the registrar answered at its second address");
}

#[test]
fn a_timeout_at_one_address_moves_the_request_to_the_next_one() {
    let mut lab = SimLab::new(ROW_1, Quirks::none());
    let second = "127.66.0.13:5060";
    lab.dns.insert("registrar-a.lab.test".into(), vec![addr(REGISTRAR_A), addr(second)]);
    lab.behaviours.insert(addr(second), Behaviour::Answer);
    lab.set(REGISTRAR_A, Behaviour::Silent);
    lab.core.start(lab.now);
    lab.run_for(s(2));
    let at_second: Vec<Sent> =
        lab.requests(Method::Register, s(0)).into_iter().filter(|r| r.to == addr(second)).collect();
    assert_eq!(at_second[0].at, s(1));
    assert_eq!(lab.core.active_placement(), Placement::PRIMARY);
}
