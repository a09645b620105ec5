//! The elements over TCP and TLS, and every fault kind as a phone on a connection would observe it.

mod common;

use common::{ANSWER_DEADLINE, PhoneFlow, Read, SILENCE_WINDOW, lab};
use harness::{Element, Event, Fault, FaultTarget, Transport};
use sip::{HeaderName, Method};

const STREAMS: [Transport; 2] = [Transport::Tcp, Transport::Tls];

#[tokio::test]
async fn register_over_each_stream_answers_on_the_same_connection() {
    let lab = lab().await;
    let mut flows = Vec::new();
    for transport in STREAMS {
        let mut flow = PhoneFlow::open(&lab, Element::RegistrarA, transport).await.unwrap();
        let ok = flow.register(&lab, Element::RegistrarA, 60).await;
        assert_eq!(ok.status(), Some(200), "{transport}");
        flows.push(flow);
    }
    assert_eq!(lab.open_flows(Element::RegistrarA), 2, "two persistent flows");
}

#[tokio::test]
async fn crlf_ping_gets_a_pong_on_each_stream() {
    let lab = lab().await;
    for transport in STREAMS {
        let mut flow = PhoneFlow::open(&lab, Element::OutboundA, transport).await.unwrap();
        flow.send_raw(b"\r\n\r\n").await.unwrap();
        assert!(matches!(flow.read(ANSWER_DEADLINE).await, Read::Pong), "{transport}");
    }
}

#[tokio::test]
async fn silent_accepts_connections_and_answers_nothing() {
    let mut lab = lab().await;
    lab.fail(Element::RegistrarA, Fault::Silent);
    let mut tcp = PhoneFlow::open(&lab, Element::RegistrarA, Transport::Tcp).await.expect("accepted");
    let options = tcp.request(&lab, Method::Options, Element::RegistrarA);
    tcp.send(&options).await.unwrap();
    assert!(matches!(tcp.read(SILENCE_WINDOW).await, Read::Nothing));
    tcp.send_raw(b"\r\n\r\n").await.unwrap();
    assert!(matches!(tcp.read(SILENCE_WINDOW).await, Read::Nothing), "not even a pong");
    // TLS: the TCP connection is accepted, the handshake never answered.
    let tls = tokio::time::timeout(SILENCE_WINDOW, PhoneFlow::open(&lab, Element::RegistrarA, Transport::Tls)).await;
    assert!(tls.is_err(), "the TLS handshake must hang");
}

#[tokio::test]
async fn refuse_resets_flows_and_refuses_connections() {
    let mut lab = lab().await;
    let mut flow = PhoneFlow::open(&lab, Element::ProxyA, Transport::Tcp).await.unwrap();
    let options = flow.request(&lab, Method::Options, Element::ProxyA);
    assert_eq!(flow.exchange(&options).await.status(), Some(200));
    lab.fail(Element::ProxyA, Fault::Refuse);
    match flow.read(ANSWER_DEADLINE).await {
        Read::Closed(kind) => assert_eq!(kind, std::io::ErrorKind::ConnectionReset, "an RST, not a FIN"),
        other => panic!("expected a reset, got {other:?}"),
    }
    // The listener closes as the element notices the fault; connects are refused from then on.
    let deadline = tokio::time::Instant::now() + ANSWER_DEADLINE;
    loop {
        match PhoneFlow::open(&lab, Element::ProxyA, Transport::Tcp).await {
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
                break;
            }
            Ok(_) => assert!(tokio::time::Instant::now() < deadline, "still accepting after refuse"),
        }
    }
    lab.restore(Element::ProxyA);
    let deadline = tokio::time::Instant::now() + ANSWER_DEADLINE;
    let mut flow = loop {
        match PhoneFlow::open(&lab, Element::ProxyA, Transport::Tcp).await {
            Ok(flow) => break flow,
            Err(_) => assert!(tokio::time::Instant::now() < deadline, "not listening again after restore"),
        }
    };
    let options = flow.request(&lab, Method::Options, Element::ProxyA);
    assert_eq!(flow.exchange(&options).await.status(), Some(200));
}

