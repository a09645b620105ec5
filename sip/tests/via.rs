//! The Via typed view: sent-protocol spacing, IPv4/IPv6/name hosts, ports, branch, received and rport.

mod support;

use sip::{BRANCH_MAGIC_COOKIE, Host, Via};

fn via(value: &str) -> Via {
    Via::parse(value).unwrap_or_else(|e| panic!("{value:?}: {e}"))
}

#[test]
fn transport_host_port_and_branch() {
    let v = via("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds");
    assert_eq!(v.transport, "UDP");
    assert_eq!(v.host, Host::V4("192.0.2.10".parse().unwrap()));
    assert_eq!(v.port, Some(5060));
    assert_eq!(v.branch(), Some("z9hG4bK776asdhds"));
    assert!(v.branch().unwrap().starts_with(BRANCH_MAGIC_COOKIE));
}

#[test]
fn transport_is_uppercased_and_any_token_is_kept() {
    assert_eq!(via("sip/2.0/tcp phone.lab.test;branch=z9hG4bK1").transport, "TCP");
    assert_eq!(via("SIP/2.0/TLS phone.lab.test;branch=z9hG4bK1").transport, "TLS");
    assert_eq!(via("SIP/2.0/WSS phone.lab.test;branch=z9hG4bK1").transport, "WSS");
    assert_eq!(via("SIP/2.0/SCTP phone.lab.test").transport, "SCTP");
}

#[test]
fn name_host_without_port() {
    let v = via("SIP/2.0/TCP phone.lab.test;branch=z9hG4bKx");
    assert_eq!(v.host, Host::Domain("phone.lab.test".into()));
    assert_eq!(v.port, None);
}

#[test]
fn ipv6_host_with_and_without_port() {
    let v = via("SIP/2.0/UDP [2001:db8::10]:5070;branch=z9hG4bKv6");
    assert_eq!(v.host, Host::V6("2001:db8::10".parse().unwrap()));
    assert_eq!(v.port, Some(5070));
    assert_eq!(v.branch(), Some("z9hG4bKv6"));
    let v = via("SIP/2.0/UDP [2001:db8::10];branch=z9hG4bKv6");
    assert_eq!(v.port, None);
    assert_eq!(v.host.ip(), Some("2001:db8::10".parse().unwrap()));
}

#[test]
fn received_ipv6_followed_by_branch() {
    let v = via("SIP/2.0/UDP [2001:db8::10]:5060;received=[2001:db8::1];branch=z9hG4bKafter");
    assert_eq!(v.received(), Some("[2001:db8::1]"));
    assert_eq!(v.branch(), Some("z9hG4bKafter"));
    let v = via("SIP/2.0/UDP 192.0.2.10;received=2001:db8::1;branch=z9hG4bKunbracketed");
    assert_eq!(v.received(), Some("2001:db8::1"));
    assert_eq!(v.branch(), Some("z9hG4bKunbracketed"));
}

#[test]
fn received_ipv4() {
    let v = via("SIP/2.0/UDP phone.lab.test;branch=z9hG4bK1;received=192.0.2.99");
    assert_eq!(v.received(), Some("192.0.2.99"));
}

#[test]
fn rport_bare_and_with_a_value() {
    assert_eq!(via("SIP/2.0/UDP 192.0.2.10;rport;branch=z9hG4bK1").rport(), Some(None));
    assert_eq!(via("SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1;rport=5062;received=192.0.2.99").rport(), Some(Some(5062)));
    assert_eq!(via("SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1").rport(), None);
}

#[test]
fn whitespace_before_and_around_semicolons() {
    let v = via("SIP/2.0/UDP 192.0.2.10:5060 ;branch=z9hG4bKspaced ; rport ;received = 192.0.2.99");
    assert_eq!(v.port, Some(5060));
    assert_eq!(v.branch(), Some("z9hG4bKspaced"));
    assert_eq!(v.rport(), Some(None));
    assert_eq!(v.received(), Some("192.0.2.99"));
}

#[test]
fn spaces_around_the_slashes_of_the_sent_protocol() {
    let v = via("SIP / 2.0 / UDP 192.0.2.10:5060;branch=z9hG4bKslash");
    assert_eq!(v.transport, "UDP");
    assert_eq!(v.port, Some(5060));
    assert_eq!(v.branch(), Some("z9hG4bKslash"));
    let v = via("SIP\t/\t2.0\t/\tTCP\t192.0.2.10");
    assert_eq!(v.transport, "TCP");
}

#[test]
fn spaces_around_the_port_colon() {
    let v = via("SIP/2.0/UDP 192.0.2.10 : 5060;branch=z9hG4bK1");
    assert_eq!(v.port, Some(5060));
    let v = via("SIP/2.0/UDP [2001:db8::10] : 5060;branch=z9hG4bK1");
    assert_eq!(v.port, Some(5060));
}

#[test]
fn bad_vias_are_errors() {
    for value in [
        "",
        "SIP/2.0/UDP",
        "SIP/2.0 192.0.2.10",
        "SIP/3.0/UDP 192.0.2.10",
        "XIP/2.0/UDP 192.0.2.10",
        "SIP/2.0/U(DP 192.0.2.10",
        "SIP/2.0/UDP 192.0.2.10:port",
        "SIP/2.0/UDP 192.0.2.10:70000",
        "SIP/2.0/UDP [2001:db8::10",
        "SIP/2.0/UDP 2001:db8::10",
        "SIP/2.0/UDP 192.0.2.10;branch=",
        "SIP/2.0/UDP 192.0.2.10;;branch=z9hG4bK1",
        "SIP/2.0/UDP 192.0.2.10 junk;branch=z9hG4bK1",
    ] {
        assert!(Via::parse(value).is_err(), "{value:?} should not parse");
    }
}

#[test]
fn via_prints_and_reparses() {
    for value in [
        "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1;rport",
        "SIP/2.0/TLS [2001:db8::10]:5061;branch=z9hG4bK2;received=[2001:db8::1];rport=5061",
        "SIP/2.0/TCP phone.lab.test;branch=z9hG4bK3",
    ] {
        let v = via(value);
        assert_eq!(v.to_string(), value);
        assert_eq!(via(&v.to_string()), v);
    }
    let built = Via::new("tcp", Host::Domain("phone.lab.test".into()), None, "z9hG4bKnew");
    assert_eq!(built.to_string(), "SIP/2.0/TCP phone.lab.test;branch=z9hG4bKnew");
}

#[test]
fn every_via_value_of_a_message_is_kept() {
    let m = support::parse(
        "SIP/2.0 200 OK\n\
         Via: SIP/2.0/UDP [2001:db8::1]:5060;received=[2001:db8::1];branch=z9hG4bKa, SIP/2.0/UDP 192.0.2.2 ;branch=z9hG4bKb\n\
         Via: SIP/2.0/TCP 192.0.2.3;branch=z9hG4bKc\n\
         Content-Length: 0\n\n",
    );
    let branches: Vec<String> = m.vias().unwrap().iter().map(|v| v.branch().unwrap().to_owned()).collect();
    assert_eq!(branches, ["z9hG4bKa", "z9hG4bKb", "z9hG4bKc"]);
}
