//! Every transition of the failover state machine (rows 1-3 of the seed's table), driven through the core in a simulated lab.

use std::time::Duration;

use sip::{HeaderName, Method};

use super::simulated::*;
use crate::core::routing::{Placement, Role};
use crate::core::*;
use crate::quirks::{Quirk, Quirks};

fn s(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// The REGISTERs with a non-zero expiry logged since `since`, as (registrar, AOR host).
fn registrations(lab: &SimLab, since: Duration) -> Vec<(std::net::SocketAddr, String)> {
    lab.requests(Method::Register, since)
        .into_iter()
        .filter(|r| r.expires() != Some(0))
        .map(|r| (r.to, r.aor_host()))
        .collect()
}

/// The un-REGISTERs logged since `since`, as (registrar, AOR host).
fn unregistrations(lab: &SimLab, since: Duration) -> Vec<(std::net::SocketAddr, String)> {
    lab.requests(Method::Register, since)
        .into_iter()
        .filter(|r| r.expires() == Some(0))
        .map(|r| (r.to, r.aor_host()))
        .collect()
}

/// SUBSCRIBEs with a non-zero expiry logged since `since`.
fn subscribes(lab: &SimLab, since: Duration) -> Vec<Sent> {
    lab.requests(Method::Subscribe, since).into_iter().filter(|r| r.expires() != Some(0)).collect()
}

fn unsubscribes(lab: &SimLab, since: Duration) -> Vec<Sent> {
    lab.requests(Method::Subscribe, since).into_iter().filter(|r| r.expires() == Some(0)).collect()
}

/// A started row-1 lab, registered and subscribed at the primaries.
fn row_1(quirks: Quirks) -> SimLab {
    let mut lab = SimLab::started(ROW_1, quirks);
    lab.run_for(ms(100));
    lab
}

// --- Subscriptions from the cfg (R1.1) ---

#[test]
fn r1_1_register_and_every_subscription_go_to_the_primaries_first() {
    let lab = row_1(Quirks::none());
    assert_eq!(registrations(&lab, s(0)), vec![(addr(REGISTRAR_A), "proxy-a.lab.test".into())]);
    let subs = subscribes(&lab, s(0));
    let described: Vec<(String, String, String, String, Option<u32>)> = subs
        .iter()
        .map(|s| {
            (
                s.to.to_string(),
                s.request_uri(),
                s.header(HeaderName::Event).unwrap().to_owned(),
                s.header(HeaderName::Accept).unwrap().to_owned(),
                s.expires(),
            )
        })
        .collect();
    assert_eq!(
        described,
        vec![
            (
                PROXY_A.into(),
                "sip:2001@proxy-a.lab.test".into(),
                "dialog".into(),
                "application/dialog-info+xml".into(),
                Some(30)
            ),
            (
                PROXY_A.into(),
                "sip:2002@proxy-a.lab.test".into(),
                "dialog".into(),
                "application/dialog-info+xml".into(),
                Some(30)
            ),
            (
                PROXY_A.into(),
                "sip:1001@proxy-a.lab.test".into(),
                "message-summary".into(),
                "application/simple-message-summary".into(),
                Some(40)
            ),
        ]
    );
    for sub in &subs {
        assert_eq!(
            sub.header(HeaderName::From).unwrap().split(';').next(),
            Some("\"Desk 1\" <sip:1001@proxy-a.lab.test>")
        );
        assert_eq!(sub.header(HeaderName::To), Some(format!("<{}>", sub.request_uri()).as_str()));
        assert_eq!(sub.header(HeaderName::Contact), Some("<sip:1001@127.66.0.20:5060>"));
        assert_eq!(sub.header(HeaderName::CSeq), Some("1 SUBSCRIBE"));
        assert!(sub.header(HeaderName::Route).is_none());
    }
    assert_eq!(
        lab.core
            .subscription_states()
            .iter()
            .filter(|s| matches!(s, SubscriptionState::Active { proxy: Role::Primary, .. }))
            .count(),
        3
    );
}

#[test]
fn subscriptions_are_refreshed_in_their_dialog_at_half_the_granted_expiry() {
    let mut lab = row_1(Quirks::none());
    let first = subscribes(&lab, s(0))[0].clone();
    lab.run_for(s(15));
    let refreshes: Vec<Sent> =
        subscribes(&lab, ms(200)).into_iter().filter(|s| s.call_id() == first.call_id()).collect();
    assert_eq!(refreshes.len(), 1);
    let refresh = &refreshes[0];
    assert_eq!(refresh.at, s(15));
    assert_eq!(refresh.request_uri(), "sip:notifier.lab.test:5060", "a refresh goes to the notifier's Contact");
    assert_eq!(refresh.sender_tag(), first.sender_tag());
    assert!(refresh.header(HeaderName::To).unwrap().contains(";tag="));
    assert_eq!(refresh.header(HeaderName::CSeq), Some("2 SUBSCRIBE"));
    assert_eq!(refresh.to, addr(PROXY_A));
}

// --- R1.2: the primary registrar fails; registrar and proxy dimensions are independent ---

#[test]
fn r1_2_the_registrar_fails_over_alone_the_subscriptions_stay_at_the_primary_proxy() {
    let mut lab = row_1(Quirks::none());
    lab.set(REGISTRAR_A, Behaviour::Refuse);
    lab.run_for(s(11));
    let since = ms(200);
    assert_eq!(registrations(&lab, since).last(), Some(&(addr(REGISTRAR_B), "proxy-a.lab.test".to_owned())));
    assert!(subscribes(&lab, since).iter().all(|s| s.to == addr(PROXY_A)), "{}", lab.dump(since));
    assert_eq!(
        lab.core.active_placement(),
        Placement { registrar: Role::Backup, proxy: Role::Primary, outbound: Role::Primary }
    );
}

// --- R1.3: the primary proxy fails ---

fn check_proxy_failover(lab: &SimLab, since: Duration, before: &[Sent]) {
    let registered = registrations(lab, since);
    assert_eq!(registered.last(), Some(&(addr(REGISTRAR_A), "proxy-b.lab.test".to_owned())), "{}", lab.dump(since));
    let moved: Vec<Sent> = subscribes(lab, since).into_iter().filter(|s| s.to == addr(PROXY_B)).collect();
    let mut uris: Vec<String> = moved.iter().map(Sent::request_uri).collect();
    uris.sort();
    uris.dedup();
    assert_eq!(uris, vec!["sip:1001@proxy-b.lab.test", "sip:2001@proxy-b.lab.test", "sip:2002@proxy-b.lab.test"]);
    for sub in &moved {
        assert!(before.iter().all(|b| b.call_id() != sub.call_id()), "a moved subscription has a new Call-ID");
        assert!(before.iter().all(|b| b.sender_tag() != sub.sender_tag()), "and a new From tag");
        assert_eq!(sub.aor_host(), sub.request_uri().split('@').nth(1).unwrap());
        assert!(sub.header(HeaderName::From).unwrap().contains("sip:1001@proxy-b.lab.test"));
    }
}

#[test]
fn r1_3_a_failed_subscribe_refresh_moves_the_aor_and_every_subscription_to_the_backup_proxy() {
    for behaviour in [Behaviour::Silent, Behaviour::Refuse, Behaviour::Reject(503), Behaviour::Reject(408)] {
        let mut lab = row_1(Quirks::none());
        let before = subscribes(&lab, s(0));
        lab.set(PROXY_A, behaviour);
        let since = lab.elapsed();
        // The first refresh at 15 s finds the proxy down.
        lab.run_for(s(17));
        check_proxy_failover(&lab, since, &before);
        assert_eq!(lab.core.active_placement().proxy, Role::Backup, "{behaviour:?}");
        assert_eq!(lab.core.active_placement().registrar, Role::Primary, "{behaviour:?}");
    }
}

#[test]
fn r1_3_detection_takes_the_transaction_timer_when_silent_and_nothing_when_refused() {
    for (behaviour, detection) in
        [(Behaviour::Silent, ms(1000)), (Behaviour::Refuse, ms(0)), (Behaviour::Reject(503), ms(0))]
    {
        let mut lab = row_1(Quirks::none());
        lab.set(PROXY_A, behaviour);
        // Started at 0.1 s; the first refresh goes at 15 s.
        lab.run_for(ms(14_800));
        let took = lab.run_until(s(5), |log| log.iter().any(|s| s.to == addr(PROXY_B)));
        assert_eq!(took, ms(100) + detection, "{behaviour:?}");
    }
}

#[test]
fn a_failed_invite_counts_against_the_proxy_too() {
    let mut lab = row_1(Quirks::none());
    lab.set(PROXY_A, Behaviour::Reject(503));
    lab.core.on_push(lab.now, PushCommand::Dial("1234".into()));
    lab.settle();
    let invite = lab.requests(Method::Invite, s(0));
    assert_eq!(invite.len(), 1);
    assert_eq!(invite[0].request_uri(), "sip:1234@proxy-a.lab.test");
    assert_eq!(lab.core.active_placement().proxy, Role::Backup);
    assert_eq!(registrations(&lab, ms(100)).last(), Some(&(addr(REGISTRAR_A), "proxy-b.lab.test".to_owned())));
}

#[test]
fn when_both_proxies_fail_the_primary_is_tried_first_again_after_the_retry_timer() {
    let mut lab = row_1(Quirks::none());
    lab.set(PROXY_A, Behaviour::Reject(503));
    lab.set(PROXY_B, Behaviour::Reject(503));
    lab.run_for(s(15));
    let since = lab.elapsed();
    assert_eq!(lab.core.active_placement().proxy, Role::Primary);
    lab.run_for(s(4));
    let retried: Vec<Sent> = subscribes(&lab, since + ms(1));
    assert!(!retried.is_empty(), "{}", lab.dump(since));
    assert_eq!(retried[0].to, addr(PROXY_A), "{}", lab.dump(since));
    assert_eq!(retried[0].at, s(19), "after the subscription failed retry timer");
}

/// Row 1 with a timeout retry timer (5 s) apart from the retry timer (3 s): both registrars
/// fail with `behaviour` from the refresh at 10 s on. The REGISTER transactions up to 40 s
/// (retransmissions are one), in the order sent: when, and to which registrar ('a' or 'b').
pub(super) fn registers_with_both_registrars_down(behaviour: Behaviour, quirks: Quirks) -> Vec<(Duration, char)> {
    let cfg = ROW_1.replace("sip registration timeout retry timer: 3", "sip registration timeout retry timer: 5");
    let mut lab = SimLab::started(&cfg, quirks);
    lab.run_for(ms(100));
    lab.set(REGISTRAR_A, behaviour);
    lab.set(REGISTRAR_B, behaviour);
    lab.run_for(s(40) - lab.elapsed());
    let mut seen = std::collections::BTreeSet::new();
    lab.requests(Method::Register, s(1))
        .into_iter()
        .filter(|r| seen.insert(super::branch(&r.message)))
        .map(|r| (r.at, if r.to == addr(REGISTRAR_A) { 'a' } else { 'b' }))
        .collect()
}

#[test]
fn while_both_registrars_are_down_each_gets_a_register_once_per_retry_timer_primary_first() {
    // Rounds every `step` seconds from `from` on: the primary, then the backup `gap` seconds later.
    let rounds = |from: u64, step: u64, gap: u64| -> Vec<(Duration, char)> {
        (0..)
            .map(|i| s(from + i * step))
            .flat_map(|at| [(at, 'a'), (at + s(gap), 'b')])
            .take_while(|(at, _)| *at <= s(40))
            .collect()
    };
    // A 503 (or a refusal): the primary, at once the backup, then both again after the retry timer.
    assert_eq!(registers_with_both_registrars_down(Behaviour::Reject(503), Quirks::none()), rounds(10, 3, 0));
    assert_eq!(registers_with_both_registrars_down(Behaviour::Refuse, Quirks::none()), rounds(10, 3, 0));
    // No answer: each found down by its transaction timer (1 s), then the timeout retry timer.
    assert_eq!(registers_with_both_registrars_down(Behaviour::Silent, Quirks::none()), rounds(10, 7, 1));
}

// --- R1.4 and R1.5: failback ---

#[test]
fn a_failed_primary_is_probed_with_options_every_probe_interval_until_it_answers() {
    let mut lab = row_1(Quirks::none());
    lab.set(REGISTRAR_A, Behaviour::Reject(503));
    lab.run_for(s(10));
    let failed_at = lab.requests(Method::Register, s(0)).iter().find(|r| r.to == addr(REGISTRAR_B)).unwrap().at;
    lab.run_for(s(12));
    let probes = lab.requests(Method::Options, s(0));
    let at: Vec<Duration> = probes.iter().map(|p| p.at - failed_at).collect();
    assert_eq!(at, vec![s(5), s(10)], "{}", lab.dump(s(0)));
    for probe in &probes {
        assert_eq!(probe.to, addr(REGISTRAR_A));
        assert_eq!(probe.request_uri(), "sip:registrar-a.lab.test");
        assert_eq!(probe.header(HeaderName::To), Some("<sip:registrar-a.lab.test>"));
    }
    assert_eq!(lab.core.active_placement().registrar, Role::Backup);
}

#[test]
fn a_silent_primary_is_probed_again_one_interval_after_the_probe_timed_out() {
    let mut lab = row_1(Quirks::none());
    lab.set(REGISTRAR_A, Behaviour::Silent);
    lab.run_for(s(30));
    let probes: Vec<Duration> =
        lab.requests(Method::Options, s(0)).iter().map(|p| p.at).fold(Vec::new(), |mut firsts: Vec<Duration>, at| {
            // Retransmissions of one probe come within the transaction timer of its first send.
            if firsts.last().is_none_or(|last| at - *last >= s(1)) {
                firsts.push(at);
            }
            firsts
        });
    let gaps: Vec<Duration> = probes.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(!gaps.is_empty() && gaps.iter().all(|g| *g == s(6)), "interval 5 s after a 1 s timeout: {gaps:?}");
}

#[test]
fn r1_4_the_registrar_returns_register_there_with_the_active_aor_and_unregister_the_backup() {
    let mut lab = row_1(Quirks::none());
    lab.set(REGISTRAR_A, Behaviour::Refuse);
    lab.run_for(s(11));
    let backup_register = lab.requests(Method::Register, s(0)).into_iter().find(|r| r.to == addr(REGISTRAR_B)).unwrap();
    lab.set(REGISTRAR_A, Behaviour::Answer);
    let returned_at = lab.elapsed();
    lab.run_for(s(6));
    let registered = registrations(&lab, returned_at);
    assert_eq!(
        registered.first(),
        Some(&(addr(REGISTRAR_A), "proxy-a.lab.test".to_owned())),
        "{}",
        lab.dump(returned_at)
    );
    let unregistered =
        lab.requests(Method::Register, returned_at).into_iter().filter(|r| r.expires() == Some(0)).collect::<Vec<_>>();
    assert_eq!(unregistered.len(), 1, "{}", lab.dump(returned_at));
    let un = &unregistered[0];
    assert_eq!(un.to, addr(REGISTRAR_B));
    assert_eq!(un.request_uri(), "sip:registrar-b.lab.test");
    assert_eq!(un.aor_host(), "proxy-a.lab.test");
    assert_eq!(un.call_id(), backup_register.call_id(), "the un-REGISTER continues the backup's call leg");
    assert!(un.header(HeaderName::Contact).unwrap().starts_with("<sip:1001@127.66.0.20:5060>"));
    assert_eq!(lab.core.active_placement(), Placement::PRIMARY);
    // The return was noticed within the probe interval plus the transaction timer.
    assert!(registered.iter().any(|(to, _)| *to == addr(REGISTRAR_A)));
    let noticed = lab.requests(Method::Register, returned_at).iter().find(|r| r.to == addr(REGISTRAR_A)).unwrap().at;
    assert!(noticed - returned_at <= s(5) + s(1), "noticed after {:?}", noticed - returned_at);
    // The subscriptions never moved.
    assert!(subscribes(&lab, s(0)).iter().all(|s| s.to == addr(PROXY_A)));
}

#[test]
fn r1_5_the_proxy_returns_register_the_primary_aor_move_subscriptions_back_and_unsubscribe_the_backup() {
    let mut lab = row_1(Quirks::none());
    lab.set(PROXY_A, Behaviour::Reject(503));
    lab.run_for(s(16));
    let at_backup: Vec<Sent> = subscribes(&lab, s(0)).into_iter().filter(|s| s.to == addr(PROXY_B)).collect();
    assert_eq!(at_backup.len(), 3);
    lab.set(PROXY_A, Behaviour::Answer);
    let returned_at = lab.elapsed();
    lab.run_for(s(6));
    let since = returned_at;
    assert_eq!(
        registrations(&lab, since).first(),
        Some(&(addr(REGISTRAR_A), "proxy-a.lab.test".to_owned())),
        "{}",
        lab.dump(since)
    );
    assert_eq!(
        unregistrations(&lab, since),
        vec![(addr(REGISTRAR_A), "proxy-b.lab.test".to_owned())],
        "the backup AOR's binding"
    );
    let back: Vec<Sent> = subscribes(&lab, since).into_iter().filter(|s| s.to == addr(PROXY_A)).collect();
    assert_eq!(back.len(), 3, "{}", lab.dump(since));
    for sub in &back {
        assert!(at_backup.iter().all(|b| b.call_id() != sub.call_id()), "new dialogs");
        assert!(sub.request_uri().ends_with("@proxy-a.lab.test"));
        assert_eq!(sub.header(HeaderName::CSeq), Some("1 SUBSCRIBE"));
    }
    let gone = unsubscribes(&lab, since);
    assert_eq!(gone.len(), 3, "{}", lab.dump(since));
    for un in &gone {
        assert_eq!(un.to, addr(PROXY_B));
        let old = at_backup.iter().find(|b| b.call_id() == un.call_id()).expect("an un-SUBSCRIBE of a backup dialog");
        assert_eq!(un.sender_tag(), old.sender_tag());
        assert!(un.header(HeaderName::To).unwrap().contains(";tag="), "in the dialog");
    }
    assert_eq!(lab.core.active_placement(), Placement::PRIMARY);
}

/// The events of row 1, in any order: which primary fails or returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    RegistrarFails,
    ProxyFails,
    RegistrarReturns,
    ProxyReturns,
}