#[tokio::test]
async fn stall_blackholes_existing_flows_and_serves_new_ones() {
    let mut lab = lab().await;
    let mut old_tcp = PhoneFlow::open(&lab, Element::OutboundA, Transport::Tcp).await.unwrap();
    let mut old_udp = PhoneFlow::open(&lab, Element::OutboundA, Transport::Udp).await.unwrap();
    let options = old_udp.request(&lab, Method::Options, Element::OutboundA);
    assert_eq!(old_udp.exchange(&options).await.status(), Some(200), "the UDP source is now known");
    lab.fail(Element::OutboundA, Fault::Stall);

    old_tcp.send_raw(b"\r\n\r\n").await.unwrap();
    assert!(matches!(old_tcp.read(SILENCE_WINDOW).await, Read::Nothing), "no pong on a stalled flow (RFC 5626 §4.4.1)");
    let options = old_udp.request(&lab, Method::Options, Element::OutboundA);
    old_udp.send(&options).await.unwrap();
    assert!(matches!(old_udp.read(SILENCE_WINDOW).await, Read::Nothing), "an old UDP source is dropped");

    let mut new_tcp = PhoneFlow::open(&lab, Element::OutboundA, Transport::Tcp).await.unwrap();
    new_tcp.send_raw(b"\r\n\r\n").await.unwrap();
    assert!(matches!(new_tcp.read(ANSWER_DEADLINE).await, Read::Pong), "a new flow is served");
    let mut new_udp = PhoneFlow::open(&lab, Element::OutboundA, Transport::Udp).await.unwrap();
    let options = new_udp.request(&lab, Method::Options, Element::OutboundA);
    assert_eq!(new_udp.exchange(&options).await.status(), Some(200), "a new UDP source is served");
}

#[tokio::test]
async fn reset_event_resets_every_flow_and_listening_goes_on() {
    let mut lab = lab().await;
    let mut tcp = PhoneFlow::open(&lab, Element::RegistrarB, Transport::Tcp).await.unwrap();
    let mut tls = PhoneFlow::open(&lab, Element::RegistrarB, Transport::Tls).await.unwrap();
    for flow in [&mut tcp, &mut tls] {
        let options = flow.request(&lab, Method::Options, Element::RegistrarB);
        assert_eq!(flow.exchange(&options).await.status(), Some(200));
    }
    lab.event(Element::RegistrarB, Event::Reset);
    for flow in [&mut tcp, &mut tls] {
        assert!(matches!(flow.read(ANSWER_DEADLINE).await, Read::Closed(_)), "{} flow reset", flow.transport);
    }
    let mut again = PhoneFlow::open(&lab, Element::RegistrarB, Transport::Tcp).await.unwrap();
    let options = again.request(&lab, Method::Options, Element::RegistrarB);
    assert_eq!(again.exchange(&options).await.status(), Some(200));
}

#[tokio::test]
async fn restart_forgets_bindings_and_subscriptions() {
    let mut lab = lab().await;
    let mut flow = PhoneFlow::open(&lab, Element::RegistrarA, Transport::Udp).await.unwrap();
    assert_eq!(flow.register(&lab, Element::RegistrarA, 60).await.status(), Some(200));

    let mut sub = PhoneFlow::open(&lab, Element::ProxyA, Transport::Udp).await.unwrap();
    let mut subscribe = sub.request(&lab, Method::Subscribe, Element::ProxyA);
    subscribe.push_header(HeaderName::Event, "message-summary");
    let ok = sub.exchange(&subscribe).await;
    assert_eq!(ok.status(), Some(200));
    let to_tag = ok.to().unwrap().tag().unwrap().to_owned();

    lab.event(Element::RegistrarA, Event::Restart);
    lab.event(Element::ProxyA, Event::Restart);

    // A registration from a second contact shows one binding: the first was forgotten.
    let mut other = PhoneFlow::open(&lab, Element::RegistrarA, Transport::Udp).await.unwrap();
    let mut register = other.request(&lab, Method::Register, Element::RegistrarA);
    register.set_header(HeaderName::Contact, format!("<sip:1001@{}:5070>", lab.topology.phone_ip()));
    let challenge = other.exchange(&register).await.challenges().unwrap().remove(0);
    let mut register = other.request(&lab, Method::Register, Element::RegistrarA);
    register.set_header(HeaderName::Contact, format!("<sip:1001@{}:5070>", lab.topology.phone_ip()));
    common::authorize(&lab, &mut register, &challenge);
    let ok = other.exchange(&register).await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.contacts().unwrap().len(), 1, "bindings from before the restart are gone");

    // RFC 6665 §4.2.1.2: a refresh of a subscription the proxy forgot gets 481.
    let mut refresh = sub.request(&lab, Method::Subscribe, Element::ProxyA);
    refresh.set_header(HeaderName::To, format!("<sip:1001@{}>;tag={to_tag}", lab.topology.fqdn(Element::ProxyA)));
    refresh.push_header(HeaderName::Event, "message-summary");
    assert_eq!(sub.exchange(&refresh).await.status(), Some(481));
}

