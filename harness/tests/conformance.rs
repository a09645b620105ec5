//! The lab's servers as a real phone meets them: each test sends what a phone sends and checks the RFC rule a real server keeps.

mod common;

use std::time::Duration;

use common::{ANSWER_DEADLINE, PhoneFlow, authorize_with_count, lab};
use harness::{Element, Lab, Transport};
use sip::{Challenge, HeaderName, Message, Method};

async fn udp(lab: &Lab, element: Element) -> PhoneFlow {
    PhoneFlow::open(lab, element, Transport::Udp).await.expect("a UDP flow")
}

/// A REGISTER of `contact` for `expires` seconds, authorized with `challenge` and `nc`.
fn register(lab: &Lab, flow: &mut PhoneFlow, contact: &str, expires: u32, challenge: &Challenge, nc: u32) -> Message {
    let mut register = flow.request(lab, Method::Register, Element::RegistrarA);
    register.set_header(HeaderName::Contact, contact);
    register.push_header(HeaderName::Expires, expires);
    authorize_with_count(lab, &mut register, challenge, nc);
    register
}

/// Sends a new request of `method` to `target` and returns the first answer.
async fn ask(lab: &Lab, flow: &mut PhoneFlow, method: Method, target: Element) -> Message {
    let request = flow.request(lab, method, target);
    flow.exchange(&request).await
}

/// The registrar's first challenge on this flow.
async fn challenge(lab: &Lab, flow: &mut PhoneFlow) -> Challenge {
    let register = flow.request(lab, Method::Register, Element::RegistrarA);
    let answer = flow.exchange(&register).await;
    assert_eq!(answer.status(), Some(401), "{answer:?}");
    answer.challenges().unwrap().remove(0)
}

fn contact_at(lab: &Lab, user: &str) -> String {
    format!("<sip:{user}@{}:5060>", lab.topology.phone_ip())
}

/// RFC 3261 §10.3 step 8: every live binding is listed with its remaining time; a live one never
/// shows `expires=0`, which a phone reads as removed (the remaining time is rounded up).
#[tokio::test]
async fn a_live_binding_is_never_listed_with_expires_zero() {
    const PACE: Duration = Duration::from_millis(40);
    let lab = lab().await;
    let mut flow = udp(&lab, Element::RegistrarA).await;
    let challenge = challenge(&lab, &mut flow).await;
    let short = contact_at(&lab, "short");
    let mut nc = 1;
    let ok = {
        let r = register(&lab, &mut flow, &short, 1, &challenge, nc);
        flow.exchange(&r).await
    };
    assert_eq!(ok.status(), Some(200));

    // Another contact of the same AOR, registered again and again until the short one is gone.
    let deadline = tokio::time::Instant::now() + ANSWER_DEADLINE;
    let mut pace = tokio::time::interval(PACE);
    loop {
        pace.tick().await;
        nc += 1;
        let ok = {
            let r = register(&lab, &mut flow, &contact_at(&lab, "long"), 60, &challenge, nc);
            flow.exchange(&r).await
        };
        assert_eq!(ok.status(), Some(200), "{ok:?}");
        let contacts = ok.contacts().unwrap();
        let Some(listed) = contacts.iter().find(|c| c.address().is_some_and(|a| a.uri.to_string().contains("short")))
        else {
            break;
        };
        assert!(listed.expires() >= Some(1), "a live binding listed as {listed}");
        assert!(tokio::time::Instant::now() < deadline, "the 1 s binding outlived its expiry");
    }
}