/// Every order of the two failures and two returns (each return after its failure).
fn orders() -> Vec<Vec<Event>> {
    let events = [Event::RegistrarFails, Event::ProxyFails, Event::RegistrarReturns, Event::ProxyReturns];
    let mut all = Vec::new();
    for a in 0..4 {
        for b in 0..4 {
            for c in 0..4 {
                for d in 0..4 {
                    let order = [a, b, c, d];
                    let mut sorted = order;
                    sorted.sort();
                    if sorted != [0, 1, 2, 3] {
                        continue;
                    }
                    let position = |e: Event| order.iter().position(|i| events[*i] == e).unwrap();
                    if position(Event::RegistrarReturns) < position(Event::RegistrarFails)
                        || position(Event::ProxyReturns) < position(Event::ProxyFails)
                    {
                        continue;
                    }
                    all.push(order.iter().map(|i| events[*i]).collect());
                }
            }
        }
    }
    all
}

#[test]
fn row_1_every_order_of_failures_and_returns_lands_where_the_table_says() {
    let orders = orders();
    assert_eq!(orders.len(), 6);
    for order in orders {
        let mut lab = row_1(Quirks::none());
        let (mut registrar_down, mut proxy_down) = (false, false);
        for event in &order {
            match event {
                Event::RegistrarFails => {
                    lab.set(REGISTRAR_A, Behaviour::Refuse);
                    registrar_down = true;
                }
                Event::ProxyFails => {
                    lab.set(PROXY_A, Behaviour::Refuse);
                    proxy_down = true;
                }
                Event::RegistrarReturns => {
                    lab.set(REGISTRAR_A, Behaviour::Answer);
                    registrar_down = false;
                }
                Event::ProxyReturns => {
                    lab.set(PROXY_A, Behaviour::Answer);
                    proxy_down = false;
                }
            }
            let since = lab.elapsed();
            // Long enough for a refresh to find a failure (10 s registration, 15-20 s subscriptions)
            // and for a probe to find a return (5 s + 1 s).
            lab.run_for(s(25));
            let expected_registrar = if registrar_down { REGISTRAR_B } else { REGISTRAR_A };
            let expected_proxy = if proxy_down { PROXY_B } else { PROXY_A };
            let expected_aor = if proxy_down { "proxy-b.lab.test" } else { "proxy-a.lab.test" };
            let context = format!("{order:?} after {event:?}:\n{}", lab.dump(since));
            assert_eq!(
                lab.core.active_placement(),
                Placement {
                    registrar: if registrar_down { Role::Backup } else { Role::Primary },
                    proxy: if proxy_down { Role::Backup } else { Role::Primary },
                    outbound: Role::Primary
                },
                "{context}"
            );
            assert_eq!(
                registrations(&lab, since).last(),
                Some(&(addr(expected_registrar), expected_aor.to_owned())),
                "{context}"
            );
            let last_subscribes = subscribes(&lab, since);
            assert!(last_subscribes.iter().rev().take(3).all(|s| s.to == addr(expected_proxy)), "{context}");
            assert!(matches!(lab.core.registration_state(), RegistrationState::Registered { .. }), "{context}");
        }
    }
}

