//! STUN keep-alives on UDP flows (RFC 5626 §4.4.2): a binding transaction retransmitted by RFC 5389's rules, and a changed mapping taken as a failed flow.

use std::time::Duration;

use sip::{HeaderName, Method, StunMessage};

use super::simulated::*;
use crate::core::*;
use crate::quirks::Quirks;

fn s(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// Row 1 with outbound on UDP and a registrar that requires it with a 30 s Flow-Timer; `extra` cfg lines appended.
fn outbound_lab(extra: &str) -> SimLab {
    let mut lab = SimLab::new(&format!("{ROW_1}sip outbound support: 1\n{extra}"), Quirks::none());
    lab.register_ok_headers.push((HeaderName::Require, "outbound".into()));
    lab.register_ok_headers.push((HeaderName::FlowTimer, "30".into()));
    lab
}

fn registers_to(lab: &SimLab, to: &str) -> Vec<Sent> {
    lab.requests(Method::Register, s(0)).into_iter().filter(|r| r.to == addr(to) && r.expires() != Some(0)).collect()
}

#[test]
fn an_unanswered_stun_keepalive_is_retransmitted_rto_doubling_seven_times_then_fails_the_flow_after_16_rto() {
    let mut lab = outbound_lab("refphone stun rto: 100\n");
    lab.answer_keepalives = false;
    lab.core.start(lab.now);
    lab.run_for(s(40));
    let sent: Vec<(Duration, [u8; 12])> = lab
        .raw
        .iter()
        .filter(|(_, to, _)| *to == addr(REGISTRAR_A))
        .map(|(at, _, bytes)| (*at, StunMessage::decode(bytes).expect("STUN").transaction_id))
        .collect();
    let first = sent[0].0;
    let offsets: Vec<Duration> = sent.iter().take(7).map(|(at, _)| *at - first).collect();
    // RFC 5389 §7.2.1 with RTO 100 ms: 0, 100, 300, 700, 1500, 3100, 6300 ms; Rc = 7.
    assert_eq!(offsets, [0, 100, 300, 700, 1500, 3100, 6300].map(ms).to_vec(), "{sent:?}");
    assert!(sent.iter().take(7).all(|(_, id)| *id == sent[0].1), "retransmissions keep the transaction id");
    // Rm = 16: the transaction fails 16 RTO after the last request, at 7900 ms; the registration moves.
    let at_backup = registers_to(&lab, REGISTRAR_B);
    assert!(!at_backup.is_empty(), "{}", lab.dump(s(0)));
    assert_eq!(at_backup[0].at - first, ms(7_900));
}

#[test]
fn one_lost_stun_request_no_longer_kills_the_flow() {
    let mut lab = outbound_lab("");
    lab.core.start(lab.now);
    lab.settle();
    lab.keepalives_to_lose = 1;
    lab.run_for(s(60));
    let first = lab.raw[0].0;
    // The default RTO is 500 ms: the retransmission is answered.
    assert_eq!(lab.raw[1].0 - first, ms(500), "{:?}", lab.raw.iter().map(|r| r.0).collect::<Vec<_>>());
    assert!(registers_to(&lab, REGISTRAR_B).is_empty(), "{}", lab.dump(s(0)));
    assert_eq!(lab.core.active_placement(), Placement::PRIMARY);
}

#[test]
fn a_changed_mapping_is_a_failed_flow() {
    let mut lab = outbound_lab("");
    lab.core.start(lab.now);
    // The first keep-alive (24-30 s) is answered with the mapping the flow keeps.
    lab.run_for(s(31));
    assert!(registers_to(&lab, REGISTRAR_B).is_empty());
    // A NAT rebinding: the next answer reports another address.
    lab.stun_mapped_address = addr("127.66.0.20:41000");
    lab.run_for(s(30));
    assert_eq!(lab.core.active_placement().registrar, Role::Backup, "{}", lab.dump(s(0)));
    assert!(!registers_to(&lab, REGISTRAR_B).is_empty());
}