#[tokio::test]
async fn a_fault_on_one_transport_leaves_the_others_serving() {
    let mut lab = lab().await;
    lab.fail(FaultTarget::parse("registrar-a/udp").unwrap(), Fault::Silent);
    let mut udp = PhoneFlow::open(&lab, Element::RegistrarA, Transport::Udp).await.unwrap();
    let options = udp.request(&lab, Method::Options, Element::RegistrarA);
    udp.send(&options).await.unwrap();
    assert!(matches!(udp.read(SILENCE_WINDOW).await, Read::Nothing));
    let mut tcp = PhoneFlow::open(&lab, Element::RegistrarA, Transport::Tcp).await.unwrap();
    assert_eq!(tcp.register(&lab, Element::RegistrarA, 30).await.status(), Some(200));
}

#[tokio::test]
async fn reject_on_tls_carries_retry_after() {
    let mut lab = lab().await;
    lab.fail(Element::RegistrarA, Fault::Reject { code: 503, retry_after: Some(5) });
    let mut tls = PhoneFlow::open(&lab, Element::RegistrarA, Transport::Tls).await.unwrap();
    let register = tls.request(&lab, Method::Register, Element::RegistrarA);
    let answer = tls.exchange(&register).await;
    assert_eq!(answer.status(), Some(503));
    assert_eq!(answer.retry_after().unwrap().unwrap().seconds, 5);
}

#[tokio::test]
async fn tls_certificate_names_the_element() {
    let lab = lab().await;
    // The connector verifies the chain against the lab CA and the name against the SANs;
    // a connection under another element's name must fail.
    let ok = PhoneFlow::open(&lab, Element::ProxyB, Transport::Tls).await;
    assert!(ok.is_ok());
    let tcp =
        tokio::net::TcpStream::connect(lab.topology.sip_addr(Element::ProxyB).to_string().replace(":5060", ":5061"))
            .await;
    let tcp = tcp.unwrap();
    let connector = tokio_rustls::TlsConnector::from(lab.ca().client_config().unwrap());
    let wrong = rustls::pki_types::ServerName::try_from(lab.topology.fqdn(Element::ProxyA)).unwrap();
    assert!(connector.connect(wrong, tcp).await.is_err(), "proxy-b's certificate must not pass as proxy-a");
}

/// A connection that never brings a complete message is closed after the first-message deadline
/// (it would otherwise be held for ever); one that did stays open however long it is idle.
#[tokio::test]
async fn a_silent_connection_is_closed_but_an_idle_flow_is_kept() {
    use harness::elements::FIRST_MESSAGE_DEADLINE;
    let lab = lab().await;
    let mut quiet = PhoneFlow::open(&lab, Element::RegistrarA, Transport::Tcp).await.unwrap();
    // Half a request: never complete.
    quiet.send_raw(b"REGISTER sip:registrar-a SIP/2.0\r\n").await.unwrap();
    let mut kept = PhoneFlow::open(&lab, Element::RegistrarA, Transport::Tcp).await.unwrap();
    assert_eq!(kept.register(&lab, Element::RegistrarA, 60).await.status(), Some(200));
    let closed = quiet.read(FIRST_MESSAGE_DEADLINE + ANSWER_DEADLINE).await;
    assert!(matches!(closed, Read::Closed(_)), "the incomplete connection is closed: {closed:?}");
    // The flow that brought a message is still served after the same idle time.
    let mut options = kept.request(&lab, Method::Options, Element::RegistrarA);
    options.push_header(HeaderName::Accept, "application/sdp");
    assert_eq!(kept.exchange(&options).await.status(), Some(200), "the idle flow is kept");
    assert_eq!(lab.open_flows(Element::RegistrarA), 1);
}

/// Connection tasks belong to their lab: when the lab goes, they end, and the phone's connection
/// is closed (no task lives on detached).
#[tokio::test]
async fn connections_end_with_their_lab() {
    let lab = lab().await;
    let mut flow = PhoneFlow::open(&lab, Element::RegistrarA, Transport::Tcp).await.unwrap();
    assert_eq!(flow.register(&lab, Element::RegistrarA, 60).await.status(), Some(200));
    assert_eq!(lab.live_connection_tasks(), 1, "the one connection's task");
    drop(lab);
    let closed = flow.read(ANSWER_DEADLINE).await;
    assert!(matches!(closed, Read::Closed(_)), "the connection ended with the lab: {closed:?}");
}