// --- RFC 6665 subscription events ---

#[test]
fn a_481_to_a_refresh_starts_a_new_subscription_at_once() {
    let mut lab = row_1(Quirks::none());
    lab.set(PROXY_A, Behaviour::Reject(481));
    lab.run_for(ms(15_050));
    lab.set(PROXY_A, Behaviour::Answer);
    let since = ms(14_999);
    let log = lab.requests(Method::Subscribe, since);
    // Each refresh (the two BLF ones at 15 s) is answered 481 and followed at once by a new dialog.
    assert_eq!(log.len(), 4, "{}", lab.dump(since));
    for pair in log.chunks(2) {
        assert!(pair[0].header(HeaderName::To).unwrap().contains("tag="));
        assert!(!pair[1].header(HeaderName::To).unwrap().contains("tag="));
        assert_ne!(pair[0].call_id(), pair[1].call_id());
        assert_eq!(pair[1].at, pair[0].at);
        assert_eq!(pair[1].to, addr(PROXY_A), "a 481 is not a failure of the proxy");
    }
    assert_eq!(lab.core.active_placement(), Placement::PRIMARY);
}

#[test]
fn quirk_ignore_481_keeps_refreshing_the_forgotten_dialog() {
    let mut lab = row_1(Quirks::none().with(Quirk::Ignore481));
    lab.set(PROXY_A, Behaviour::Reject(481));
    lab.run_for(ms(15_050));
    let since = ms(14_999);
    assert!(lab.requests(Method::Subscribe, since).iter().all(|s| s.header(HeaderName::To).unwrap().contains("tag=")));
}