/// RFC 3261 §8.2.6.2: a UAS adds a To tag to every final response to a request without one.
#[tokio::test]
async fn generated_final_responses_carry_a_to_tag() {
    let mut lab = lab().await;
    let mut proxy = udp(&lab, Element::ProxyA).await;
    let mut message = proxy.request(&lab, Method::Other("MESSAGE".into()), Element::ProxyA);
    let not_allowed = proxy.exchange(&message).await;
    assert_eq!(not_allowed.status(), Some(405));
    let tag = not_allowed.to().unwrap().tag().map(str::to_owned).expect("405 carries a To tag");
    // The same dialog gets the same tag from the same element.
    message.set_header(HeaderName::Via, format!("SIP/2.0/UDP {};branch=z9hG4bKagain;rport", proxy.local));
    message.set_header(HeaderName::CSeq, "9 MESSAGE");
    assert_eq!(proxy.exchange(&message).await.to().unwrap().tag(), Some(tag.as_str()));

    let mut subscribe = proxy.request(&lab, Method::Subscribe, Element::ProxyA);
    subscribe.push_header(HeaderName::Event, "presence");
    let bad_event = proxy.exchange(&subscribe).await;
    assert_eq!(bad_event.status(), Some(489));
    assert!(bad_event.to().unwrap().tag().is_some(), "489 carries a To tag");

    let mut registrar = udp(&lab, Element::RegistrarA).await;
    let challenge = ask(&lab, &mut registrar, Method::Register, Element::RegistrarA).await;
    assert_eq!(challenge.status(), Some(401));
    assert!(challenge.to().unwrap().tag().is_some(), "401 carries a To tag");

    let mut edge = udp(&lab, Element::OutboundA).await;
    let to_itself = edge.request(&lab, Method::Register, Element::OutboundA);
    let nowhere = edge.exchange(&to_itself).await;
    assert_eq!(nowhere.status(), Some(404));
    assert!(nowhere.to().unwrap().tag().is_some(), "the edge proxy's own 404 carries a To tag");

    lab.fail(Element::ProxyB, harness::Fault::reject(503));
    let mut rejecting = udp(&lab, Element::ProxyB).await;
    let rejected = ask(&lab, &mut rejecting, Method::Subscribe, Element::ProxyB).await;
    assert_eq!(rejected.status(), Some(503));
    assert!(rejected.to().unwrap().tag().is_some(), "503 carries a To tag");
}

/// RFC 3261 §18.2.1 and RFC 3581 §4: the server notes where the request really came from in the
/// top Via (`received`, and `rport` when the phone asked for it), and the response goes there.
#[tokio::test]
async fn via_gets_received_and_rport_and_the_response_goes_to_the_source() {
    let lab = lab().await;
    let mut flow = udp(&lab, Element::RegistrarA).await;
    let mut options = flow.request(&lab, Method::Options, Element::RegistrarA);
    options.set_header(HeaderName::Via, "SIP/2.0/UDP phone.invalid:5099;branch=z9hG4bKbehindnat;rport");
    let answer = flow.exchange(&options).await;
    let via = answer.top_via().unwrap();
    assert_eq!(via.received(), Some(lab.topology.phone_ip().to_string().as_str()), "{via}");
    assert_eq!(via.rport(), Some(Some(flow.local.port())), "{via}");
}

/// RFC 3261 §18.2.2: without `rport` a UDP response goes to the Via's sent-by port (at the
/// `received` address when the sent-by host is not the source), not to the packet's source port.
#[tokio::test]
async fn without_rport_the_response_goes_to_the_via_port() {
    let lab = lab().await;
    let listener = tokio::net::UdpSocket::bind(std::net::SocketAddr::new(lab.topology.phone_ip(), 0)).await.unwrap();
    let listening_port = listener.local_addr().unwrap().port();
    let mut flow = udp(&lab, Element::ProxyA).await;
    for sent_by in [lab.topology.phone_ip().to_string(), "phone.invalid".to_owned()] {
        let mut options = flow.request(&lab, Method::Options, Element::ProxyA);
        options.set_header(HeaderName::Via, format!("SIP/2.0/UDP {sent_by}:{listening_port};branch=z9hG4bK{sent_by}"));
        flow.send(&options).await.unwrap();
        let mut buf = vec![0u8; 65_536];
        let n = tokio::time::timeout(ANSWER_DEADLINE, listener.recv(&mut buf))
            .await
            .expect("the response reaches the Via's port")
            .unwrap();
        let answer = Message::parse(&buf[..n]).unwrap();
        let via = answer.top_via().unwrap();
        assert_eq!(via.rport(), None);
        let expected_received = (sent_by == "phone.invalid").then(|| lab.topology.phone_ip().to_string());
        assert_eq!(via.received(), expected_received.as_deref(), "{via}");
    }
}

/// The edge proxy over UDP still relays the registrar's answers back to the phone, with the
/// phone's Via as the edge proxy stamped it.
#[tokio::test]
async fn register_through_the_edge_over_udp_comes_back() {
    let lab = lab().await;
    let mut flow = udp(&lab, Element::OutboundA).await;
    let mut register = flow.request(&lab, Method::Register, Element::RegistrarA);
    register.push_header(HeaderName::Route, format!("<sip:{};lr>", lab.topology.fqdn(Element::OutboundA)));
    let challenge = flow.exchange(&register).await;
    assert_eq!(challenge.status(), Some(401));
    let vias = challenge.vias().unwrap();
    assert_eq!(vias.len(), 1, "the edge proxy removed its own Via");
    assert_eq!(vias[0].rport(), Some(Some(flow.local.port())));
}

