//! Each rsip 0.4 defect BRIEF §3 lists, as a test that our parser gets right; each also checks that rsip still has it, so the list in the brief cannot go stale unnoticed.

mod support;

use rsip::prelude::*;
use sip::{Frame, FramerRole, HeaderName, Message, StreamFramer};
use support::{crlf, parse};

/// A REGISTER around `extra` header lines, the way a phone sends it.
fn register(extra: &str) -> String {
    format!(
        "REGISTER sip:registrar-a.lab.test SIP/2.0\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKtop\n\
         Max-Forwards: 70\n\
         From: <sip:alice@proxy-a.lab.test>;tag=1\n\
         To: <sip:alice@proxy-a.lab.test>\n\
         Call-ID: defects@192.0.2.10\n\
         CSeq: 1 REGISTER\n\
         {extra}Content-Length: 0\n\n"
    )
}

fn rsip_parse(text: &str) -> rsip::SipMessage {
    rsip::SipMessage::try_from(crlf(text).as_slice()).expect("rsip frames this message")
}

/// rsip's typed Contact values, in order.
fn rsip_contacts(text: &str) -> Vec<Result<rsip::typed::Contact, rsip::Error>> {
    rsip_parse(text)
        .headers()
        .iter()
        .filter_map(|h| match h {
            rsip::Header::Contact(c) => Some(c.typed()),
            _ => None,
        })
        .collect()
}

/// rsip's typed Via values, in order.
fn rsip_vias(text: &str) -> Vec<Result<rsip::typed::Via, rsip::Error>> {
    rsip_parse(text)
        .headers()
        .iter()
        .filter_map(|h| match h {
            rsip::Header::Via(v) => Some(v.typed()),
            _ => None,
        })
        .collect()
}

const STALE: &str = "rsip no longer shows this defect: update BRIEF §3";

// BRIEF §3: rsip fails on RFC 5626 Contacts with quoted params (`+sip.instance="<urn:uuid:...>"`).
#[test]
fn contact_with_quoted_instance_param() {
    let text = register(
        "Contact: <sip:alice@192.0.2.10:5060;ob>;+sip.instance=\"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>\";reg-id=1\n",
    );
    let contacts = parse(&text).contacts().unwrap();
    assert_eq!(contacts[0].instance(), Some("<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>"));
    assert_eq!(contacts[0].reg_id(), Some(1));
    assert!(contacts[0].has_ob());

    assert!(rsip_contacts(&text)[0].is_err(), "{STALE}");
}

// BRIEF §3: rsip fails on several Contacts in one header.
#[test]
fn several_contacts_in_one_header() {
    let text = register("Contact: <sip:alice@192.0.2.10>;expires=60, <sip:alice@192.0.2.11>;expires=120\n");
    let contacts = parse(&text).contacts().unwrap();
    let expires: Vec<_> = contacts.iter().map(sip::Contact::expires).collect();
    assert_eq!(expires, [Some(60), Some(120)]);

    assert!(rsip_contacts(&text)[0].is_err(), "{STALE}");
}

// BRIEF §3: rsip fails on IPv6 hosts (in a Contact URI and in a Via sent-by).
#[test]
fn ipv6_hosts_in_contact_and_via() {
    let text =
        register("Contact: <sip:alice@[2001:db8::10]:5060>\nVia: SIP/2.0/UDP [2001:db8::10]:5060;branch=z9hG4bKv6\n");
    let m = parse(&text);
    let contact = m.contacts().unwrap().remove(0);
    let uri = contact.address().unwrap().uri.as_sip().unwrap().clone();
    assert_eq!(uri.host, sip::Host::V6("2001:db8::10".parse().unwrap()));
    assert_eq!(uri.port, Some(5060));
    let vias = m.vias().unwrap();
    assert_eq!(vias[1].host, sip::Host::V6("2001:db8::10".parse().unwrap()));
    assert_eq!(vias[1].branch(), Some("z9hG4bKv6"));

    assert!(rsip_contacts(&text)[0].is_err(), "{STALE}");
    assert!(rsip_vias(&text)[1].is_err(), "{STALE}");
}