#[test]
fn notify_in_a_dialog_is_answered_200_and_deactivated_resubscribes_at_once() {
    let mut lab = row_1(Quirks::none());
    let first = subscribes(&lab, s(0))[0].clone();
    assert_eq!(lab.notify(&first, "active;expires=30"), 200);
    let since = lab.elapsed();
    assert_eq!(lab.notify(&first, "terminated;reason=deactivated"), 200);
    let again = subscribes(&lab, since);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].request_uri(), first.request_uri());
    assert_ne!(again[0].call_id(), first.call_id());
    assert_eq!(again[0].at, since, "at once");
    // A late NOTIFY of the ended dialog still gets 200; one of no dialog gets 481.
    assert_eq!(lab.notify(&first, "terminated;reason=timeout"), 200);
    let mut stranger = first.clone();
    stranger.message.set_header(HeaderName::CallId, "unknown@127.66.0.20");
    assert_eq!(lab.notify(&stranger, "active"), 481);
}

#[test]
fn notify_rejected_ends_the_subscription_for_good() {
    let mut lab = row_1(Quirks::none());
    let first = subscribes(&lab, s(0))[0].clone();
    let since = lab.elapsed();
    assert_eq!(lab.notify(&first, "terminated;reason=rejected"), 200);
    lab.run_for(s(40));
    assert!(subscribes(&lab, since).iter().all(|s| s.request_uri() != first.request_uri()));
    assert_eq!(lab.core.subscription_states()[0], SubscriptionState::Terminated);
}

