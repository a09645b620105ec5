//! The reference phone right on the wire: what counts as a failed server, Retry-After, 430, and probing an element that failed behind an outbound proxy.

use std::time::Duration;

use sip::{HeaderName, Method};

use super::simulated::{self, *};
use super::{ROW_1_CFG, TestPhone, header};
use crate::core::*;
use crate::quirks::Quirks;

fn s(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

const ALL_BACKUP: Placement = Placement { registrar: Role::Backup, proxy: Role::Backup, outbound: Role::Backup };

/// A started lab, registered and subscribed at the primaries.
fn lab(cfg: &str) -> SimLab {
    let mut lab = SimLab::started(cfg, Quirks::none());
    lab.run_for(ms(100));
    lab
}

fn to(lab: &SimLab, server: &str, since: Duration) -> Vec<Sent> {
    lab.since(since).into_iter().filter(|m| m.to == simulated::addr(server)).collect()
}

// --- Item 1: row 2 probes the element that failed, through the primary outbound proxy ---

#[test]
fn r2_a_registrar_failed_behind_the_outbound_proxy_is_probed_through_it_and_no_move_back_while_it_is_down() {
    for fault in [Behaviour::Silent, Behaviour::Reject(503)] {
        let mut lab = lab(&row_2());
        lab.set(REGISTRAR_A, fault);
        // The refresh at 10 s finds registrar-a down behind outbound-a: everything moves to the backups.
        lab.run_for(s(12));
        assert_eq!(lab.core.active_placement(), ALL_BACKUP, "{fault:?}\n{}", lab.dump(s(0)));
        let moved_at = lab.elapsed();
        lab.run_for(s(30));
        assert_eq!(lab.core.active_placement(), ALL_BACKUP, "no move back while registrar-a is down: {fault:?}");
        let registers_via_a: Vec<Sent> =
            to(&lab, OUTBOUND_A, moved_at).into_iter().filter(|m| m.method() == Some(Method::Register)).collect();
        assert!(registers_via_a.is_empty(), "{fault:?}: no flapping\n{}", lab.dump(moved_at));
        let probes = lab.requests(Method::Options, moved_at);
        assert!(!probes.is_empty(), "{fault:?}");
        for probe in &probes {
            assert_eq!(probe.to, simulated::addr(OUTBOUND_A), "{fault:?}");
            assert_eq!(probe.request_uri(), "sip:registrar-a.lab.test", "{fault:?}: the failed element is probed");
            assert_eq!(probe.header(HeaderName::Route), Some("<sip:outbound-a.lab.test:5060;lr>"), "{fault:?}");
        }
        lab.set(REGISTRAR_A, Behaviour::Answer);
        lab.run_for(s(7));
        assert_eq!(lab.core.active_placement(), Placement::PRIMARY, "{fault:?}: back once registrar-a answers");
    }
}

#[test]
fn r2_a_proxy_failed_behind_the_outbound_proxy_is_the_one_probed() {
    let mut lab = lab(&row_2());
    lab.set(PROXY_A, Behaviour::Reject(503));
    // A call finds proxy-a down behind outbound-a.
    lab.core.on_push(lab.now, PushCommand::Dial("1234".into()));
    lab.settle();
    assert_eq!(lab.core.active_placement(), ALL_BACKUP, "{}", lab.dump(s(0)));
    let moved_at = lab.elapsed();
    lab.run_for(s(20));
    assert_eq!(lab.core.active_placement(), ALL_BACKUP);
    let probes = lab.requests(Method::Options, moved_at);
    assert!(!probes.is_empty());
    assert!(probes.iter().all(|p| p.request_uri() == "sip:proxy-a.lab.test" && p.to == simulated::addr(OUTBOUND_A)));
}

// --- Item 2: Retry-After (RFC 3261 §21.5.4) ---

#[test]
fn a_503_with_retry_after_keeps_every_request_and_probe_off_the_primary_until_it_runs_out() {
    let mut lab = lab(ROW_1);
    lab.set(REGISTRAR_A, Behaviour::RejectRetryAfter(503, 30));
    // The refresh at 10 s gets 503 with Retry-After: 30; the registration moves to registrar-b.
    lab.run_for(s(11));
    assert_eq!(lab.core.active_placement().registrar, Role::Backup);
    let rejected_at = s(10);
    lab.run_for(s(64));
    let at_primary: Vec<Duration> = to(&lab, REGISTRAR_A, rejected_at + ms(1)).iter().map(|m| m.at).collect();
    // Nothing before Retry-After; then one probe, refused again for 30 s: the next 30 s later.
    assert_eq!(at_primary, vec![rejected_at + s(30), rejected_at + s(60)], "{}", lab.dump(rejected_at));
}

#[test]
fn without_a_backup_the_register_after_a_503_waits_the_longer_of_retry_after_and_the_retry_timer() {
    let cfg = ROW_1_CFG.replace("sip backup registrar ip: 127.66.0.12\n", "");
    for (retry_after, expected) in [(30, ms(30_000)), (1, ms(2_000))] {
        let mut phone = TestPhone::started(&cfg, Quirks::none());
        let (flow, first) = phone.expect_register_to("127.66.0.11:5060");
        phone.answer(flow, &first, 503, |r| {
            r.push_header(HeaderName::RetryAfter, retry_after);
        });
        let (remote, _, _) = phone.wait_for_send();
        assert_eq!(remote, simulated::addr("127.66.0.11:5060"));
        assert_eq!(phone.elapsed(), expected, "Retry-After: {retry_after}");
    }
}

#[test]
fn when_the_backup_fails_too_the_primary_is_tried_again_only_after_its_retry_after() {
    let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none());
    let (flow, first) = phone.expect_register_to("127.66.0.11:5060");
    phone.answer(flow, &first, 503, |r| {
        r.push_header(HeaderName::RetryAfter, 30);
    });
    let (backup_flow, backup) = phone.expect_register_to("127.66.0.12:5060");
    phone.answer(backup_flow, &backup, 503, |_| {});
    let (remote, _, again) = phone.wait_for_send();
    assert_eq!(remote, simulated::addr("127.66.0.11:5060"), "{again:?}");
    assert_eq!(phone.elapsed(), ms(30_000));
}