// BRIEF §3: rsip silently drops Via values (the second value of a comma-separated Via line).
#[test]
fn every_via_value_is_kept() {
    let text = register("Via: SIP/2.0/UDP 192.0.2.20;branch=z9hG4bKa, SIP/2.0/TCP 192.0.2.21;branch=z9hG4bKb\n");
    let branches: Vec<String> = parse(&text).vias().unwrap().iter().map(|v| v.branch().unwrap().to_owned()).collect();
    assert_eq!(branches, ["z9hG4bKtop", "z9hG4bKa", "z9hG4bKb"]);

    assert_eq!(rsip_vias(&text).len(), 2, "{STALE}");
}

// BRIEF §3: rsip silently drops the branch after `received=[v6]`.
#[test]
fn branch_after_received_ipv6() {
    let text = register("Via: SIP/2.0/UDP 192.0.2.20;received=[2001:db8::1];branch=z9hG4bKafter\n");
    let via = parse(&text).vias().unwrap().remove(1);
    assert_eq!(via.received(), Some("[2001:db8::1]"));
    assert_eq!(via.branch(), Some("z9hG4bKafter"));

    let rsip_via = rsip_vias(&text).remove(1).expect("rsip parses it, wrongly");
    assert!(rsip_via.branch().is_none(), "{STALE}");
}

// BRIEF §3: rsip silently drops the branch after a space before `;`.
#[test]
fn branch_after_a_space_before_the_semicolon() {
    let text = register("Via: SIP/2.0/UDP 192.0.2.20 ;branch=z9hG4bKspaced\n");
    let via = parse(&text).vias().unwrap().remove(1);
    assert_eq!(via.branch(), Some("z9hG4bKspaced"));

    let rsip_via = rsip_vias(&text).remove(1).expect("rsip parses it, wrongly");
    assert!(rsip_via.branch().is_none(), "{STALE}");
}

// BRIEF §3: rsip has no compact header forms (RFC 3261 §7.3.3): `m:` is an unknown header to it.
#[test]
fn compact_header_forms() {
    let text = register("m: <sip:alice@192.0.2.10>\nk: outbound\n");
    let m = parse(&text);
    assert_eq!(m.contacts().unwrap().len(), 1);
    assert!(m.has_option_tag(&HeaderName::Supported, "outbound"));

    let rsip_message = rsip_parse(&text);
    assert!(rsip_message.contact_header().is_err(), "{STALE}");
    assert!(rsip_message.headers().iter().any(|h| matches!(h, rsip::Header::Other(name, _) if name == "m")), "{STALE}");
}

// BRIEF §3: rsip has no stream framing: given two messages back to back it takes the second for the body of the first.
#[test]
fn stream_framing_of_back_to_back_messages() {
    let mut stream = crlf(&register(""));
    stream.extend(crlf(&register("")));
    let mut framer = StreamFramer::new(FramerRole::Server);
    framer.push(&stream);
    let frames: Vec<Frame> = std::iter::from_fn(|| framer.next_frame()).collect();
    assert_eq!(frames.len(), 2);
    assert!(frames.iter().all(|f| matches!(f, Frame::Message(m) if m.body.is_empty())));

    let rsip_message = rsip::SipMessage::try_from(stream.as_slice()).expect("rsip takes it as one message");
    assert_eq!(rsip_message.body().len(), stream.len() / 2, "{STALE}");
}

// BRIEF §3: rsip prints enum names as reason phrases (`503 ServiceUnavailable`).
#[test]
fn reason_phrases_are_not_enum_names() {
    assert!(Message::response(503).to_bytes().starts_with(b"SIP/2.0 503 Service Unavailable\r\n"));
    assert!(Message::response(481).to_bytes().starts_with(b"SIP/2.0 481 Call/Transaction Does Not Exist\r\n"));

    let rsip_response = rsip::Response {
        status_code: 503.into(),
        version: rsip::Version::V2,
        headers: Default::default(),
        body: Vec::new(),
    };
    assert!(rsip_response.to_string().starts_with("SIP/2.0 503 ServiceUnavailable\r\n"), "{STALE}");
}

// BRIEF §3: rsip parses the digest `nc` as decimal; it is hexadecimal (RFC 2617 §3.2.2), so `nc=0000000a` is 10.
#[test]
fn digest_nonce_count_is_hexadecimal() {
    let value = r#"Digest username="alice", realm="lab.test", nonce="n", uri="sip:registrar-a.lab.test", response="0123456789abcdef0123456789abcdef", qop=auth, nc=0000000a, cnonce="c""#;
    assert_eq!(sip::Credentials::parse(value).unwrap().nonce_count(), Some(10));

    assert!(rsip::headers::Authorization::new(value).typed().is_err(), "{STALE}");
}
