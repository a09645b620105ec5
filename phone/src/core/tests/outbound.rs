//! RFC 5626 on the phone's side, driven through the core in a simulated lab: Contact forms, keep-alives and their bounds, flow failure and the recovery backoff.

use std::time::Duration;

use sip::{HeaderName, Method, StunClass, StunMessage};

use super::simulated::*;
use crate::core::*;
use crate::quirks::{Quirk, Quirks};

const INSTANCE: &str = "urn:uuid:00000000-0000-4000-8000-00085d0a0b0c";

fn s(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

fn with_outbound(cfg: &str) -> String {
    format!("{cfg}sip outbound support: 1\n")
}

/// A registrar that supports outbound: `Require: outbound` and `Flow-Timer` in its 2xx.
fn outbound_registrar(lab: &mut SimLab, flow_timer: Option<u32>) {
    lab.register_ok_headers.push((HeaderName::Require, "outbound".into()));
    if let Some(seconds) = flow_timer {
        lab.register_ok_headers.push((HeaderName::FlowTimer, seconds.to_string()));
    }
}

/// Times (after the start) of the keep-alives sent to `to`.
fn keepalives(lab: &SimLab, to: &str) -> Vec<Duration> {
    lab.raw.iter().filter(|(_, remote, _)| *remote == addr(to)).map(|(at, _, _)| *at).collect()
}

fn gaps(times: &[Duration]) -> Vec<Duration> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

fn registers_to(lab: &SimLab, to: &str, since: Duration) -> Vec<Sent> {
    lab.requests(Method::Register, since).into_iter().filter(|r| r.to == addr(to) && r.expires() != Some(0)).collect()
}

#[test]
fn without_an_outbound_proxy_the_register_contact_has_ob_instance_and_reg_id_1() {
    let lab = SimLab::started(&with_outbound(ROW_1), Quirks::none());
    let register = &lab.requests(Method::Register, s(0))[0];
    assert_eq!(
        register.header(HeaderName::Contact),
        Some(format!("<sip:1001@127.66.0.20:5060;ob>;+sip.instance=\"<{INSTANCE}>\";reg-id=1").as_str())
    );
    assert_eq!(register.header(HeaderName::Supported), Some("outbound, path"));
    let contact = &register.message.contacts().unwrap()[0];
    assert_eq!(
        (contact.instance(), contact.reg_id(), contact.has_ob()),
        (Some(format!("<{INSTANCE}>").as_str()), Some(1), true)
    );
}

#[test]
fn through_outbound_proxies_the_register_contact_has_no_ob_and_reg_id_2_through_the_backup() {
    let mut lab = SimLab::started(&with_outbound(&row_3()), Quirks::none());
    let first = &lab.requests(Method::Register, s(0))[0];
    assert_eq!(
        first.header(HeaderName::Contact),
        Some(format!("<sip:1001@127.66.0.20:5060>;+sip.instance=\"<{INSTANCE}>\";reg-id=1").as_str())
    );
    lab.set(OUTBOUND_A, Behaviour::Refuse);
    lab.run_for(s(11));
    let backup = registers_to(&lab, OUTBOUND_B, s(0));
    assert!(!backup.is_empty(), "{}", lab.dump(s(0)));
    assert!(backup[0].header(HeaderName::Contact).unwrap().ends_with(";reg-id=2"));
}

#[test]
fn dialog_forming_requests_carry_no_ob_until_a_registration_2xx_required_outbound() {
    // RFC 5626 §4.2.1, §5.4: the registrar's 2xx lacked `Require: outbound`, so outbound is not in use.
    let mut lab = SimLab::started(&with_outbound(ROW_1), Quirks::none());
    lab.core.on_push(lab.now, PushCommand::Dial("1234".into()));
    lab.settle();
    for method in [Method::Subscribe, Method::Invite] {
        let request = &lab.requests(method.clone(), s(0))[0];
        assert_eq!(request.header(HeaderName::Contact), Some("<sip:1001@127.66.0.20:5060>"), "{method}");
    }
}

#[test]
fn dialog_forming_requests_carry_ob_on_their_contact() {
    let mut lab = SimLab::new(&with_outbound(ROW_1), Quirks::none());
    outbound_registrar(&mut lab, None);
    lab.core.start(lab.now);
    lab.settle();
    lab.core.on_push(lab.now, PushCommand::Dial("1234".into()));
    lab.settle();
    for method in [Method::Subscribe, Method::Invite] {
        let request = &lab.requests(method.clone(), s(0))[0];
        assert_eq!(request.header(HeaderName::Contact), Some("<sip:1001@127.66.0.20:5060;ob>"), "{method}");
    }
    let plain = SimLab::started(ROW_1, Quirks::none());
    let register = &plain.requests(Method::Register, s(0))[0];
    assert_eq!(
        register.header(HeaderName::Contact),
        Some("<sip:1001@127.66.0.20:5060>"),
        "no outbound, no RFC 5626 forms"
    );
    assert_eq!(register.header(HeaderName::Supported), None);
}

#[test]
fn keepalives_start_only_after_a_2xx_with_require_outbound() {
    let mut lab = SimLab::started(&with_outbound(ROW_1), Quirks::none());
    lab.run_for(s(600));
    assert!(lab.raw.is_empty(), "no Require: outbound, no keep-alives");

    let mut lab = SimLab::new(&with_outbound(ROW_1), Quirks::none());
    outbound_registrar(&mut lab, Some(30));
    lab.core.start(lab.now);
    lab.run_for(s(600));
    let sent = keepalives(&lab, REGISTRAR_A);
    assert!(sent.len() >= 20, "{sent:?}");
    for (_, _, bytes) in &lab.raw {
        let stun = StunMessage::decode(bytes).expect("a STUN binding request on UDP");
        assert_eq!(stun.class, StunClass::BindingRequest);
    }
}

#[test]
fn keepalive_intervals_stay_within_80_and_100_percent_of_flow_timer() {
    let mut lab = SimLab::new(&with_outbound(ROW_1), Quirks::none());
    outbound_registrar(&mut lab, Some(30));
    lab.core.start(lab.now);
    lab.run_for(s(3000));
    let intervals = gaps(&keepalives(&lab, REGISTRAR_A));
    assert!(intervals.len() > 90);
    assert!(intervals.iter().all(|g| *g >= s(24) && *g <= s(30)), "{intervals:?}");
    let spread = intervals.iter().max().unwrap().as_secs_f64() - intervals.iter().min().unwrap().as_secs_f64();
    assert!(spread > 3.0, "the interval is random, not fixed: {intervals:?}");
    let first = keepalives(&lab, REGISTRAR_A)[0];
    assert!(first >= s(24) && first <= s(30), "{first:?}");
}

#[test]
fn without_flow_timer_the_configured_keepalive_interval_is_used() {
    let cfg = format!("{}refphone keep alive interval: 50\n", with_outbound(ROW_1));
    let mut lab = SimLab::new(&cfg, Quirks::none());
    outbound_registrar(&mut lab, None);
    lab.core.start(lab.now);
    lab.run_for(s(1000));
    let intervals = gaps(&keepalives(&lab, REGISTRAR_A));
    assert!(!intervals.is_empty() && intervals.iter().all(|g| *g >= s(40) && *g <= s(50)), "{intervals:?}");
}

#[test]
fn tcp_keepalives_are_crlf_pings() {
    let cfg = format!("{}sip transport protocol: 2\n", with_outbound(ROW_1));
    let mut lab = SimLab::new(&cfg, Quirks::none());
    outbound_registrar(&mut lab, Some(30));
    lab.core.start(lab.now);
    lab.run_for(s(100));
    assert!(!lab.raw.is_empty());
    assert!(lab.raw.iter().all(|(_, _, bytes)| bytes == b"\r\n\r\n"));
    let register = &lab.requests(Method::Register, s(0))[0];
    assert!(register.header(HeaderName::Contact).unwrap().starts_with("<sip:1001@127.66.0.20:5060;transport=tcp;ob>"));
    assert!(register.message.top_via().unwrap().transport.eq_ignore_ascii_case("TCP"));
}

#[test]
fn an_unanswered_crlf_keepalive_fails_the_flow_after_the_pong_timeout_and_the_registration_fails_over() {
    let cfg = format!("{}sip transport protocol: 2\n", with_outbound(ROW_1));
    let mut lab = SimLab::new(&cfg, Quirks::none());
    outbound_registrar(&mut lab, Some(30));
    lab.answer_keepalives = false;
    lab.core.start(lab.now);
    lab.run_for(s(45));
    let first_keepalive = keepalives(&lab, REGISTRAR_A)[0];
    let at_backup = registers_to(&lab, REGISTRAR_B, s(0));
    assert!(!at_backup.is_empty(), "{}", lab.dump(s(0)));
    assert_eq!(at_backup[0].at - first_keepalive, s(10), "the pong timeout");
    assert_eq!(lab.core.active_placement().registrar, Role::Backup);
}

/// Runs a single-registrar phone whose registration flow fails and whose registrar then
/// refuses, and returns the gaps between the re-registration attempts.
fn recovery_attempt_gaps(quirks: Quirks) -> (Duration, Vec<Duration>) {
    let single: String = format!("{}refphone stun rto: 100\n", with_outbound(ROW_1))
        .lines()
        .filter(|l| !l.contains("backup"))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut lab = SimLab::new(&single, quirks);
    outbound_registrar(&mut lab, Some(30));
    lab.answer_keepalives = false;
    lab.core.start(lab.now);
    lab.run_for(s(30));
    lab.set(REGISTRAR_A, Behaviour::Refuse);
    lab.run_for(s(1));
    // The STUN transaction fails 79 RTOs (7.9 s) after its first send (RFC 5389 §7.2.1).
    let failed_at = lab.raw[0].0 + Duration::from_millis(7_900);
    lab.run_for(s(1500));
    let attempts: Vec<Duration> = registers_to(&lab, REGISTRAR_A, failed_at).iter().map(|r| r.at).collect();
    let mut times = vec![failed_at];
    times.extend(attempts);
    (failed_at, gaps(&times))
}

#[test]
fn a_failed_flow_is_re_established_with_the_rfc_5626_backoff_when_every_flow_failed() {
    let (_, waits) = recovery_attempt_gaps(Quirks::none());
    assert!(waits.len() >= 4, "{waits:?}");
    for (n, wait) in waits.iter().enumerate().take(5) {
        // consecutive-failures = n + 1; base-time 30 s.
        let upper = (30.0 * 2f64.powi(n as i32 + 1)).min(1800.0);
        let wait = wait.as_secs_f64();
        assert!(
            wait >= upper * 0.5 - 0.001 && wait <= upper + 0.001,
            "attempt {n}: {wait} s not in [{}, {upper}]",
            upper * 0.5
        );
    }
}

#[test]
fn quirk_backoff_too_eager_retries_at_a_tenth_of_the_base_time() {
    let (_, waits) = recovery_attempt_gaps(Quirks::none().with(Quirk::BackoffTooEager));
    assert!(waits.iter().take(5).all(|w| *w == s(3)), "{waits:?}");
}

#[test]
fn quirk_no_flow_recovery_never_registers_again() {
    let (_, waits) = recovery_attempt_gaps(Quirks::none().with(Quirk::NoFlowRecovery));
    assert!(waits.is_empty(), "{waits:?}");
}

#[test]
fn the_failed_primary_flow_is_re_established_with_the_90_second_base_while_the_backup_works() {
    let mut lab = SimLab::new(&with_outbound(&row_2()), Quirks::none());
    outbound_registrar(&mut lab, Some(30));
    lab.core.start(lab.now);
    lab.run_for(s(1));
    lab.set(OUTBOUND_A, Behaviour::Refuse);
    lab.run_for(s(11));
    let failed_at = registers_to(&lab, OUTBOUND_B, s(0))[0].at;
    lab.run_for(s(2000));
    let probes: Vec<Duration> = lab.requests(Method::Options, s(0)).iter().map(|p| p.at).collect();
    let mut times = vec![failed_at];
    times.extend(probes);
    for (n, wait) in gaps(&times).iter().enumerate().take(4) {
        let upper = (90.0 * 2f64.powi(n as i32 + 1)).min(1800.0);
        let wait = wait.as_secs_f64();
        assert!(
            wait >= upper * 0.5 - 0.001 && wait <= upper + 0.001,
            "probe {n}: {wait} s not in [{}, {upper}]",
            upper * 0.5
        );
    }
}

#[test]
fn quirk_no_keepalive_sends_none() {
    let mut lab = SimLab::new(&with_outbound(ROW_1), Quirks::none().with(Quirk::NoKeepalive));
    outbound_registrar(&mut lab, Some(30));
    lab.core.start(lab.now);
    lab.run_for(s(300));
    assert!(lab.raw.is_empty());
}

#[test]
fn quirk_keepalive_too_slow_sends_at_150_percent_of_flow_timer() {
    let mut lab = SimLab::new(&with_outbound(ROW_1), Quirks::none().with(Quirk::KeepaliveTooSlow));
    outbound_registrar(&mut lab, Some(30));
    lab.core.start(lab.now);
    lab.run_for(s(300));
    let intervals = gaps(&keepalives(&lab, REGISTRAR_A));
    assert!(!intervals.is_empty() && intervals.iter().all(|g| *g == s(45)), "{intervals:?}");
}

#[test]
fn quirk_keepalive_without_require_sends_them_anyway() {
    let mut lab = SimLab::started(&with_outbound(ROW_1), Quirks::none().with(Quirk::KeepaliveWithoutRequire));
    lab.run_for(s(300));
    assert!(!lab.raw.is_empty());
}
