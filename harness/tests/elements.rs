//! Drives the mock elements and the DNS with a scripted client and asserts what a phone would observe, fault by fault.

mod common;

use std::net::SocketAddr;

use assert_matches::assert_matches;
use common::{ANSWER_DEADLINE, PhoneFlow, Read, SILENCE_WINDOW, authorize, authorize_with_count, lab, lab_with};
use harness::trace::{DnsRecord, Payload};
use harness::{Configuration, Element, Fault, Lab, LabSpec, Transport};
use sip::{Credentials, HeaderName, Message, Method};
use tokio::net::UdpSocket;

async fn udp(lab: &Lab, element: Element) -> PhoneFlow {
    PhoneFlow::open(lab, element, Transport::Udp).await.expect("a UDP flow")
}

#[tokio::test]
async fn registrar_challenges_then_binds() {
    let lab = lab().await;
    let mut flow = udp(&lab, Element::RegistrarA).await;
    let mut register = flow.request(&lab, Method::Register, Element::RegistrarA);
    register.push_header(HeaderName::Expires, 60);
    let challenge = flow.exchange(&register).await;
    assert_eq!(challenge.status(), Some(401));
    let challenges = challenge.challenges().unwrap();
    assert_eq!(challenges[0].realm(), Some("lab.test"));

    let mut register = flow.request(&lab, Method::Register, Element::RegistrarA);
    register.push_header(HeaderName::Expires, 60);
    authorize(&lab, &mut register, &challenges[0]);
    let ok = flow.exchange(&register).await;
    assert_eq!(ok.status(), Some(200));
    let contacts = ok.contacts().unwrap();
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].expires(), Some(60));

    // A wrong password is challenged again, not accepted.
    let mut register = flow.request(&lab, Method::Register, Element::RegistrarA);
    let line = &lab.provisioning.line;
    let wrong = Credentials::answer(&challenges[0], &line.auth_name, "wrong", "REGISTER", "sip:x", "c0ffee", 2);
    register.set_header(HeaderName::Authorization, wrong);
    assert_eq!(flow.exchange(&register).await.status(), Some(401));
}

#[tokio::test]
async fn registrar_answers_423_below_min_expires_and_removes_on_expires_zero() {
    let lab = lab_with(LabSpec { min_expires: 30, ..LabSpec::new(Configuration::NoOutbound, Transport::Udp) }).await;
    let mut flow = udp(&lab, Element::RegistrarB).await;
    let register = flow.request(&lab, Method::Register, Element::RegistrarB);
    let challenge = flow.exchange(&register).await.challenges().unwrap().remove(0);
    // Each REGISTER is a new transaction (a new branch) and uses the nonce with a higher count.
    let register_for = |flow: &mut PhoneFlow, expires: u32, nc: u32| {
        let mut register = flow.request(&lab, Method::Register, Element::RegistrarB);
        register.set_header(HeaderName::Expires, expires);
        authorize_with_count(&lab, &mut register, &challenge, nc);
        register
    };
    let request = register_for(&mut flow, 10, 1);
    let too_brief = flow.exchange(&request).await;
    assert_eq!(too_brief.status(), Some(423));
    assert_eq!(too_brief.min_expires().unwrap(), Some(30));

    let request = register_for(&mut flow, 45, 2);
    let ok = flow.exchange(&request).await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.contacts().unwrap()[0].expires(), Some(45));

    let request = register_for(&mut flow, 0, 3);
    let ok = flow.exchange(&request).await;
    assert_eq!(ok.status(), Some(200));
    assert!(ok.contacts().unwrap().is_empty(), "Expires: 0 leaves no binding");
}

#[tokio::test]
async fn every_element_answers_options() {
    let lab = lab().await;
    for element in Element::SIP {
        let mut flow = udp(&lab, element).await;
        let options = flow.request(&lab, Method::Options, element);
        let answer = flow.exchange(&options).await;
        assert_eq!(answer.status(), Some(200), "{element} answers OPTIONS");
    }
}

