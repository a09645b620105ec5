//! Client transactions past their final response: the INVITE's Completed state and Timer D (RFC 3261 §17.1.1.2), and CANCEL as a transaction of its own (§9.1, §17.1.2).

use std::time::Duration;

use sip::{HeaderName, Message, Method};

use super::{TestPhone, ms};
use crate::core::*;
use crate::quirks::Quirks;

/// A phone registered at the primary (IP-literal proxy, so no DNS), with an INVITE just sent: its flow and the INVITE.
fn dialing(transport: &str) -> (TestPhone, FlowId, Message) {
    let cfg = format!("{}refphone call duration: 60\n{transport}", super::row_1_with_ip_literals())
        .replace("sip registration period: 4", "sip registration period: 60");
    let mut phone = TestPhone::started(&cfg, Quirks::none());
    let (flow, register) = phone.expect_sent_register();
    phone.ok(flow, &register);
    phone.core.on_push(phone.now, PushCommand::Dial("1234".into()));
    let (_, flow, invite) = phone.expect_sent();
    assert_eq!(invite.method(), Some(&Method::Invite));
    (phone, flow, invite)
}

impl TestPhone {
    fn expect_sent_register(&mut self) -> (FlowId, Message) {
        let (_, flow, register) = self.expect_sent();
        assert_eq!(register.method(), Some(&Method::Register), "{register:?}");
        (flow, register)
    }

    /// Moves time on by `by`, firing every timer due meanwhile.
    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        loop {
            self.collect();
            match self.timers.iter().min_by_key(|(_, at)| **at).map(|(id, at)| (*id, *at)) {
                Some((_, at)) if at <= until => {
                    self.fire_next_timer();
                }
                _ => break,
            }
        }
        self.now = until;
    }

    /// Every message sent until the core is quiet.
    fn drain_sent(&mut self) -> Vec<Message> {
        let mut sent = Vec::new();
        while let Some(output) = self.next_output() {
            if let Output::Send { message, .. } = output {
                sent.push(message);
            }
        }
        sent
    }
}

fn branch(message: &Message) -> String {
    message.top_via().unwrap().branch().unwrap().to_owned()
}

// --- Item 7: Completed and Timer D ---

#[test]
fn a_retransmitted_non_2xx_final_is_acked_again_until_timer_d_runs_out() {
    let (mut phone, flow, invite) = dialing("");
    phone.answer(flow, &invite, 486, |_| {});
    let (_, _, ack) = phone.expect_sent();
    assert_eq!(ack.method(), Some(&Method::Ack));
    // The server did not get the ACK and retransmits its 486: the same ACK goes again, each time.
    for _ in 0..2 {
        phone.advance(ms(1_000));
        phone.answer(flow, &invite, 486, |_| {});
        let (_, again_flow, again) = phone.expect_sent();
        assert_eq!(again_flow, flow);
        assert_eq!(again.method(), Some(&Method::Ack));
        assert_eq!(branch(&again), branch(&invite), "the transaction's own ACK");
        assert_eq!(again.header(&HeaderName::CSeq), Some("1 ACK"));
    }
    // Timer D is 64*T1 (32 s at the default T1 of 500 ms; 6.4 s at the test's 100 ms) from the first final.
    phone.advance(ms(4_400));
    phone.answer(flow, &invite, 486, |_| {});
    assert!(phone.drain_sent().is_empty(), "Timer D ran out: the transaction is over");
}

#[test]
fn over_tcp_timer_d_is_zero_and_a_second_final_is_ignored() {
    let (mut phone, flow, invite) = dialing("sip transport protocol: 2\n");
    phone.answer(flow, &invite, 486, |_| {});
    let (_, _, ack) = phone.expect_sent();
    assert_eq!(ack.method(), Some(&Method::Ack));
    phone.answer(flow, &invite, 486, |_| {});
    assert!(phone.drain_sent().is_empty());
}

// --- Item 8: CANCEL is a non-INVITE client transaction, and it gives the INVITE a deadline ---