// --- Row 1 quirks ---

#[test]
fn quirk_no_backup_proxy_keeps_the_primary_aor_and_subscriptions() {
    let mut lab = row_1(Quirks::none().with(Quirk::NoBackupProxy));
    lab.set(PROXY_A, Behaviour::Reject(503));
    lab.run_for(s(25));
    assert!(lab.log.iter().all(|s| s.to != addr(PROXY_B)));
    assert!(registrations(&lab, s(0)).iter().all(|(_, aor)| aor == "proxy-a.lab.test"));
}

#[test]
fn quirk_keep_aor_moves_subscriptions_but_not_the_aor() {
    let mut lab = row_1(Quirks::none().with(Quirk::KeepAor));
    lab.set(PROXY_A, Behaviour::Reject(503));
    lab.run_for(s(25));
    assert!(subscribes(&lab, s(14)).iter().any(|s| s.to == addr(PROXY_B)));
    assert!(registrations(&lab, s(0)).iter().all(|(_, aor)| aor == "proxy-a.lab.test"));
}

#[test]
fn quirk_subscriptions_stay_leaves_them_at_the_failed_primary_proxy() {
    let mut lab = row_1(Quirks::none().with(Quirk::SubscriptionsStay));
    lab.set(PROXY_A, Behaviour::Reject(503));
    lab.run_for(s(25));
    assert!(subscribes(&lab, s(0)).iter().all(|s| s.to == addr(PROXY_A)));
    assert_eq!(
        registrations(&lab, s(14)).last().map(|r| r.1.as_str()),
        Some("proxy-b.lab.test"),
        "the AOR still moves"
    );
}