#[tokio::test]
async fn silent_swallows_and_restore_answers_again() {
    let mut lab = lab().await;
    let mut flow = udp(&lab, Element::RegistrarA).await;
    lab.fail(Element::RegistrarA, Fault::Silent);
    let options = flow.request(&lab, Method::Options, Element::RegistrarA);
    flow.send(&options).await.unwrap();
    assert!(matches!(flow.read(SILENCE_WINDOW).await, Read::Nothing), "a silent element answers nothing");
    let dropped = lab.trace().snapshot().into_iter().any(|e| e.fate == harness::trace::Fate::Dropped("silent".into()));
    assert!(dropped, "the trace records the swallowed request");

    lab.restore(Element::RegistrarA);
    let options = flow.request(&lab, Method::Options, Element::RegistrarA);
    assert_eq!(flow.exchange(&options).await.status(), Some(200));
}

#[tokio::test]
async fn refuse_gives_icmp_port_unreachable() {
    refuse_closes_the_port_and_restore_opens_it(lab().await).await;
}

/// `serve` reads each UDP port with a task per core (`LabSpec::udp_readers`): a refused port is
/// closed for all of them (none keeps the socket open), and after the restore all read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_closes_a_port_read_by_several_tasks() {
    let spec = LabSpec { udp_readers: 3, ..LabSpec::new(Configuration::NoOutbound, Transport::Udp) };
    let lab = lab_with(spec).await;
    let mut flow = udp(&lab, Element::ProxyA).await;
    for _ in 0..20 {
        let options = flow.request(&lab, Method::Options, Element::ProxyA);
        assert_eq!(flow.exchange(&options).await.status(), Some(200), "every reader answers");
    }
    refuse_closes_the_port_and_restore_opens_it(lab).await;
}

async fn refuse_closes_the_port_and_restore_opens_it(mut lab: Lab) {
    let mut flow = udp(&lab, Element::ProxyA).await;
    lab.fail(Element::ProxyA, Fault::Refuse);
    // The socket loop closes the port when it sees the fault; wait for the kernel to say so.
    let deadline = tokio::time::Instant::now() + ANSWER_DEADLINE;
    let refused = loop {
        let options = flow.request(&lab, Method::Options, Element::ProxyA);
        let _ = flow.send(&options).await;
        match flow.read(std::time::Duration::from_millis(100)).await {
            Read::Closed(kind) => break kind,
            other => assert!(tokio::time::Instant::now() < deadline, "neither closed nor ICMP error: {other:?}"),
        }
    };
    assert_eq!(refused, std::io::ErrorKind::ConnectionRefused);

    lab.restore(Element::ProxyA);
    let deadline = tokio::time::Instant::now() + ANSWER_DEADLINE;
    loop {
        let options = flow.request(&lab, Method::Options, Element::ProxyA);
        let _ = flow.send(&options).await;
        if let Read::Message(m) = flow.read(std::time::Duration::from_millis(100)).await {
            assert_eq!(m.status(), Some(200));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "port not reopened after restore");
    }
}

#[tokio::test]
async fn reject_answers_every_request_with_its_code() {
    let mut lab = lab().await;
    let mut flow = udp(&lab, Element::RegistrarA).await;
    lab.fail(Element::RegistrarA, Fault::Reject { code: 503, retry_after: Some(30) });
    let register = flow.request(&lab, Method::Register, Element::RegistrarA);
    let answer = flow.exchange(&register).await;
    assert_eq!(answer.status(), Some(503));
    assert_eq!(answer.retry_after().unwrap().map(|r| r.seconds), Some(30));
    assert!(String::from_utf8_lossy(&answer.to_bytes()).starts_with("SIP/2.0 503 Service Unavailable\r\n"));

    lab.fail(Element::RegistrarA, Fault::reject(408));
    let options = flow.request(&lab, Method::Options, Element::RegistrarA);
    assert_eq!(flow.exchange(&options).await.status(), Some(408));
}

