//! Requests inside a dialog: the route set the dialog learnt from Record-Route, and nothing in front of it (RFC 3261 §12.2.1.1).

use std::time::Duration;

use sip::{HeaderName, Method};

use super::simulated::*;
use crate::core::*;
use crate::quirks::Quirks;

fn s(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

/// A row 2 lab whose outbound proxies record-route, started and settled.
fn record_routing_lab(cfg: &str) -> SimLab {
    let mut lab = SimLab::new(cfg, Quirks::none());
    lab.outbound_record_routes = true;
    lab.core.start(lab.now);
    lab.settle();
    lab
}

fn routes(sent: &Sent) -> Vec<String> {
    sent.message.header_values(&HeaderName::Route).into_iter().map(str::to_owned).collect()
}

#[test]
fn a_subscribe_refresh_carries_the_dialog_route_set_only_not_the_outbound_proxy_in_front_of_it() {
    let mut lab = record_routing_lab(&row_2());
    let initial = lab.requests(Method::Subscribe, s(0))[0].clone();
    assert_eq!(
        routes(&initial),
        vec!["<sip:outbound-a.lab.test:5060;lr>"],
        "the initial SUBSCRIBE is routed by the cfg"
    );
    // The subscription period is 30 s: the refresh goes at 15 s.
    lab.run_for(s(16));
    let refresh = lab
        .requests(Method::Subscribe, s(1))
        .into_iter()
        .find(|m| m.call_id() == initial.call_id())
        .expect("a refresh");
    assert_eq!(routes(&refresh), vec!["<sip:flow1@outbound-a.lab.test:5060;lr;ob>"], "{}", lab.dump(s(0)));
    assert_eq!(refresh.to, addr(OUTBOUND_A), "the route set's first hop");
}

#[test]
fn without_a_record_route_an_in_dialog_request_has_no_route_and_still_leaves_through_the_outbound_proxy() {
    let mut lab = SimLab::started(&row_2(), Quirks::none());
    let initial = lab.requests(Method::Subscribe, s(0))[0].clone();
    lab.run_for(s(16));
    let refresh = lab
        .requests(Method::Subscribe, s(1))
        .into_iter()
        .find(|m| m.call_id() == initial.call_id())
        .expect("a refresh");
    assert!(routes(&refresh).is_empty(), "{:?}", routes(&refresh));
    assert_eq!(refresh.to, addr(OUTBOUND_A));
    assert_eq!(refresh.request_uri(), "sip:notifier.lab.test:5060", "the remote target");
}

#[test]
fn the_ack_and_bye_of_a_call_carry_the_dialog_route_set_only() {
    let cfg = format!("{}refphone call duration: 2\n", row_2());
    let mut lab = record_routing_lab(&cfg);
    lab.core.on_push(lab.now, PushCommand::Dial("1234".into()));
    lab.run_for(s(3));
    let invite = &lab.requests(Method::Invite, s(0))[0];
    assert_eq!(routes(invite), vec!["<sip:outbound-a.lab.test:5060;lr>"]);
    for method in [Method::Ack, Method::Bye] {
        let request = &lab.requests(method.clone(), s(0))[0];
        assert_eq!(routes(request), vec!["<sip:flow1@outbound-a.lab.test:5060;lr;ob>"], "{method}");
        assert_eq!(request.to, addr(OUTBOUND_A), "{method}");
    }
}