#[test]
fn quirk_no_failback_never_probes_and_stays_on_the_backup() {
    let mut lab = row_1(Quirks::none().with(Quirk::NoFailback));
    lab.set(REGISTRAR_A, Behaviour::Refuse);
    lab.run_for(s(11));
    lab.set(REGISTRAR_A, Behaviour::Answer);
    lab.run_for(s(30));
    assert!(lab.requests(Method::Options, s(0)).is_empty());
    assert_eq!(registrations(&lab, s(12)).last().map(|r| r.0), Some(addr(REGISTRAR_B)));
}

#[test]
fn quirk_no_unregister_backup_leaves_the_backup_binding() {
    let mut lab = row_1(Quirks::none().with(Quirk::NoUnregisterBackup));
    lab.set(REGISTRAR_A, Behaviour::Refuse);
    lab.run_for(s(11));
    lab.set(REGISTRAR_A, Behaviour::Answer);
    lab.run_for(s(8));
    assert_eq!(registrations(&lab, s(11)).first().map(|r| r.0), Some(addr(REGISTRAR_A)));
    assert!(unregistrations(&lab, s(0)).is_empty());
}

#[test]
fn quirk_no_unsubscribe_backup_leaves_the_backup_dialogs() {
    let mut lab = row_1(Quirks::none().with(Quirk::NoUnsubscribeBackup));
    lab.set(PROXY_A, Behaviour::Reject(503));
    lab.run_for(s(16));
    lab.set(PROXY_A, Behaviour::Answer);
    lab.run_for(s(6));
    assert!(subscribes(&lab, s(16)).iter().any(|s| s.to == addr(PROXY_A)));
    assert!(unsubscribes(&lab, s(0)).is_empty());
}

#[test]
fn quirk_reuse_subscription_dialog_moves_in_the_old_call_id() {
    let mut lab = row_1(Quirks::none().with(Quirk::ReuseSubscriptionDialog));
    let before = subscribes(&lab, s(0));
    lab.set(PROXY_A, Behaviour::Reject(503));
    lab.run_for(s(16));
    let moved: Vec<Sent> = subscribes(&lab, s(14)).into_iter().filter(|s| s.to == addr(PROXY_B)).collect();
    assert!(!moved.is_empty());
    assert!(moved.iter().all(|m| before.iter().any(|b| b.call_id() == m.call_id())));
}

#[test]
fn quirk_backup_first_starts_at_the_backups() {
    let lab = row_1(Quirks::none().with(Quirk::BackupFirst));
    assert_eq!(registrations(&lab, s(0)), vec![(addr(REGISTRAR_B), "proxy-b.lab.test".into())]);
    assert!(subscribes(&lab, s(0)).iter().all(|s| s.to == addr(PROXY_B)));
}