fn allow(answer: &Message) -> Vec<String> {
    let mut methods: Vec<String> = answer
        .header_values(&HeaderName::Allow)
        .into_iter()
        .flat_map(|v| v.split(',').map(|m| m.trim().to_owned()).collect::<Vec<_>>())
        .collect();
    methods.sort();
    methods
}

fn sorted(methods: &[&str]) -> Vec<String> {
    let mut methods: Vec<String> = methods.iter().map(|m| (*m).to_owned()).collect();
    methods.sort();
    methods
}

/// RFC 3261 §11.2, §20.5: OPTIONS lists what the element serves; every method it lists is
/// served, every other is answered 405 with the same Allow.
#[tokio::test]
async fn options_advertises_what_each_element_serves() {
    let lab = lab().await;
    let expected = [
        // Each passes on what the other serves (a phone with one server uses it for everything).
        (Element::RegistrarA, sorted(&["REGISTER", "OPTIONS", "SUBSCRIBE", "INVITE", "ACK", "BYE", "CANCEL"])),
        (Element::ProxyA, sorted(&["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "SUBSCRIBE", "REGISTER"])),
    ];
    for (element, methods) in expected {
        let mut flow = udp(&lab, element).await;
        let answer = ask(&lab, &mut flow, Method::Options, element).await;
        assert_eq!(allow(&answer), methods, "{element}");
        let supported = answer.supported().join(",");
        // The registrar keeps Path; the proxy adds its own to a REGISTER it passes on.
        assert_eq!(supported, "path", "{element}: outbound only when the lab serves RFC 5626");
        for method in ["INVITE", "REGISTER", "SUBSCRIBE", "NOTIFY", "BYE", "MESSAGE"] {
            let mut flow = udp(&lab, element).await;
            let mut request = flow.request(&lab, Method::parse(method), element);
            if method == "SUBSCRIBE" {
                request.push_header(HeaderName::Event, "dialog");
            }
            let first = flow.exchange(&request).await;
            if methods.iter().any(|m| m == method) {
                assert_ne!(first.status(), Some(405), "{element} lists {method} and serves it");
            } else {
                assert_eq!(first.status(), Some(405), "{element} does not list {method}");
                assert_eq!(allow(&first), methods, "{element}: the 405 carries the same Allow");
            }
        }
    }
    let mut edge = udp(&lab, Element::OutboundA).await;
    let answer = ask(&lab, &mut edge, Method::Options, Element::OutboundA).await;
    let relayed = allow(&answer);
    for method in ["REGISTER", "SUBSCRIBE", "NOTIFY", "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"] {
        assert!(relayed.iter().any(|m| m == method), "the edge proxy relays {method}: {relayed:?}");
    }
}

/// The registrar lists `outbound` only when the lab serves RFC 5626.
#[tokio::test]
async fn registrar_supports_outbound_only_when_configured() {
    let spec = harness::LabSpec {
        outbound: Some(harness::elements::OutboundSupport { flow_timer: Some(25) }),
        ..harness::LabSpec::new(harness::Configuration::FullBackup, Transport::Udp)
    };
    let lab = common::lab_with(spec).await;
    let mut flow = udp(&lab, Element::RegistrarB).await;
    let answer = ask(&lab, &mut flow, Method::Options, Element::RegistrarB).await;
    assert!(answer.has_option_tag(&HeaderName::Supported, "outbound"), "{answer:?}");
    assert!(answer.has_option_tag(&HeaderName::Supported, "path"), "{answer:?}");
}

/// RFC 3261 §17.1.2: a NOTIFY over UDP is retransmitted (T1 doubling up to T2) until answered,
/// and given up at 64*T1.
#[tokio::test]
async fn notify_over_udp_is_retransmitted_until_answered_and_given_up_at_64_t1() {
    let t1 = Duration::from_millis(20);
    let spec = harness::LabSpec {
        proxy: harness::elements::ProxyConfig { t1, t2: t1 * 4, ..Default::default() },
        ..harness::LabSpec::new(harness::Configuration::NoOutbound, Transport::Udp)
    };
    let mut lab = common::lab_with(spec).await;
    let listener = tokio::net::UdpSocket::bind(std::net::SocketAddr::new(lab.topology.phone_ip(), 5060)).await.unwrap();
    let mut flow = udp(&lab, Element::ProxyA).await;
    let mut subscribe = flow.request(&lab, Method::Subscribe, Element::ProxyA);
    subscribe.push_header(HeaderName::Event, "dialog");
    assert_eq!(flow.exchange(&subscribe).await.status(), Some(200));

    // Unanswered: the same NOTIFY comes again and again, then no more after 64*T1.
    let started = tokio::time::Instant::now();
    let give_up = t1 * 64;
    let mut buf = vec![0u8; 65_536];
    let mut sends = Vec::new();
    while let Ok(Ok(n)) = tokio::time::timeout(give_up / 2, listener.recv(&mut buf)).await {
        let notify = Message::parse(&buf[..n]).unwrap();
        assert_eq!(notify.method(), Some(&Method::Notify));
        sends.push((started.elapsed(), notify.top_via().unwrap().branch().map(str::to_owned)));
        assert!(started.elapsed() < give_up * 2, "retransmitted past 64*T1: {sends:?}");
    }
    assert!(sends.len() >= 4, "{sends:?}");
    assert!(sends.iter().all(|(_, branch)| *branch == sends[0].1), "one transaction: {sends:?}");
    assert!(sends.last().unwrap().0 <= give_up + ANSWER_DEADLINE / 4, "{sends:?}");

    // Answered: no more retransmissions.
    lab.command(Element::ProxyA, harness::ElementCommand::NotifyAll).await;
    let n = tokio::time::timeout(ANSWER_DEADLINE, listener.recv(&mut buf)).await.unwrap().unwrap();
    let notify = Message::parse(&buf[..n]).unwrap();
    let ok = Message::response_to(&notify, 200, None);
    listener.send_to(&ok.to_bytes(), lab.topology.sip_addr(Element::ProxyA)).await.unwrap();
    // One retransmission may cross the 200; unanswered, 16*T1 would bring four.
    let mut after_the_200 = 0;
    while tokio::time::timeout(t1 * 16, listener.recv(&mut buf)).await.is_ok() {
        after_the_200 += 1;
        assert!(after_the_200 <= 1, "retransmitted after the 200");
    }
}

/// RFC 3261 §17.2: a retransmitted request is answered with the same response, not processed
/// again (an authorized REGISTER retransmitted got 500 before).
#[tokio::test]
async fn a_retransmitted_request_gets_the_same_response() {
    let lab = lab().await;
    let mut flow = udp(&lab, Element::RegistrarA).await;
    let first = flow.request(&lab, Method::Register, Element::RegistrarA);
    let challenge = flow.exchange(&first).await;
    let again = flow.exchange(&first).await;
    assert_eq!(again.to_bytes(), challenge.to_bytes(), "the same 401, the same nonce");

    let challenge = challenge.challenges().unwrap().remove(0);
    let register = register(&lab, &mut flow, &contact_at(&lab, "1001"), 60, &challenge, 1);
    let ok = flow.exchange(&register).await;
    assert_eq!(ok.status(), Some(200));
    let again = flow.exchange(&register).await;
    assert_eq!(again.to_bytes(), ok.to_bytes(), "the same 200");
}

/// The edge proxy is transaction-stateless (RFC 3261 §16.11): a retransmission passes on under
/// the branch its first copy got, so the registrar behind answers it from its server transaction.
#[tokio::test]
async fn a_retransmission_through_the_edge_gets_the_same_answer_from_behind_it() {
    let lab = lab().await;
    let mut flow = udp(&lab, Element::OutboundA).await;
    let mut register = flow.request(&lab, Method::Register, Element::RegistrarA);
    register.push_header(HeaderName::Route, format!("<sip:{};lr>", lab.topology.fqdn(Element::OutboundA)));
    let first = flow.exchange(&register).await;
    let again = flow.exchange(&register).await;
    assert_eq!(first.status(), Some(401));
    assert_eq!(again.to_bytes(), first.to_bytes(), "the same challenge, the same nonce");
    let branches: Vec<String> = lab
        .trace()
        .snapshot()
        .into_iter()
        .filter(|e| e.element == Element::RegistrarA && e.direction == harness::trace::Direction::Received)
        .filter_map(|e| e.sip().and_then(|m| m.top_via().ok()).and_then(|v| v.branch().map(str::to_owned)))
        .collect();
    assert_eq!(branches.len(), 2, "{branches:?}");
    assert_eq!(branches[0], branches[1], "one transaction behind the edge proxy");
}

/// RFC 7616 §3.4 (RFC 2617 §3.2.2): a nonce count must grow; a repeated or smaller one is a
/// replay and is challenged again, while reusing the nonce with a higher count keeps working.
#[tokio::test]
async fn a_replayed_nonce_count_is_challenged() {
    let lab = lab().await;
    let mut flow = udp(&lab, Element::RegistrarA).await;
    let challenge = challenge(&lab, &mut flow).await;
    let contact = contact_at(&lab, "1001");
    for (nc, status) in [(1, 200), (1, 401), (2, 200), (5, 200), (3, 401)] {
        let answer = {
            let r = register(&lab, &mut flow, &contact, 60, &challenge, nc);
            flow.exchange(&r).await
        };
        assert_eq!(answer.status(), Some(status), "nc={nc}: {answer:?}");
    }
}

/// RFC 3261 §10.3 step 8: the registrar's 200 carries a Date (RFC 1123 form).
#[tokio::test]
async fn the_registrars_200_carries_a_date() {
    let lab = lab().await;
    let mut flow = udp(&lab, Element::RegistrarA).await;
    let ok = flow.register(&lab, Element::RegistrarA, 60).await;
    let date = ok.header(&HeaderName::from("Date")).expect("a Date header").to_owned();
    let words: Vec<&str> = date.split(' ').collect();
    assert_eq!(words.len(), 6, "{date}");
    assert!(words[0].ends_with(',') && words[5] == "GMT", "{date}");
}

/// The outbound proxy is no open relay: a Request-URI naming an address outside the lab (here a
/// loopback address of no lab) is refused with 403, and nothing is sent there.
#[tokio::test]
async fn the_edge_proxy_relays_only_within_the_lab() {
    let lab = lab().await;
    let mut flow = udp(&lab, Element::OutboundA).await;
    let outside = std::net::IpAddr::from([127, 99, 99, 99]);
    let mut message = flow.request(&lab, Method::Other("MESSAGE".into()), Element::OutboundA);
    message.start =
        sip::StartLine::Request { method: Method::Other("MESSAGE".into()), uri: format!("sip:1002@{outside}:5060") };
    let refused = flow.exchange(&message).await;
    assert_eq!(refused.status(), Some(403), "{refused:?}");
    let sent_outside = lab.trace().snapshot().iter().any(|e| e.remote.ip() == outside);
    assert!(!sent_outside, "nothing went to {outside}");
}

/// A response too large for any UDP datagram is not sent (it could not be), and the trace marks
/// it dropped instead of showing it as sent: here a registrar's 200 to a UDP query of 600
/// bindings (made over TCP) would take over 64 KB.
#[tokio::test]
async fn a_response_too_large_for_a_datagram_is_marked_dropped() {
    use harness::trace::{Direction, Fate};
    let lab = lab().await;
    let mut tcp = PhoneFlow::open(&lab, Element::RegistrarA, Transport::Tcp).await.unwrap();
    let challenge = challenge(&lab, &mut tcp).await;
    for batch in 0..2u32 {
        let contacts: Vec<String> = (0..300)
            .map(|i| format!("<sip:{}-{batch}-{i}@{}:5060>", "u".repeat(150), lab.topology.phone_ip()))
            .collect();
        let register = register(&lab, &mut tcp, &contacts.join(", "), 600, &challenge, batch + 1);
        assert_eq!(tcp.exchange(&register).await.status(), Some(200));
    }
    let mut flow = udp(&lab, Element::RegistrarA).await;
    let mut query = flow.request(&lab, Method::Register, Element::RegistrarA);
    query.remove_header(&HeaderName::Contact);
    authorize_with_count(&lab, &mut query, &challenge, 3);
    flow.send(&query).await.unwrap();
    let answer = flow.read(common::SILENCE_WINDOW).await;
    assert!(!matches!(answer, common::Read::Message(_)), "no datagram can carry it: {answer:?}");
    let dropped = lab.trace().snapshot().into_iter().any(|e| {
        e.element == Element::RegistrarA
            && e.direction == Direction::Sent
            && matches!(&e.fate, Fate::Dropped(why) if why.contains("UDP datagram"))
    });
    assert!(dropped, "the trace marks the 200 dropped");
}
