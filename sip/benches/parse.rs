//! Parse throughput of a typical REGISTER with typed access to its key headers: our parser against rsip 0.4 on the same bytes.
//!
//! rsip cannot parse a Contact with a quoted parameter (`+sip.instance="<urn:uuid:...>"`, BRIEF §3),
//! so the comparison runs on a variant without it; our parser alone also runs on the RFC 5626 form.
//! Throughput is one element per message, so criterion reports messages per second.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rsip::prelude::*;

/// A REGISTER as an RFC 5626 phone sends it, about 600 bytes; `{instance}` is where `+sip.instance` goes.
const REGISTER_TEMPLATE: &str = "REGISTER sip:registrar-a.lab.test SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK3f9a1c2e7d5b;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Alice\" <sip:alice@proxy-a.lab.test>;tag=8e4a7c1b2d\r\n\
To: \"Alice\" <sip:alice@proxy-a.lab.test>\r\n\
Call-ID: 5b9d2f7a3c1e4068a1f2@192.0.2.10\r\n\
CSeq: 4711 REGISTER\r\n\
Contact: <sip:alice@192.0.2.10:5060;transport=udp;ob>{instance};reg-id=1;expires=3600\r\n\
Supported: path, outbound, gruu\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, OPTIONS, SUBSCRIBE, INFO, MESSAGE\r\n\
Accept: application/sdp, message/sipfrag\r\n\
User-Agent: Aastra 6757i/3.2.2.1136\r\n\
Expires: 3600\r\n\
Content-Length: 0\r\n\
\r\n";

const INSTANCE: &str = ";+sip.instance=\"<urn:uuid:6c1c5e5a-3d2a-4d7e-9c1b-00a0c91e6bf6>\"";

fn register(with_instance: bool) -> Vec<u8> {
    REGISTER_TEMPLATE.replace("{instance}", if with_instance { INSTANCE } else { "" }).into_bytes()
}

/// Ours: parse, then the typed views a registrar reads.
fn ours(bytes: &[u8]) -> usize {
    let message = sip::Message::parse(bytes).expect("our parser reads the REGISTER");
    let via = message.top_via().expect("Via");
    let contacts = message.contacts().expect("Contact");
    let from = message.from().expect("From");
    let to = message.to().expect("To");
    let cseq = message.cseq().expect("CSeq");
    via.branch().map_or(0, str::len)
        + contacts.len()
        + from.tag().map_or(0, str::len)
        + to.params.0.len()
        + cseq.seq as usize
}

/// rsip: parse, then the same headers in their typed forms.
fn rsip(bytes: &[u8]) -> usize {
    let message = rsip::SipMessage::try_from(bytes).expect("rsip reads the REGISTER");
    let via = message.via_header().expect("Via").typed().expect("typed Via");
    let contact = message.contact_header().expect("Contact").typed().expect("typed Contact");
    let from = message.from_header().expect("From").typed().expect("typed From");
    let to = message.to_header().expect("To").typed().expect("typed To");
    let cseq = message.cseq_header().expect("CSeq").typed().expect("typed CSeq");
    via.branch().map_or(0, |b| b.to_string().len())
        + contact.params.len()
        + from.params.len()
        + to.params.len()
        + cseq.seq as usize
}

/// Both parsers must read the same facts out of the shared input, or the comparison means nothing.
fn check_inputs() {
    let shared = register(false);
    let message = sip::Message::parse(&shared).unwrap();
    let theirs = rsip::SipMessage::try_from(shared.as_slice()).unwrap();
    let our_branch = message.top_via().unwrap().branch().unwrap().to_owned();
    let their_branch = theirs.via_header().unwrap().typed().unwrap().branch().unwrap().to_string();
    assert_eq!(our_branch, their_branch);
    assert_eq!(message.cseq().unwrap().seq, theirs.cseq_header().unwrap().typed().unwrap().seq);
    assert_eq!(message.from().unwrap().tag(), Some("8e4a7c1b2d"));
    assert!(theirs.contact_header().unwrap().typed().is_ok());
    let full = register(true);
    assert!(sip::Message::parse(&full).unwrap().contacts().unwrap()[0].instance().is_some());
    let rsip_on_full =
        rsip::SipMessage::try_from(full.as_slice()).map(|m| m.contact_header().map(|c| c.typed().is_ok()));
    assert!(!matches!(rsip_on_full, Ok(Ok(true))), "rsip now reads +sip.instance: compare on the full REGISTER");
}

fn parse_register(c: &mut Criterion) {
    check_inputs();
    let shared = register(false);
    let full = register(true);
    let mut group = c.benchmark_group(format!("register_{}_bytes", shared.len()));
    group.throughput(Throughput::Elements(1));
    group.bench_function("sip", |b| b.iter(|| ours(black_box(&shared))));
    group.bench_function("rsip", |b| b.iter(|| rsip(black_box(&shared))));
    group.finish();

    let mut group = c.benchmark_group(format!("register_with_instance_{}_bytes", full.len()));
    group.throughput(Throughput::Elements(1));
    group.bench_function("sip", |b| b.iter(|| ours(black_box(&full))));
    group.finish();
}

criterion_group!(benches, parse_register);
criterion_main!(benches);