#[test]
fn subscriptions_start_after_the_first_register_is_answered_one_after_another() {
    let mut lab = SimLab::new(ROW_1, Quirks::none());
    lab.set(REGISTRAR_A, Behaviour::Silent);
    lab.core.start(lab.now);
    lab.run_for(ms(900));
    assert!(subscribes(&lab, s(0)).is_empty(), "no SUBSCRIBE while the first REGISTER waits");
    lab.run_for(ms(200));
    let first_backup_register =
        lab.requests(Method::Register, s(0)).into_iter().find(|r| r.to == addr(REGISTRAR_B)).unwrap();
    let subs = subscribes(&lab, s(0));
    assert_eq!(subs.len(), 3);
    assert!(subs.iter().all(|s| s.at >= first_backup_register.at));
    let uris: Vec<String> = subs.iter().map(Sent::request_uri).collect();
    assert_eq!(uris, vec!["sip:2001@proxy-a.lab.test", "sip:2002@proxy-a.lab.test", "sip:1001@proxy-a.lab.test"]);
}

// --- Rows 2 and 3: outbound proxies ---

/// The Route of a logged request, if any.
fn route(sent: &Sent) -> Option<String> {
    sent.header(HeaderName::Route).map(str::to_owned)
}

#[test]
fn r2_1_every_request_goes_through_the_primary_outbound_proxy_to_the_primaries() {
    let lab = SimLab::started(&row_2(), Quirks::none());
    let registers = lab.requests(Method::Register, s(0));
    assert_eq!(registers.len(), 1);
    assert_eq!(registers[0].to, addr(OUTBOUND_A));
    assert_eq!(registers[0].request_uri(), "sip:registrar-a.lab.test");
    assert_eq!(route(&registers[0]).as_deref(), Some("<sip:outbound-a.lab.test:5060;lr>"));
    assert_eq!(registers[0].aor_host(), "proxy-a.lab.test");
    let subs = subscribes(&lab, s(0));
    assert_eq!(subs.len(), 3);
    for sub in &subs {
        assert_eq!(sub.to, addr(OUTBOUND_A));
        assert!(sub.request_uri().ends_with("@proxy-a.lab.test"));
        assert_eq!(route(sub).as_deref(), Some("<sip:outbound-a.lab.test:5060;lr>"));
    }
}

#[test]
fn r2_2_any_connection_failure_flips_everything_to_the_backup_set_at_once() {
    for behaviour in [Behaviour::Refuse, Behaviour::Silent, Behaviour::Reject(503)] {
        let mut lab = SimLab::started(&row_2(), Quirks::none());
        let before = subscribes(&lab, s(0));
        lab.set(OUTBOUND_A, behaviour);
        lab.run_for(s(12));
        let since = ms(1);
        let registers: Vec<Sent> =
            lab.requests(Method::Register, since).into_iter().filter(|r| r.to == addr(OUTBOUND_B)).collect();
        assert!(!registers.is_empty(), "{behaviour:?}\n{}", lab.dump(since));
        let register = &registers[0];
        assert_eq!(register.request_uri(), "sip:registrar-b.lab.test", "{behaviour:?}");
        assert_eq!(register.aor_host(), "proxy-b.lab.test");
        assert_eq!(route(register).as_deref(), Some("<sip:outbound-b.lab.test:5060;lr>"));
        let moved: Vec<Sent> = subscribes(&lab, since).into_iter().filter(|s| s.to == addr(OUTBOUND_B)).collect();
        assert_eq!(moved.len(), 3, "{behaviour:?}\n{}", lab.dump(since));
        for sub in &moved {
            assert!(sub.request_uri().ends_with("@proxy-b.lab.test"));
            assert!(before.iter().all(|b| b.call_id() != sub.call_id()));
            assert_eq!(route(sub).as_deref(), Some("<sip:outbound-b.lab.test:5060;lr>"));
        }
        assert_eq!(
            lab.core.active_placement(),
            Placement { registrar: Role::Backup, proxy: Role::Backup, outbound: Role::Backup }
        );
    }
}

