//! RFC 5626 §4.5 flow recovery: a flow that had succeeded is replaced at once, and a flow succeeds only once its first keep-alive was answered.

use std::time::Duration;

use sip::{HeaderName, Method};

use super::simulated::*;
use crate::quirks::Quirks;

fn s(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

/// One registrar (no backup) with RFC 5626 outbound, `Require: outbound` and `Flow-Timer: 30`.
fn single_registrar_lab() -> SimLab {
    let cfg: String = format!("{ROW_1}sip outbound support: 1\n")
        .lines()
        .filter(|l| !l.contains("backup"))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut lab = SimLab::new(&cfg, Quirks::none());
    lab.register_ok_headers.push((HeaderName::Require, "outbound".into()));
    lab.register_ok_headers.push((HeaderName::FlowTimer, "30".into()));
    lab
}

/// The local port of the flow a logged request went on (its Via sent-by).
fn flow_port(sent: &Sent) -> u16 {
    sent.message.top_via().unwrap().port.unwrap()
}

/// A UDP flow fails 16 initial RTOs (500 ms by default) after the last of its STUN keep-alive's
/// seven sends (RFC 5389 §7.2.1).
const STUN_LAST_WAIT: Duration = Duration::from_secs(8);

/// For each REGISTER that opened a new flow after the first: how long after the previous flow
/// failed (its last keep-alive send plus [`STUN_LAST_WAIT`]) it was sent.
fn waits_after_flow_failures(lab: &SimLab) -> Vec<Duration> {
    let registers = lab.requests(Method::Register, s(0));
    let mut waits = Vec::new();
    for pair in registers.windows(2) {
        if flow_port(&pair[1]) == flow_port(&pair[0]) {
            continue;
        }
        let last_keepalive = lab.raw.iter().map(|(at, _, _)| *at).filter(|at| *at < pair[1].at).max().unwrap();
        waits.push(pair[1].at - (last_keepalive + STUN_LAST_WAIT));
    }
    waits
}

#[test]
fn a_flow_that_had_succeeded_is_replaced_at_once_when_it_fails() {
    let mut lab = single_registrar_lab();
    lab.core.start(lab.now);
    // The first keep-alive (24-30 s) is answered: the flow succeeded.
    lab.run_for(s(40));
    lab.answer_keepalives = false;
    lab.run_for(s(60));
    let waits = waits_after_flow_failures(&lab);
    assert_eq!(waits.first(), Some(&Duration::ZERO), "{}", lab.dump(s(0)));
}

#[test]
fn a_2xx_alone_does_not_make_a_flow_successful_so_the_backoff_keeps_growing() {
    let mut lab = single_registrar_lab();
    lab.answer_keepalives = false;
    lab.core.start(lab.now);
    lab.run_for(s(1200));
    let waits = waits_after_flow_failures(&lab);
    assert!(waits.len() >= 3, "{waits:?}");
    for (n, wait) in waits.iter().enumerate().take(3) {
        // Each flow failed before it succeeded: consecutive-failures n + 1, base-time 30 s.
        let upper = 30.0 * 2f64.powi(n as i32 + 1);
        let wait = wait.as_secs_f64();
        assert!(wait >= upper * 0.5 - 0.001 && wait <= upper + 0.001, "attempt {n}: {wait} s; {waits:?}");
    }
}
