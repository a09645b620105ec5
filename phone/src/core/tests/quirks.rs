//! Each quirk of the issue "The reference phone right on the wire" changes what the phone sends, and the default phone does not do it.

use std::net::SocketAddr;
use std::time::Duration;

use sip::{HeaderName, Method};

use super::simulated::{self, *};
use super::{ROW_1_CFG, TestPhone, branch};
use crate::core::*;
use crate::quirks::{Quirk, Quirks};

fn s(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn with(quirk: Quirk) -> Quirks {
    Quirks::none().with(quirk)
}

/// A started lab, registered and subscribed at the primaries.
fn lab(cfg: &str, quirks: Quirks) -> SimLab {
    let mut lab = SimLab::started(cfg, quirks);
    lab.run_for(ms(100));
    lab
}

/// REGISTERs (not un-REGISTERs) logged since `since` that went to `server`.
fn registers_to(lab: &SimLab, server: &str, since: Duration) -> Vec<Sent> {
    lab.requests(Method::Register, since)
        .into_iter()
        .filter(|r| r.to == simulated::addr(server) && r.expires() != Some(0))
        .collect()
}

fn unregisters(lab: &SimLab, since: Duration) -> Vec<Sent> {
    lab.requests(Method::Register, since).into_iter().filter(|r| r.expires() == Some(0)).collect()
}

/// Row 1, registrar-a answering 503 from the start of the refresh at 10 s: the REGISTERs that
/// reach it over the next 20 s, while it is still failed.
fn registers_at_a_failed_primary(quirks: Quirks) -> usize {
    let mut lab = lab(ROW_1, quirks);
    lab.set(REGISTRAR_A, Behaviour::Reject(503));
    lab.run_for(s(11));
    let failed_over = lab.elapsed();
    lab.run_for(s(20));
    registers_to(&lab, REGISTRAR_A, failed_over).len()
}

#[test]
fn quirk_flap_moves_back_to_a_primary_that_never_answered_its_probe() {
    assert_eq!(registers_at_a_failed_primary(Quirks::none()), 0);
    assert!(registers_at_a_failed_primary(with(Quirk::Flap)) >= 2, "back and forth every probe interval");
}

#[test]
fn quirk_probe_storm_probes_every_t1() {
    let probes_in_5_s = |quirks| {
        let mut lab = lab(ROW_1, quirks);
        lab.set(REGISTRAR_A, Behaviour::Reject(503));
        lab.run_for(s(11));
        let since = lab.elapsed();
        lab.run_for(s(5));
        lab.requests(Method::Options, since).len()
    };
    assert!(probes_in_5_s(Quirks::none()) <= 1);
    assert!(probes_in_5_s(with(Quirk::ProbeStorm)) >= 40);
}

#[test]
fn quirk_ignore_retry_after_probes_the_server_before_its_retry_after_ran_out() {
    let first_after_the_503 = |quirks| {
        let mut lab = lab(ROW_1, quirks);
        lab.set(REGISTRAR_A, Behaviour::RejectRetryAfter(503, 30));
        lab.run_for(s(45));
        lab.since(s(10) + ms(1)).iter().find(|m| m.to == simulated::addr(REGISTRAR_A)).map(|m| m.at)
    };
    assert_eq!(first_after_the_503(Quirks::none()), Some(s(40)));
    assert_eq!(first_after_the_503(with(Quirk::IgnoreRetryAfter)), Some(s(15)), "the probe interval only");
}

/// Row 1: registrar-a fails at the refresh at 10 s and returns at 12 s; the probe at 15 s finds
/// it. Returns the lab 30 s later and when it returned.
fn registrar_fails_and_returns(quirks: Quirks) -> (SimLab, Duration) {
    let mut lab = lab(ROW_1, quirks);
    lab.set(REGISTRAR_A, Behaviour::Reject(503));
    lab.run_for(s(12));
    lab.set(REGISTRAR_A, Behaviour::Answer);
    let returned = lab.elapsed();
    lab.run_for(s(30));
    (lab, returned)
}

#[test]
fn quirk_register_both_keeps_refreshing_the_backup_binding_after_failback() {
    let (lab, returned) = registrar_fails_and_returns(Quirks::none());
    assert_eq!(unregisters(&lab, returned).len(), 1);
    assert!(registers_to(&lab, REGISTRAR_B, returned).is_empty(), "{}", lab.dump(returned));

    let (lab, returned) = registrar_fails_and_returns(with(Quirk::RegisterBoth));
    assert!(unregisters(&lab, returned).is_empty());
    let at_backup = registers_to(&lab, REGISTRAR_B, returned);
    assert!(at_backup.len() >= 2, "{}", lab.dump(returned));
    assert!(at_backup.iter().all(|r| r.expires() == Some(20) && r.aor_host() == "proxy-a.lab.test"));
    assert!(!registers_to(&lab, REGISTRAR_A, returned).is_empty(), "and at the primary");
}

/// Row 1: proxy-a fails at the subscription refreshes at 15 s; the subscriptions before, and the ones that moved.
fn moved_subscriptions(quirks: Quirks) -> (Vec<Sent>, Vec<Sent>) {
    let mut lab = lab(ROW_1, quirks);
    let before = lab.requests(Method::Subscribe, s(0));
    lab.set(PROXY_A, Behaviour::Reject(503));
    lab.run_for(s(17));
    let moved =
        lab.requests(Method::Subscribe, s(14)).into_iter().filter(|m| m.to == simulated::addr(PROXY_B)).collect();
    (before, moved)
}

#[test]
fn quirk_same_from_tag_moves_a_subscription_with_a_new_call_id_but_its_old_from_tag() {
    let (before, moved) = moved_subscriptions(Quirks::none());
    assert_eq!(moved.len(), 3);
    assert!(moved.iter().all(|m| before.iter().all(|b| b.sender_tag() != m.sender_tag())));

    let (before, moved) = moved_subscriptions(with(Quirk::SameFromTag));
    assert_eq!(moved.len(), 3);
    for m in &moved {
        assert!(before.iter().all(|b| b.call_id() != m.call_id()), "a new Call-ID");
        assert!(before.iter().any(|b| b.sender_tag() == m.sender_tag()), "the old From tag");
    }
}

#[test]
fn quirk_call_to_failed_proxy_sends_the_invite_to_the_failed_primary() {
    let invite_goes_to = |quirks| {
        let mut lab = lab(ROW_1, quirks);
        lab.set(PROXY_A, Behaviour::Reject(503));
        lab.run_for(s(17));
        assert_eq!(lab.core.active_placement().proxy, Role::Backup);
        lab.core.on_push(lab.now, PushCommand::Dial("1234".into()));
        lab.settle();
        let invite = lab.requests(Method::Invite, s(0)).remove(0);
        (invite.to, invite.request_uri())
    };
    assert_eq!(invite_goes_to(Quirks::none()), (simulated::addr(PROXY_B), "sip:1234@proxy-b.lab.test".to_owned()));
    assert_eq!(
        invite_goes_to(with(Quirk::CallToFailedProxy)),
        (simulated::addr(PROXY_A), "sip:1234@proxy-a.lab.test".to_owned())
    );
}

/// Row 1: proxy-a fails at 15 s and returns at 16 s: the un-REGISTERs and un-SUBSCRIBEs of the failback.
fn proxy_failback_releases(quirks: Quirks) -> (Vec<(SocketAddr, String)>, usize) {
    let mut lab = lab(ROW_1, quirks);
    lab.set(PROXY_A, Behaviour::Reject(503));
    lab.run_for(s(16));
    lab.set(PROXY_A, Behaviour::Answer);
    let returned = lab.elapsed();
    lab.run_for(s(6));
    assert_eq!(lab.core.active_placement(), Placement::PRIMARY);
    let unregistered = unregisters(&lab, returned).iter().map(|r| (r.to, r.aor_host())).collect();
    let unsubscribed = lab.requests(Method::Subscribe, returned).iter().filter(|m| m.expires() == Some(0)).count();
    (unregistered, unsubscribed)
}

#[test]
fn quirk_stale_backup_aor_leaves_the_backup_aors_binding_and_releases_the_rest() {
    assert_eq!(
        proxy_failback_releases(Quirks::none()),
        (vec![(simulated::addr(REGISTRAR_A), "proxy-b.lab.test".to_owned())], 3)
    );
    assert_eq!(proxy_failback_releases(with(Quirk::StaleBackupAor)), (vec![], 3));
}

#[test]
fn quirk_unregister_bypasses_outbound_sends_the_row_2_unregister_straight_to_the_backup_registrar() {
    let unregister = |quirks| {
        let mut lab = SimLab::started(&row_2(), quirks);
        lab.set(OUTBOUND_A, Behaviour::Refuse);
        lab.run_for(s(12));
        lab.set(OUTBOUND_A, Behaviour::Answer);
        let since = lab.elapsed();
        lab.run_for(s(7));
        assert_eq!(lab.core.active_placement(), Placement::PRIMARY);
        let released = unregisters(&lab, since);
        assert_eq!(released.len(), 1, "{}", lab.dump(since));
        (released[0].to, released[0].request_uri(), released[0].header(HeaderName::Route).map(str::to_owned))
    };
    assert_eq!(
        unregister(Quirks::none()),
        (
            simulated::addr(OUTBOUND_B),
            "sip:registrar-b.lab.test".to_owned(),
            Some("<sip:outbound-b.lab.test:5060;lr>".to_owned())
        )
    );
    assert_eq!(
        unregister(with(Quirk::UnregisterBypassesOutbound)),
        (simulated::addr(REGISTRAR_B), "sip:registrar-b.lab.test".to_owned(), None)
    );
}

#[test]
fn quirk_eager_failover_gives_up_on_the_primary_after_t1_instead_of_retransmitting() {
    let after_t1 = |quirks| {
        let mut phone = TestPhone::started(ROW_1_CFG, quirks);
        let (_, first) = phone.expect_register_to("127.66.0.11:5060");
        let (remote, _, next) = phone.wait_for_send();
        (phone.elapsed(), remote, branch(&next) == branch(&first))
    };
    assert_eq!(after_t1(Quirks::none()), (ms(100), simulated::addr("127.66.0.11:5060"), true), "a retransmission");
    assert_eq!(after_t1(with(Quirk::EagerFailover)), (ms(100), simulated::addr("127.66.0.12:5060"), false));
}

#[test]
fn quirk_no_resubscribe_on_481_drops_the_subscription_for_good() {
    let after_481 = |quirks| {
        let mut lab = lab(ROW_1, quirks);
        lab.set(PROXY_A, Behaviour::Reject(481));
        lab.run_for(ms(15_050));
        lab.set(PROXY_A, Behaviour::Answer);
        lab.run_for(s(40));
        let new_dialogs = lab
            .requests(Method::Subscribe, ms(14_999))
            .iter()
            .filter(|m| !m.header(HeaderName::To).unwrap_or("").contains("tag="))
            .count();
        (new_dialogs, lab.core.subscription_states())
    };
    let (new_dialogs, states) = after_481(Quirks::none());
    assert!(new_dialogs >= 2, "{new_dialogs}");
    assert!(states.iter().all(|s| matches!(s, SubscriptionState::Active { .. })));
    let (new_dialogs, states) = after_481(with(Quirk::NoResubscribeOn481));
    assert_eq!(new_dialogs, 0);
    assert_eq!(states.iter().filter(|s| **s == SubscriptionState::Terminated).count(), 2, "the two BLF ones");
}

#[test]
fn quirk_failover_on_decline_moves_the_proxy_when_a_callee_declines() {
    let after_decline = |quirks| {
        let mut lab = lab(ROW_1, quirks);
        lab.invite_status = Some(603);
        lab.core.on_push(lab.now, PushCommand::Dial("1234".into()));
        lab.settle();
        lab.run_for(s(1));
        lab.core.active_placement()
    };
    assert_eq!(after_decline(Quirks::none()), Placement::PRIMARY);
    assert_eq!(after_decline(with(Quirk::FailoverOnDecline)).proxy, Role::Backup);
}

#[test]
fn quirk_failover_on_430_takes_a_430_for_a_failed_flow() {
    let after_430 = |quirks| {
        let mut lab = SimLab::new(&format!("{}sip outbound support: 1\n", row_2()), quirks);
        lab.register_ok_headers.push((HeaderName::Require, "outbound".into()));
        lab.core.start(lab.now);
        lab.run_for(s(1));
        lab.set(OUTBOUND_A, Behaviour::Reject(430));
        lab.run_for(s(11));
        (lab.core.active_placement(), registers_to(&lab, OUTBOUND_B, s(0)).len())
    };
    assert_eq!(after_430(Quirks::none()), (Placement::PRIMARY, 0));
    let (placement, at_backup) = after_430(with(Quirk::FailoverOn430));
    assert_eq!(placement, Placement { registrar: Role::Backup, proxy: Role::Backup, outbound: Role::Backup });
    assert!(at_backup > 0);
}

#[test]
fn quirk_probe_outbound_only_probes_the_outbound_proxy_and_flaps_back_to_a_failed_registrar() {
    let behind_outbound_a = |quirks| {
        let mut lab = lab(&row_2(), quirks);
        lab.set(REGISTRAR_A, Behaviour::Reject(503));
        lab.run_for(s(11));
        let failed_over = lab.elapsed();
        lab.run_for(s(20));
        let probed: Vec<String> = lab.requests(Method::Options, failed_over).iter().map(Sent::request_uri).collect();
        let registers_via_a = registers_to(&lab, OUTBOUND_A, failed_over).len();
        (probed.first().cloned(), registers_via_a)
    };
    assert_eq!(behind_outbound_a(Quirks::none()), (Some("sip:registrar-a.lab.test".to_owned()), 0));
    let (probed, registers_via_a) = behind_outbound_a(with(Quirk::ProbeOutboundOnly));
    assert_eq!(probed.as_deref(), Some("sip:outbound-a.lab.test"));
    assert!(registers_via_a >= 1, "moves back while registrar-a still fails");
}

/// What the phone sends in the 2 s after the server reset (or closed) every TCP/TLS connection to
/// `element` at 3 s, with no request on any and the server still listening (the harness's
/// `reset`; the refreshes are due at 10 s and 15 s): its REGISTERs as (next hop, AOR host), the
/// next hops of its SUBSCRIBEs, and where it stands then.
fn after_a_reset(
    cfg: &str,
    element: &str,
    failure: TransportFailure,
    quirks: Quirks,
) -> (Vec<(SocketAddr, String)>, Vec<SocketAddr>, Placement) {
    let mut lab = lab(cfg, quirks);
    lab.run_for(s(3) - lab.elapsed());
    let reset_at = lab.elapsed();
    lab.fail_flows_to(element, failure);
    lab.run_for(s(2));
    let registers = lab
        .requests(Method::Register, reset_at)
        .iter()
        .filter(|r| r.expires() != Some(0))
        .map(|r| (r.to, r.aor_host()))
        .collect();
    let subscribes = lab.requests(Method::Subscribe, reset_at).iter().map(|r| r.to).collect();
    (registers, subscribes, lab.core.active_placement())
}

#[test]
fn quirk_failover_on_reset_moves_to_the_backup_when_a_primary_resets_an_idle_connection() {
    let tcp = |cfg: &str| format!("{cfg}sip transport protocol: 2\n");
    let tls = |cfg: &str| format!("{cfg}sip transport protocol: 4\n");
    let (a, b) = ("proxy-a.lab.test".to_owned(), "proxy-b.lab.test".to_owned());
    let backups = Placement { registrar: Role::Backup, proxy: Role::Backup, outbound: Role::Backup };
    let reset = || TransportFailure::Refused;

    // Row 1, registrar-a over TCP: the default phone waits for the refresh and connects again then.
    assert_eq!(after_a_reset(&tcp(ROW_1), REGISTRAR_A, reset(), Quirks::none()), (vec![], vec![], Placement::PRIMARY));
    assert_eq!(
        after_a_reset(&tcp(ROW_1), REGISTRAR_A, reset(), with(Quirk::FailoverOnReset)),
        (
            vec![(simulated::addr(REGISTRAR_B), a.clone())],
            vec![],
            Placement { registrar: Role::Backup, ..Placement::PRIMARY }
        )
    );
    // Row 1, proxy-a over TLS: the backup AOR at registrar-a, the three subscriptions at proxy-b.
    assert_eq!(
        after_a_reset(&tls(ROW_1), PROXY_A, TransportFailure::Closed, Quirks::none()),
        (vec![], vec![], Placement::PRIMARY)
    );
    assert_eq!(
        after_a_reset(&tls(ROW_1), PROXY_A, TransportFailure::Closed, with(Quirk::FailoverOnReset)),
        (
            vec![(simulated::addr(REGISTRAR_A), b.clone())],
            vec![simulated::addr(PROXY_B); 3],
            Placement { proxy: Role::Backup, ..Placement::PRIMARY }
        )
    );
    // Row 2, outbound-a over TCP: everything through outbound-b.
    assert_eq!(
        after_a_reset(&tcp(&row_2()), OUTBOUND_A, reset(), Quirks::none()),
        (vec![], vec![], Placement::PRIMARY)
    );
    assert_eq!(
        after_a_reset(&tcp(&row_2()), OUTBOUND_A, reset(), with(Quirk::FailoverOnReset)),
        (vec![(simulated::addr(OUTBOUND_B), b)], vec![simulated::addr(OUTBOUND_B); 3], backups)
    );
    // Row 3, outbound-a over TLS: the default phone registers its new connection at once, through
    // outbound-a again (the Contact names the connection); the quirk through outbound-b.
    assert_eq!(
        after_a_reset(&tls(&row_3()), OUTBOUND_A, reset(), Quirks::none()),
        (vec![(simulated::addr(OUTBOUND_A), a.clone())], vec![], Placement::PRIMARY)
    );
    assert_eq!(
        after_a_reset(&tls(&row_3()), OUTBOUND_A, reset(), with(Quirk::FailoverOnReset)),
        (
            vec![(simulated::addr(OUTBOUND_B), a)],
            vec![simulated::addr(OUTBOUND_B); 3],
            Placement { outbound: Role::Backup, ..Placement::PRIMARY }
        )
    );
}

#[test]
fn quirk_failover_on_reset_comes_back_when_the_probe_finds_the_primary_listening() {
    let mut lab = lab(&format!("{ROW_1}sip transport protocol: 2\n"), with(Quirk::FailoverOnReset));
    lab.run_for(s(3) - lab.elapsed());
    lab.fail_flows_to(REGISTRAR_A, TransportFailure::Refused);
    let reset_at = lab.elapsed();
    lab.run_for(s(6));
    let probes: Vec<(Duration, SocketAddr)> =
        lab.requests(Method::Options, reset_at).iter().map(|p| (p.at - reset_at, p.to)).collect();
    assert_eq!(probes, vec![(s(5), simulated::addr(REGISTRAR_A))], "{}", lab.dump(reset_at));
    assert_eq!(lab.core.active_placement(), Placement::PRIMARY);
    assert_eq!(registers_to(&lab, REGISTRAR_A, reset_at).iter().map(|r| r.at - reset_at).collect::<Vec<_>>(), [s(5)]);
    let released: Vec<SocketAddr> = unregisters(&lab, reset_at).iter().map(|r| r.to).collect();
    assert_eq!(released, [simulated::addr(REGISTRAR_B)]);
}

#[test]
fn quirk_retry_storm_registers_every_t1_while_both_registrars_are_down() {
    use super::rows::registers_with_both_registrars_down as registers;
    let shortest_gap = |sent: &[(Duration, char)], registrar: char| {
        let at: Vec<Duration> = sent.iter().filter(|(_, r)| *r == registrar).map(|(at, _)| *at).collect();
        at.windows(2).map(|pair| pair[1] - pair[0]).min().unwrap()
    };
    for behaviour in [Behaviour::Reject(503), Behaviour::Refuse] {
        let default = registers(behaviour, Quirks::none());
        assert_eq!((default.len(), shortest_gap(&default, 'a'), shortest_gap(&default, 'b')), (22, s(3), s(3)));
        let storm = registers(behaviour, with(Quirk::RetryStorm));
        assert_eq!(storm[..4], [(s(10), 'a'), (s(10), 'b'), (ms(10_100), 'a'), (ms(10_100), 'b')], "primary first");
        assert_eq!((storm.len(), shortest_gap(&storm, 'a'), shortest_gap(&storm, 'b')), (602, ms(100), ms(100)));
    }
    // Without answers the transaction timer (1 s) paces it: a round every 2 s and T1, not 7 s.
    let storm = registers(Behaviour::Silent, with(Quirk::RetryStorm));
    assert_eq!((shortest_gap(&storm, 'a'), shortest_gap(&storm, 'b')), (ms(2_100), ms(2_100)));
}
