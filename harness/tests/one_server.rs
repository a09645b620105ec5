//! A phone with one server (the lab domain, or one proxy or registrar): it registers and subscribes at that one place, and the elements pass on what the other serves.

mod common;

use std::net::SocketAddr;

use common::{ANSWER_DEADLINE, PhoneFlow, authorize, lab};
use harness::trace::Direction;
use harness::{Element, Transport};
use hickory_resolver::Resolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use sip::{HeaderName, Method};

/// A REGISTER at proxy-a reaches registrar-a through it (with proxy-a's Path, RFC 3327 §5.1,
/// since the phone supports path), and the answers come back: challenge, then 200.
#[tokio::test]
async fn a_register_at_a_proxy_goes_on_to_its_registrar_with_its_path() {
    for transport in [Transport::Udp, Transport::Tcp] {
        let lab = lab().await;
        let mut flow = PhoneFlow::open(&lab, Element::ProxyA, transport).await.expect("flow");
        let mut register = flow.request(&lab, Method::Register, Element::ProxyA);
        register.push_header(HeaderName::Expires, 60);
        register.push_header(HeaderName::Supported, "path");
        let challenge = flow.exchange(&register).await;
        assert_eq!(challenge.status(), Some(401), "{transport}: the registrar's challenge, relayed: {challenge:?}");
        assert_eq!(challenge.vias().unwrap().len(), 1, "{transport}: proxy-a's Via is off again");
        let challenge = challenge.challenges().unwrap().remove(0);
        let mut register = flow.request(&lab, Method::Register, Element::ProxyA);
        register.push_header(HeaderName::Expires, 60);
        register.push_header(HeaderName::Supported, "path");
        authorize(&lab, &mut register, &challenge);
        let accepted = flow.exchange(&register).await;
        assert_eq!(accepted.status(), Some(200), "{transport}: {accepted:?}");
        let at_registrar = lab
            .trace()
            .snapshot()
            .into_iter()
            .filter(|e| e.element == Element::RegistrarA && e.direction == Direction::Received)
            .filter_map(|e| e.sip().cloned())
            .find(|m| m.method() == Some(&Method::Register))
            .expect("the REGISTER reached registrar-a");
        let path = at_registrar.header(&HeaderName::Path).expect("proxy-a's Path");
        assert!(path.contains(&lab.topology.fqdn(Element::ProxyA)) && path.contains(";lr"), "{transport}: {path}");
    }
}

/// A SUBSCRIBE for MWI at registrar-a is served by proxy-a: the 200 comes back through
/// registrar-a, and the NOTIFY reaches the phone's Contact.
#[tokio::test]
async fn a_subscribe_at_a_registrar_goes_on_to_its_proxy() {
    let lab = lab().await;
    let mut flow = PhoneFlow::open(&lab, Element::RegistrarA, Transport::Udp).await.expect("flow");
    // The Contact: a socket that takes datagrams from any element (the flow's is connected).
    let contact = tokio::net::UdpSocket::bind(SocketAddr::new(lab.topology.phone_ip(), 0)).await.expect("bind");
    let mut subscribe = flow.request(&lab, Method::Subscribe, Element::RegistrarA);
    subscribe.push_header(HeaderName::Event, "message-summary");
    subscribe.push_header(HeaderName::Expires, 60);
    subscribe.set_header(HeaderName::Contact, format!("<sip:1001@{}>", contact.local_addr().unwrap()));
    let answer = flow.exchange(&subscribe).await;
    assert_eq!(answer.status(), Some(200), "{answer:?}\n{}", lab.full_ladder());
    let mut buf = vec![0u8; 65_536];
    let (n, from) = tokio::time::timeout(ANSWER_DEADLINE, contact.recv_from(&mut buf))
        .await
        .expect("a NOTIFY in time")
        .expect("recv");
    let notify = sip::Message::parse(&buf[..n]).expect("a SIP message");
    assert_eq!(notify.method(), Some(&Method::Notify), "{notify:?}");
    assert_eq!(notify.header(&HeaderName::Event), Some("message-summary"));
    assert_eq!(from, SocketAddr::new(lab.topology.ip(Element::ProxyA), 5060), "proxy-a notifies");
    let served_by_proxy = lab.trace().snapshot().into_iter().any(|e| {
        e.element == Element::ProxyA
            && e.direction == Direction::Received
            && e.sip().is_some_and(|m| m.method() == Some(&Method::Subscribe))
            && e.remote == SocketAddr::new(lab.topology.ip(Element::RegistrarA), 5060)
    });
    assert!(served_by_proxy, "proxy-a served it, from registrar-a");
}

/// The lab domain is a SIP service of its own (RFC 3263): NAPTR for every transport, SRV naming
/// proxy-a at priority 10 and proxy-b at 20, so a phone configured with the domain alone finds a
/// server and its backup.
#[tokio::test]
async fn the_lab_domain_names_proxy_a_then_proxy_b() {
    let lab = lab().await;
    let mut server = NameServerConfig::udp(lab.topology.dns_addr().ip());
    server.connections.iter_mut().for_each(|c| {
        c.port = lab.topology.dns_addr().port();
        c.bind_addr = Some(SocketAddr::new(lab.topology.phone_ip(), 0));
    });
    let config = ResolverConfig::from_parts(None, vec![], vec![server]);
    let mut builder = Resolver::builder_with_config(config, TokioRuntimeProvider::default());
    *builder.options_mut() = ResolverOpts::default();
    let resolver = builder.build().expect("resolver");
    let zone = &lab.topology.zone;
    let naptr = resolver.lookup(format!("{zone}."), RecordType::NAPTR).await.expect("NAPTR at the apex");
    let services: Vec<String> = naptr
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::NAPTR(n) => Some(String::from_utf8_lossy(&n.services).to_string()),
            _ => None,
        })
        .collect();
    for service in ["SIP+D2U", "SIP+D2T", "SIPS+D2T"] {
        assert!(services.iter().any(|s| s == service), "{service} in {services:?}");
    }
    for prefix in ["_sip._udp", "_sip._tcp", "_sips._tcp"] {
        let srv = resolver.srv_lookup(format!("{prefix}.{zone}.")).await.expect("SRV");
        let mut targets: Vec<(u16, String)> = srv
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(s) => Some((s.priority, s.target.to_ascii())),
                _ => None,
            })
            .collect();
        targets.sort();
        let expected = vec![
            (10, format!("{}.", lab.topology.fqdn(Element::ProxyA))),
            (20, format!("{}.", lab.topology.fqdn(Element::ProxyB))),
        ];
        assert_eq!(targets, expected, "{prefix}");
    }
}

/// Registrars take any of the lab's hosts or addresses as the AOR's host.
#[tokio::test]
async fn the_aor_may_name_any_host_or_address_of_the_lab() {
    let lab = lab().await;
    for host in [lab.topology.zone.clone(), lab.topology.ip(Element::ProxyB).to_string()] {
        let mut flow = PhoneFlow::open(&lab, Element::RegistrarA, Transport::Udp).await.expect("flow");
        let mut register = flow.request(&lab, Method::Register, Element::RegistrarA);
        register.set_header(HeaderName::To, format!("<sip:1001@{host}>"));
        register.set_header(HeaderName::From, format!("<sip:1001@{host}>;tag=x"));
        register.push_header(HeaderName::Expires, 60);
        let challenge = flow.exchange(&register).await;
        assert_eq!(challenge.status(), Some(401), "{host}: challenged, not refused: {challenge:?}");
    }
}
