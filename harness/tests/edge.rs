//! The outbound (edge) proxy of RFC 5626: forwarding with Path and Record-Route, requests back over the phone's flow, 430 when it is gone.

mod common;

use common::{ANSWER_DEADLINE, PhoneFlow, Read, authorize, lab_with};
use harness::elements::OutboundSupport;
use harness::trace::{Direction, Payload};
use harness::{Configuration, Element, ElementCommand, Lab, LabSpec, Transport};
use sip::{HeaderName, Message, Method};

async fn outbound_lab() -> Lab {
    let spec = LabSpec {
        outbound: Some(OutboundSupport { flow_timer: Some(25) }),
        ..LabSpec::new(Configuration::FullBackup, Transport::Tcp)
    };
    lab_with(spec).await
}

fn via_outbound(lab: &Lab, request: &mut Message, edge: Element) {
    request.push_header(HeaderName::Route, format!("<sip:{};lr>", lab.topology.fqdn(edge)));
}

/// What `element` received from `from`, as SIP messages.
fn received(lab: &Lab, element: Element, from: Element) -> Vec<Message> {
    lab.trace()
        .snapshot()
        .into_iter()
        .filter(|e| e.element == element && e.direction == Direction::Received)
        .filter(|e| lab.topology.party(e.remote.ip()) == harness::Party::Element(from))
        .filter_map(|e| match e.payload {
            Payload::Sip(m) => Some(*m),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn register_through_the_edge_gets_path_ob_and_require_outbound() {
    let lab = outbound_lab().await;
    let mut flow = PhoneFlow::open(&lab, Element::OutboundA, Transport::Tcp).await.unwrap();
    let contact = format!(
        "<sip:1001@{}:5060;transport=tcp;ob>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1",
        lab.topology.phone_ip()
    );
    let mut register = flow.request(&lab, Method::Register, Element::RegistrarA);
    via_outbound(&lab, &mut register, Element::OutboundA);
    register.set_header(HeaderName::Contact, &contact);
    register.push_header(HeaderName::Supported, "outbound, path");
    let challenge = flow.exchange(&register).await;
    assert_eq!(challenge.status(), Some(401), "the registrar's challenge comes back over the phone's flow");
    assert_eq!(challenge.vias().unwrap().len(), 1, "the edge proxy removed its own Via");

    let mut register = flow.request(&lab, Method::Register, Element::RegistrarA);
    via_outbound(&lab, &mut register, Element::OutboundA);
    register.set_header(HeaderName::Contact, &contact);
    register.push_header(HeaderName::Supported, "outbound, path");
    authorize(&lab, &mut register, &challenge.challenges().unwrap()[0]);
    let ok = flow.exchange(&register).await;
    assert_eq!(ok.status(), Some(200));
    assert!(ok.has_option_tag(&HeaderName::Require, "outbound"), "{ok:?}");
    assert_eq!(ok.flow_timer().unwrap(), Some(25));

    let at_registrar = received(&lab, Element::RegistrarA, Element::OutboundA);
    let forwarded = at_registrar.last().expect("the registrar got the REGISTER from the edge proxy");
    let path = forwarded.paths().unwrap();
    assert_eq!(path.len(), 1);
    let path_uri = path[0].uri.as_sip().unwrap();
    assert!(path_uri.params.has("ob") && path_uri.params.has("lr"), "Path carries ;ob;lr (RFC 5626 §5.1)");
    assert_eq!(path_uri.host.to_string(), lab.topology.fqdn(Element::OutboundA));
    assert!(forwarded.routes().unwrap().is_empty(), "the edge proxy consumed its Route");
    assert_eq!(forwarded.max_forwards().unwrap(), Some(69));
}

#[tokio::test]
async fn notify_comes_back_over_the_phones_flow_and_430_when_it_is_gone() {
    let mut lab = outbound_lab().await;
    let mut flow = PhoneFlow::open(&lab, Element::OutboundB, Transport::Tcp).await.unwrap();
    let mut subscribe = flow.request(&lab, Method::Subscribe, Element::ProxyB);
    via_outbound(&lab, &mut subscribe, Element::OutboundB);
    subscribe.push_header(HeaderName::Event, "dialog");
    flow.send(&subscribe).await.unwrap();
    let mut got_ok = false;
    let mut got_notify = false;
    while !(got_ok && got_notify) {
        match flow.read(ANSWER_DEADLINE).await {
            Read::Message(m) if m.status() == Some(200) => {
                assert_eq!(m.record_routes().unwrap().len(), 1, "the edge proxy record-routed");
                got_ok = true;
            }
            Read::Message(m) if m.method() == Some(&Method::Notify) => {
                assert_eq!(m.header(&HeaderName::Event), Some("dialog"));
                let mut answer = Message::response_to(&m, 200, None);
                answer.set_header(HeaderName::CSeq, m.header(&HeaderName::CSeq).unwrap());
                flow.send(&answer).await.unwrap();
                got_notify = true;
            }
            other => panic!("expected 200 and NOTIFY over the flow, got {other:?}"),
        }
    }
    drop(flow);
    // The phone's flow is gone: the edge proxy answers the proxy's next NOTIFY with 430.
    let deadline = tokio::time::Instant::now() + ANSWER_DEADLINE;
    while lab.open_flows(Element::OutboundB) > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the edge proxy never noticed the closed flow");
        tokio::task::yield_now().await;
    }
    lab.command(Element::ProxyB, ElementCommand::NotifyAll).await;
    let deadline = tokio::time::Instant::now() + ANSWER_DEADLINE;
    let answered_430 = lab
        .trace()
        .wait_for(0, deadline, |e| {
            e.element == Element::OutboundB
                && e.direction == Direction::Sent
                && e.sip().is_some_and(|m| m.status() == Some(430))
        })
        .await;
    assert!(answered_430.is_some(), "430 Flow Failed (RFC 5626 §5.3)");
}

#[tokio::test]
async fn deactivation_notifies_with_terminated_deactivated() {
    let mut lab = outbound_lab().await;
    let listener = tokio::net::UdpSocket::bind(std::net::SocketAddr::new(lab.topology.phone_ip(), 5060)).await.unwrap();
    let mut flow = PhoneFlow::open(&lab, Element::ProxyA, Transport::Udp).await.unwrap();
    let mut subscribe = flow.request(&lab, Method::Subscribe, Element::ProxyA);
    subscribe.push_header(HeaderName::Event, "message-summary");
    assert_eq!(flow.exchange(&subscribe).await.status(), Some(200));
    let mut buf = vec![0u8; 65_536];
    let first = tokio::time::timeout(ANSWER_DEADLINE, listener.recv(&mut buf)).await.unwrap().unwrap();
    let first = Message::parse(&buf[..first]).unwrap();
    assert!(first.body.starts_with(b"Messages-Waiting"));
    // Answered, as a phone does, so the proxy does not send it again (RFC 3261 §17.1.2).
    let ok = Message::response_to(&first, 200, None).to_bytes();
    listener.send_to(&ok, lab.topology.sip_addr(Element::ProxyA)).await.unwrap();
    lab.command(Element::ProxyA, ElementCommand::DeactivateAll).await;
    let n = tokio::time::timeout(ANSWER_DEADLINE, listener.recv(&mut buf)).await.unwrap().unwrap();
    let notify = Message::parse(&buf[..n]).unwrap();
    let state = notify.subscription_state().unwrap().unwrap();
    assert_eq!((state.state.as_str(), state.reason()), ("terminated", Some("deactivated")));
}