#[test]
fn r2_3_when_the_primary_outbound_proxy_answers_again_everything_moves_back() {
    let mut lab = SimLab::started(&row_2(), Quirks::none());
    lab.set(OUTBOUND_A, Behaviour::Refuse);
    lab.run_for(s(12));
    let at_backup: Vec<Sent> = subscribes(&lab, s(0)).into_iter().filter(|s| s.to == addr(OUTBOUND_B)).collect();
    lab.set(OUTBOUND_A, Behaviour::Answer);
    let since = lab.elapsed();
    lab.run_for(s(7));
    let probes = lab.requests(Method::Options, since);
    assert!(!probes.is_empty());
    assert_eq!(probes[0].to, addr(OUTBOUND_A));
    assert_eq!(probes[0].request_uri(), "sip:outbound-a.lab.test", "the outbound proxy itself is probed");
    assert_eq!(route(&probes[0]), None);
    let registers: Vec<Sent> =
        lab.requests(Method::Register, since).into_iter().filter(|r| r.expires() != Some(0)).collect();
    assert_eq!(registers[0].to, addr(OUTBOUND_A), "{}", lab.dump(since));
    assert_eq!(registers[0].request_uri(), "sip:registrar-a.lab.test");
    assert_eq!(registers[0].aor_host(), "proxy-a.lab.test");
    let released: Vec<Sent> =
        lab.requests(Method::Register, since).into_iter().filter(|r| r.expires() == Some(0)).collect();
    assert_eq!(released.len(), 1, "{}", lab.dump(since));
    assert_eq!(released[0].to, addr(OUTBOUND_B), "the backup binding is released the way it was made");
    assert_eq!(released[0].request_uri(), "sip:registrar-b.lab.test");
    assert_eq!(released[0].aor_host(), "proxy-b.lab.test");
    let back: Vec<Sent> = subscribes(&lab, since).into_iter().filter(|s| s.to == addr(OUTBOUND_A)).collect();
    assert_eq!(back.len(), 3);
    assert!(back.iter().all(|s| s.request_uri().ends_with("@proxy-a.lab.test")));
    let gone = unsubscribes(&lab, since);
    assert_eq!(gone.len(), 3);
    assert!(gone.iter().all(|u| u.to == addr(OUTBOUND_B) && at_backup.iter().any(|b| b.call_id() == u.call_id())));
    assert_eq!(lab.core.active_placement(), Placement::PRIMARY);
}

#[test]
fn r3_1_to_r3_3_only_the_outbound_proxy_moves_and_back() {
    let mut lab = SimLab::started(&row_3(), Quirks::none());
    assert_eq!(lab.core.failover_scheme(), FailoverScheme::OutboundOnly);
    let first = lab.requests(Method::Register, s(0));
    assert_eq!((first[0].to, first[0].request_uri()), (addr(OUTBOUND_A), "sip:registrar-a.lab.test".to_owned()));
    lab.set(OUTBOUND_A, Behaviour::Refuse);
    lab.run_for(s(12));
    let since = ms(1);
    let through_b: Vec<Sent> = lab.since(since).into_iter().filter(|s| s.to == addr(OUTBOUND_B)).collect();
    let register = through_b.iter().find(|s| s.method() == Some(Method::Register)).expect("REGISTER via outbound-b");
    assert_eq!(register.request_uri(), "sip:registrar-a.lab.test", "R3.2: the registrar is unchanged");
    assert_eq!(register.aor_host(), "proxy-a.lab.test", "R3.2: the AOR is unchanged");
    assert_eq!(route(register).as_deref(), Some("<sip:outbound-b.lab.test:5060;lr>"));
    let moved: Vec<&Sent> = through_b.iter().filter(|s| s.method() == Some(Method::Subscribe)).collect();
    assert_eq!(moved.len(), 3);
    assert!(moved.iter().all(|s| s.request_uri().ends_with("@proxy-a.lab.test")));
    lab.set(OUTBOUND_A, Behaviour::Answer);
    let returned = lab.elapsed();
    lab.run_for(s(7));
    let registers: Vec<Sent> =
        lab.requests(Method::Register, returned).into_iter().filter(|r| r.expires() != Some(0)).collect();
    assert_eq!(registers[0].to, addr(OUTBOUND_A), "R3.3\n{}", lab.dump(returned));
    assert_eq!(registers[0].request_uri(), "sip:registrar-a.lab.test");
    assert!(unregistrations(&lab, returned).is_empty(), "the same binding, only the path moved");
    let back: Vec<Sent> = subscribes(&lab, returned).into_iter().filter(|s| s.to == addr(OUTBOUND_A)).collect();
    assert_eq!(back.len(), 3);
    assert_eq!(unsubscribes(&lab, returned).len(), 3, "the dialogs through the backup outbound proxy are ended");
    assert_eq!(lab.core.active_placement(), Placement::PRIMARY);
}

#[test]
fn quirk_no_outbound_proxy_failover_never_uses_the_backup_outbound_proxy() {
    for cfg in [row_2(), row_3()] {
        let mut lab = SimLab::started(&cfg, Quirks::none().with(Quirk::NoOutboundProxyFailover));
        lab.set(OUTBOUND_A, Behaviour::Refuse);
        lab.run_for(s(20));
        assert!(lab.log.iter().all(|s| s.to != addr(OUTBOUND_B)), "{}", lab.dump(s(0)));
    }
}

#[test]
fn quirk_backup_first_starts_through_the_backup_outbound_proxy() {
    let lab = SimLab::started(&row_3(), Quirks::none().with(Quirk::BackupFirst));
    assert!(lab.log.iter().all(|s| s.to == addr(OUTBOUND_B)));
}