#[tokio::test]
async fn proxy_accepts_subscribe_and_notifies_with_a_body() {
    let lab = lab().await;
    let listener = UdpSocket::bind(SocketAddr::new(lab.topology.phone_ip(), 5060)).await.unwrap();
    let mut flow = udp(&lab, Element::ProxyA).await;
    let mut subscribe = flow.request(&lab, Method::Subscribe, Element::ProxyA);
    subscribe.push_header(HeaderName::Event, "dialog");
    subscribe.push_header(HeaderName::Expires, 120);
    let ok = flow.exchange(&subscribe).await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.expires().unwrap(), Some(120));
    let to_tag = ok.to().unwrap().tag().map(str::to_owned).expect("200 carries a To tag");

    let mut buf = vec![0u8; 65_536];
    let (n, _) =
        tokio::time::timeout(ANSWER_DEADLINE, listener.recv_from(&mut buf)).await.expect("NOTIFY in time").unwrap();
    let notify = Message::parse(&buf[..n]).unwrap();
    assert_eq!(notify.method(), Some(&Method::Notify));
    assert_eq!(notify.header(&HeaderName::Event), Some("dialog"));
    assert_eq!(notify.subscription_state().unwrap().unwrap().state, "active");
    assert_eq!(notify.from().unwrap().tag(), Some(to_tag.as_str()));
    assert!(String::from_utf8_lossy(&notify.body).contains("<dialog-info"));

    // A refresh of a dialog the proxy never saw gets 481.
    let mut stranger = flow.request(&lab, Method::Subscribe, Element::ProxyA);
    stranger.set_header(HeaderName::To, format!("<sip:1001@{}>;tag=unknown", lab.topology.fqdn(Element::ProxyA)));
    stranger.set_header(HeaderName::CallId, "unknown-dialog");
    stranger.push_header(HeaderName::Event, "dialog");
    assert_eq!(flow.exchange(&stranger).await.status(), Some(481));
}

#[tokio::test]
async fn malformed_datagrams_are_recorded_not_fatal() {
    let lab = lab().await;
    let mut flow = udp(&lab, Element::RegistrarA).await;
    flow.send_raw(b"REGISTER nonsense\r\n\r\n").await.unwrap();
    flow.send_raw(b"\x00\x01garbage").await.unwrap();
    let options = flow.request(&lab, Method::Options, Element::RegistrarA);
    assert_eq!(flow.exchange(&options).await.status(), Some(200), "the element still serves");
    let malformed = lab.trace().snapshot().into_iter().filter(|e| matches!(e.payload, Payload::Malformed(_))).count();
    assert_eq!(malformed, 2);
}