/// A call ringing (180) whose hang-up timer (1 s) just sent a CANCEL: the phone, the flow, the INVITE and the CANCEL.
fn cancelling(transport: &str) -> (TestPhone, FlowId, Message, Message) {
    let cfg = format!("{}refphone call duration: 1\n{transport}", super::row_1_with_ip_literals())
        .replace("sip registration period: 4", "sip registration period: 60");
    let mut phone = TestPhone::started(&cfg, Quirks::none());
    let (flow, register) = phone.expect_sent_register();
    phone.ok(flow, &register);
    phone.core.on_push(phone.now, PushCommand::Dial("1234".into()));
    let (_, flow, invite) = phone.expect_sent();
    phone.answer(flow, &invite, 180, |_| {});
    assert_eq!(phone.fire_next_timer(), TimerId::CallHangup(0));
    let (_, cancel_flow, cancel) = phone.expect_sent();
    assert_eq!(cancel.method(), Some(&Method::Cancel));
    assert_eq!(cancel_flow, flow);
    (phone, flow, invite, cancel)
}

/// Each `method` sent while time moves on by `span`, with its offset in ms from now.
fn sent_during(phone: &mut TestPhone, method: Method, span: Duration) -> Vec<(u128, Message)> {
    let since = phone.now;
    let until = phone.now + span;
    let mut sent = Vec::new();
    loop {
        for message in phone.drain_sent() {
            if message.method() == Some(&method) {
                sent.push(((phone.now - since).as_millis(), message));
            }
        }
        match phone.timers.iter().min_by_key(|(_, at)| **at).map(|(_, at)| *at) {
            Some(next) if next <= until => {
                phone.fire_next_timer();
            }
            _ => break,
        }
    }
    phone.now = until;
    sent
}

/// The offsets in ms from now at which `method` went out while time moves on by `span`.
fn sent_at(phone: &mut TestPhone, method: Method, span: Duration) -> Vec<u128> {
    sent_during(phone, method, span).into_iter().map(|(at, _)| at).collect()
}

#[test]
fn an_unanswered_cancel_is_retransmitted_on_udp_like_any_non_invite_until_timer_f() {
    let (mut phone, _, _, cancel) = cancelling("");
    let retransmissions = sent_during(&mut phone, Method::Cancel, ms(1_500));
    assert!(retransmissions.iter().all(|(_, m)| branch(m) == branch(&cancel)), "retransmissions, not new CANCELs");
    let retransmissions: Vec<u128> = retransmissions.into_iter().map(|(at, _)| at).collect();
    // Timer E from T1 (100 ms) doubling up to T2 (400 ms), until Timer F (the 1 s transaction timer).
    assert_eq!(retransmissions, vec![100, 300, 700]);
}

#[test]
fn a_200_to_the_cancel_ends_its_retransmissions() {
    let (mut phone, flow, _, cancel) = cancelling("");
    phone.answer(flow, &cancel, 200, |_| {});
    assert_eq!(sent_at(&mut phone, Method::Cancel, ms(1_500)), Vec::<u128>::new());
}

#[test]
fn over_tcp_a_cancel_is_sent_once() {
    let (mut phone, _, _, _) = cancelling("sip transport protocol: 2\n");
    assert_eq!(sent_at(&mut phone, Method::Cancel, ms(1_500)), Vec::<u128>::new());
}

#[test]
fn without_a_final_response_64_t1_after_the_cancel_the_invite_transaction_is_over_and_nothing_fails_over() {
    let (mut phone, flow, invite, cancel) = cancelling("");
    phone.answer(flow, &cancel, 200, |_| {});
    let cancelled_at = phone.elapsed();
    assert_eq!(
        phone.timer(TimerId::TransactionTimeout(RequestId(1))),
        Some(cancelled_at + ms(6_400)),
        "the INVITE gets a deadline of 64*T1 from the CANCEL"
    );
    assert_eq!(sent_at(&mut phone, Method::Invite, ms(7_000)), Vec::<u128>::new());
    assert_eq!(phone.core.active_placement(), Placement::PRIMARY, "a cancelled call says nothing about the proxy");
    // The transaction is gone: a very late 487 matches nothing and is not ACKed.
    phone.answer(flow, &invite, 487, |_| {});
    assert!(phone.drain_sent().is_empty());
    assert_eq!(phone.timer(TimerId::CallHangup(0)), None);
}