// --- Item 3: only 503, a timeout, a transport error, or a 408 to a non-INVITE fail a server ---

#[test]
fn a_callee_declining_or_not_answering_an_invite_moves_nothing() {
    for status in [603, 600, 486, 408, 500, 504] {
        let mut lab = lab(ROW_1);
        lab.invite_status = Some(status);
        lab.core.on_push(lab.now, PushCommand::Dial("1234".into()));
        lab.settle();
        let invite = lab.requests(Method::Invite, s(0));
        assert_eq!(invite.len(), 1, "{status}");
        lab.run_for(s(20));
        assert_eq!(lab.core.active_placement(), Placement::PRIMARY, "{status}\n{}", lab.dump(s(0)));
        assert!(to(&lab, PROXY_B, s(0)).is_empty() && to(&lab, REGISTRAR_B, s(0)).is_empty(), "{status}");
    }
}

#[test]
fn other_5xx_and_6xx_to_a_register_retry_the_same_registrar_after_the_retry_timer() {
    for status in [500, 502, 504, 600, 603] {
        let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none());
        let (flow, first) = phone.expect_register_to("127.66.0.11:5060");
        phone.answer(flow, &first, status, |_| {});
        let (remote, _, again) = phone.wait_for_send();
        assert_eq!(remote, simulated::addr("127.66.0.11:5060"), "{status}");
        assert_eq!(phone.elapsed(), ms(2_000), "{status}");
        assert_eq!(header(&again, HeaderName::CSeq), "2 REGISTER");
        assert_eq!(phone.core.active_placement(), Placement::PRIMARY, "{status}");
    }
}

#[test]
fn a_500_to_a_subscribe_refresh_does_not_move_the_proxy() {
    let mut lab = lab(ROW_1);
    lab.set(PROXY_A, Behaviour::Reject(500));
    lab.run_for(s(20));
    assert_eq!(lab.core.active_placement(), Placement::PRIMARY, "{}", lab.dump(s(0)));
    assert!(to(&lab, PROXY_B, s(0)).is_empty());
}

// --- Item 4: a 430 received is a 400, not a failed flow (RFC 5626 §11) ---

#[test]
fn a_430_is_treated_as_400_and_fails_nothing_over() {
    let mut lab = SimLab::new(&format!("{}sip outbound support: 1\n", row_2()), Quirks::none());
    lab.register_ok_headers.push((HeaderName::Require, "outbound".into()));
    lab.register_ok_headers.push((HeaderName::FlowTimer, "30".into()));
    lab.core.start(lab.now);
    lab.run_for(s(1));
    lab.set(OUTBOUND_A, Behaviour::Reject(430));
    lab.run_for(s(15));
    assert_eq!(lab.core.active_placement(), Placement::PRIMARY, "{}", lab.dump(s(0)));
    assert!(to(&lab, OUTBOUND_B, s(0)).is_empty(), "{}", lab.dump(s(0)));
    // The refused refresh is retried at the same place after the retry timer.
    let registers: Vec<Duration> = lab
        .requests(Method::Register, s(1))
        .iter()
        .filter(|r| r.to == simulated::addr(OUTBOUND_A))
        .map(|r| r.at)
        .collect();
    assert_eq!(registers.first(), Some(&s(10)), "{}", lab.dump(s(0)));
    assert_eq!(registers.get(1), Some(&s(13)), "{}", lab.dump(s(0)));
}

// --- Item 12: the notifier's expiry in Subscription-State (RFC 6665 §4.1.3) ---

#[test]
fn a_notify_with_a_shorter_expires_brings_the_refresh_forward() {
    let mut shorter = lab(ROW_1);
    let first = shorter.requests(Method::Subscribe, s(0))[0].clone();
    let notified_at = shorter.elapsed();
    assert_eq!(shorter.notify(&first, "active;expires=10"), 200);
    shorter.run_for(s(16));
    let refreshes: Vec<Duration> = shorter
        .requests(Method::Subscribe, notified_at)
        .iter()
        .filter(|m| m.call_id() == first.call_id())
        .map(|m| m.at)
        .collect();
    assert_eq!(refreshes.first(), Some(&(notified_at + s(5))), "half the notifier's 10 s, not of the granted 30 s");
    // A longer expiry in a NOTIFY changes nothing.
    let mut longer = lab(ROW_1);
    let first = longer.requests(Method::Subscribe, s(0))[0].clone();
    assert_eq!(longer.notify(&first, "active;expires=3600"), 200);
    longer.run_for(s(16));
    let refresh = longer.requests(Method::Subscribe, ms(200)).into_iter().find(|m| m.call_id() == first.call_id());
    assert_eq!(refresh.map(|m| m.at), Some(s(15)));
}
