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