async fn dns_query(
    lab: &Lab,
    name: &str,
    record_type: hickory_resolver::proto::rr::RecordType,
) -> hickory_resolver::proto::op::Message {
    use hickory_resolver::proto::op::{Message as DnsMessage, Query};
    use hickory_resolver::proto::rr::Name;
    let socket = UdpSocket::bind(SocketAddr::new(lab.topology.phone_ip(), 0)).await.unwrap();
    let mut query = DnsMessage::query();
    query.add_query(Query::query(Name::from_ascii(name).unwrap(), record_type));
    query.metadata.id = 4242;
    socket.send_to(&query.to_vec().unwrap(), lab.topology.dns_addr()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(ANSWER_DEADLINE, socket.recv(&mut buf)).await.expect("DNS answer in time").unwrap();
    DnsMessage::from_vec(&buf[..n]).unwrap()
}

#[tokio::test]
async fn dns_answers_its_zone_refuses_others_and_logs_queries() {
    use hickory_resolver::proto::op::ResponseCode;
    use hickory_resolver::proto::rr::{RData, RecordType};
    let lab = lab().await;
    let answer = dns_query(&lab, "registrar-a.lab.test.", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert_matches!(&answer.answers[0].data, RData::A(a) if std::net::IpAddr::V4(a.0) == lab.topology.ip(Element::RegistrarA));

    let srv = dns_query(&lab, "_sip._udp.registrar-b.lab.test.", RecordType::SRV).await;
    assert_matches!(&srv.answers[0].data, RData::SRV(s) if s.port == 5060);

    let outside = dns_query(&lab, "example.com.", RecordType::A).await;
    assert_eq!(outside.metadata.response_code, ResponseCode::Refused);

    let queries: Vec<String> = lab
        .trace()
        .snapshot()
        .into_iter()
        .filter_map(|e| match e.payload {
            Payload::Dns(DnsRecord::Query { name, record_type, .. }) => Some(format!("{record_type} {name}")),
            _ => None,
        })
        .collect();
    assert_eq!(queries, ["A registrar-a.lab.test", "SRV _sip._udp.registrar-b.lab.test", "A example.com"]);
}

#[tokio::test]
async fn concurrent_labs_claim_distinct_blocks() {
    let (a, b) = tokio::join!(lab(), lab());
    assert_ne!(a.topology.phone_ip(), b.topology.phone_ip());
    for element in Element::ALL {
        let ip = a.topology.ip(element);
        assert!(!ip.to_string().starts_with("127.0.0."), "never the host's own 127.0.0.x");
    }
}

#[tokio::test]
async fn proxy_answers_invite_with_ringing_and_sdp_and_bye_with_ok() {
    let lab = lab().await;
    let mut flow = udp(&lab, Element::ProxyB).await;
    let mut invite = flow.request(&lab, Method::Invite, Element::ProxyB);
    invite.set_body(
        "application/sdp",
        "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
    );
    flow.send(&invite).await.unwrap();
    let ringing = flow.read(ANSWER_DEADLINE).await.message();
    assert_eq!(ringing.status(), Some(180));
    let ok = flow.read(ANSWER_DEADLINE).await.message();
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.header(&HeaderName::ContentType), Some("application/sdp"));
    assert!(String::from_utf8_lossy(&ok.body).contains("m=audio"));
    let mut ack = flow.request(&lab, Method::Ack, Element::ProxyB);
    ack.set_header(HeaderName::To, ok.header(&HeaderName::To).unwrap());
    flow.send(&ack).await.unwrap();
    let mut bye = flow.request(&lab, Method::Bye, Element::ProxyB);
    bye.set_header(HeaderName::To, ok.header(&HeaderName::To).unwrap());
    assert_eq!(flow.exchange(&bye).await.status(), Some(200), "ACK got no answer, BYE got 200");
}

#[tokio::test]
async fn registrar_removes_every_binding_with_star() {
    let lab = lab().await;
    let mut flow = udp(&lab, Element::RegistrarA).await;
    assert_eq!(flow.register(&lab, Element::RegistrarA, 60).await.status(), Some(200));
    let register = flow.request(&lab, Method::Register, Element::RegistrarA);
    let challenge = flow.exchange(&register).await.challenges().unwrap().remove(0);
    // Each REGISTER is a new transaction (a new branch) and uses the nonce with a higher count.
    let star = |flow: &mut PhoneFlow, expires: u32, nc: u32| {
        let mut register = flow.request(&lab, Method::Register, Element::RegistrarA);
        register.set_header(HeaderName::Contact, "*");
        register.set_header(HeaderName::Expires, expires);
        authorize_with_count(&lab, &mut register, &challenge, nc);
        register
    };
    let request = star(&mut flow, 0, 1);
    let ok = flow.exchange(&request).await;
    assert_eq!(ok.status(), Some(200));
    assert!(ok.contacts().unwrap().is_empty(), "Contact: * with Expires: 0 removes every binding (RFC 3261 §10.2.2)");

    // `*` with a non-zero expiry is a bad request (RFC 3261 §10.3 step 6).
    let register = star(&mut flow, 60, 2);
    assert_eq!(flow.exchange(&register).await.status(), Some(400));
}
