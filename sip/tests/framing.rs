//! Stream framing (messages, RFC 5626 pings and pongs, broken streams) and UDP datagram classification, STUN included.

mod support;

use assert_matches::assert_matches;
use sip::{DatagramKind, Frame, FramerRole, StreamFramer, StunClass, StunMessage, classify_datagram};
use support::crlf;

fn options(call_id: &str, body: &str) -> Vec<u8> {
    crlf(&format!("OPTIONS sip:x.lab.test SIP/2.0\nCall-ID: {call_id}\nContent-Length: {}\n\n", body.len()))
        .into_iter()
        .chain(body.bytes())
        .collect()
}

/// Drains every frame the framer can give now.
fn frames(framer: &mut StreamFramer) -> Vec<Frame> {
    std::iter::from_fn(|| framer.next_frame()).collect()
}

fn call_ids(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .map(|f| match f {
            Frame::Message(m) => m.call_id().unwrap().to_owned(),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn one_message_in_one_chunk() {
    let mut framer = StreamFramer::new(FramerRole::Server);
    framer.push(&options("one", "hello"));
    let got = frames(&mut framer);
    assert_eq!(call_ids(&got), ["one"]);
    assert_matches!(&got[0], Frame::Message(m) if m.body == b"hello");
    assert_eq!(framer.pending(), 0);
}

#[test]
fn two_messages_in_one_chunk() {
    let mut framer = StreamFramer::new(FramerRole::Server);
    let mut chunk = options("first", "abc");
    chunk.extend(options("second", ""));
    framer.push(&chunk);
    assert_eq!(call_ids(&frames(&mut framer)), ["first", "second"]);
    assert_eq!(framer.next_frame(), None);
}

#[test]
fn messages_split_at_every_possible_boundary() {
    let mut stream = options("first", "body with\r\n\r\nblank lines");
    stream.extend(options("second", "x"));
    for role in [FramerRole::Server, FramerRole::Client] {
        for split in 0..=stream.len() {
            let mut framer = StreamFramer::new(role);
            let mut got = Vec::new();
            for chunk in [&stream[..split], &stream[split..]] {
                framer.push(chunk);
                got.extend(frames(&mut framer));
            }
            assert_eq!(call_ids(&got), ["first", "second"], "split at {split}, {role:?}");
            assert_matches!(&got[0], Frame::Message(m) if m.body == b"body with\r\n\r\nblank lines");
        }
    }
}

#[test]
fn messages_fed_one_byte_at_a_time() {
    let mut stream = options("first", "0123456789");
    stream.extend(b"\r\n\r\n");
    stream.extend(options("second", ""));
    let mut framer = StreamFramer::new(FramerRole::Server);
    let mut got = Vec::new();
    for byte in &stream {
        framer.push(std::slice::from_ref(byte));
        got.extend(frames(&mut framer));
    }
    assert_eq!(call_ids(&got), ["first", "Ping", "second"]);
    assert_eq!(framer.pending(), 0);
}

#[test]
fn pending_counts_the_unframed_bytes() {
    let mut framer = StreamFramer::new(FramerRole::Server);
    let message = options("p", "body");
    framer.push(&message[..30]);
    assert_eq!(framer.next_frame(), None);
    assert_eq!(framer.pending(), 30);
    framer.push(&message[30..]);
    assert_matches!(framer.next_frame(), Some(Frame::Message(_)));
    assert_eq!(framer.pending(), 0);
}

#[test]
fn a_server_reads_crlfcrlf_as_a_ping() {
    let mut framer = StreamFramer::new(FramerRole::Server);
    framer.push(b"\r\n\r\n\r\n\r\n");
    assert_eq!(frames(&mut framer), [Frame::Ping, Frame::Ping]);
}

#[test]
fn a_client_reads_crlf_as_a_pong() {
    let mut framer = StreamFramer::new(FramerRole::Client);
    framer.push(b"\r\n");
    assert_eq!(frames(&mut framer), [Frame::Pong]);
    let mut response = crlf("SIP/2.0 200 OK\nCall-ID: after-pong\nContent-Length: 0\n\n");
    response.splice(0..0, b"\r\n".iter().copied());
    framer.push(&response);
    assert_eq!(call_ids(&frames(&mut framer)), ["Pong", "after-pong"]);
}

#[test]
fn a_half_arrived_ping_waits_for_the_rest() {
    for split in 1..4 {
        let mut framer = StreamFramer::new(FramerRole::Server);
        framer.push(&b"\r\n\r\n"[..split]);
        assert_eq!(framer.next_frame(), None, "split at {split}");
        framer.push(&b"\r\n\r\n"[split..]);
        assert_eq!(framer.next_frame(), Some(Frame::Ping), "split at {split}");
        assert_eq!(framer.next_frame(), None);
    }
}

#[test]
fn a_half_arrived_pong_waits_for_the_rest() {
    let mut framer = StreamFramer::new(FramerRole::Client);
    framer.push(b"\r");
    assert_eq!(framer.next_frame(), None);
    framer.push(b"\n");
    assert_eq!(framer.next_frame(), Some(Frame::Pong));
}

#[test]
fn a_server_ignores_a_lone_crlf_before_a_message() {
    let mut framer = StreamFramer::new(FramerRole::Server);
    let mut stream = b"\r\n".to_vec();
    stream.extend(options("after-crlf", ""));
    framer.push(&stream);
    assert_eq!(call_ids(&frames(&mut framer)), ["after-crlf"]);
}

#[test]
fn compact_content_length_frames_too() {
    let mut framer = StreamFramer::new(FramerRole::Server);
    let mut stream = crlf("MESSAGE sip:x.lab.test SIP/2.0\ni: compact\nl: 3\n\n");
    stream.extend(b"abcOPTIONS");
    framer.push(&stream);
    assert_matches!(framer.next_frame(), Some(Frame::Message(m)) if m.body == b"abc");
    assert_eq!(framer.next_frame(), None);
    assert_eq!(framer.pending(), "OPTIONS".len());
}

#[test]
fn a_missing_content_length_on_a_stream_is_broken() {
    let mut framer = StreamFramer::new(FramerRole::Server);
    framer.push(&crlf("OPTIONS sip:x.lab.test SIP/2.0\nCall-ID: x\n\n"));
    assert_matches!(framer.next_frame(), Some(Frame::Broken(d)) if d.code == "content-length");
    framer.push(&options("later", ""));
    assert_eq!(framer.next_frame(), None, "a broken stream yields nothing more");
    assert_eq!(framer.pending(), 0);
}

#[test]
fn a_folded_line_does_not_pass_for_content_length() {
    let mut framer = StreamFramer::new(FramerRole::Server);
    framer.push(&crlf("OPTIONS sip:x.lab.test SIP/2.0\nSubject: x\n l: 3\nContent-Length: 0\n\n"));
    assert_matches!(framer.next_frame(), Some(Frame::Message(m)) if m.body.is_empty());
}

#[test]
fn a_huge_content_length_is_broken_at_once() {
    for value in ["1000000000", "18446744073709551615", "99999999999999999999999999999"] {
        let mut framer = StreamFramer::new(FramerRole::Server);
        framer.push(&crlf(&format!("OPTIONS sip:x.lab.test SIP/2.0\nContent-Length: {value}\n\n")));
        assert_matches!(framer.next_frame(), Some(Frame::Broken(_)), "{value}");
        assert_eq!(framer.pending(), 0);
    }
}

#[test]
fn a_bad_content_length_is_broken() {
    let mut framer = StreamFramer::new(FramerRole::Server);
    framer.push(&crlf("OPTIONS sip:x.lab.test SIP/2.0\nContent-Length: -1\n\n"));
    assert_matches!(framer.next_frame(), Some(Frame::Broken(d)) if d.code == "content-length");
}

#[test]
fn an_endless_header_section_is_broken_and_not_buffered() {
    let mut framer = StreamFramer::new(FramerRole::Server);
    framer.push(b"OPTIONS sip:x.lab.test SIP/2.0\r\n");
    let filler = b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(1000);
    let mut broken = None;
    for _ in 0..100 {
        framer.push(&filler);
        assert!(framer.pending() <= 512 * 1024, "pending {} grew without bound", framer.pending());
        if let Some(frame) = framer.next_frame() {
            broken = Some(frame);
            break;
        }
    }
    assert_matches!(broken, Some(Frame::Broken(d)) if d.code == "too-large");
}

#[test]
fn one_huge_push_stays_bounded() {
    let mut framer = StreamFramer::new(FramerRole::Server);
    framer.push(&vec![b'a'; 4 * 1024 * 1024]);
    assert!(framer.pending() <= 512 * 1024, "pending {}", framer.pending());
    assert_matches!(framer.next_frame(), Some(Frame::Broken(_)));
}

#[test]
fn many_small_messages_in_one_huge_push_all_arrive() {
    let mut framer = StreamFramer::new(FramerRole::Server);
    let one = options("many", "");
    let count = 600 * 1024 / one.len() + 10;
    framer.push(&one.repeat(count));
    assert!(framer.pending() <= 512 * 1024);
    let got = frames(&mut framer);
    assert_eq!(got.len(), count);
    assert!(got.iter().all(|f| matches!(f, Frame::Message(_))));
}

#[test]
fn an_unparseable_message_breaks_the_stream() {
    let mut framer = StreamFramer::new(FramerRole::Server);
    framer.push(&crlf("NOT A START LINE\nContent-Length: 0\n\n"));
    assert_matches!(framer.next_frame(), Some(Frame::Broken(d)) if d.code == "start-line");
    assert_eq!(framer.next_frame(), None);
}

// ---- datagrams ----

#[test]
fn classify_stun_keepalive_and_sip() {
    let request = StunMessage::binding_request(*b"0123456789ab").encode();
    assert_eq!(classify_datagram(&request), DatagramKind::Stun);
    assert_eq!(classify_datagram(b"\r\n\r\n"), DatagramKind::KeepAlive);
    assert_eq!(classify_datagram(b"\r\n"), DatagramKind::KeepAlive);
    assert_eq!(classify_datagram(&options("x", "")), DatagramKind::Sip);
    assert_eq!(classify_datagram(b"SIP/2.0 200 OK\r\n"), DatagramKind::Sip);
    let mut wrong_cookie = request.clone();
    wrong_cookie[4] ^= 0xff;
    assert_eq!(classify_datagram(&wrong_cookie), DatagramKind::Sip);
    let mut wrong_length = request.clone();
    wrong_length.push(0);
    assert_eq!(classify_datagram(&wrong_length), DatagramKind::Sip);
    let mut unaligned = request.clone();
    unaligned.extend_from_slice(&[0, 0]);
    unaligned[3] = 2;
    assert_eq!(classify_datagram(&unaligned), DatagramKind::Sip, "a STUN length is a multiple of 4");
}

#[test]
fn stun_binding_request_round_trip() {
    let request = StunMessage::binding_request([7; 12]);
    let bytes = request.encode();
    assert_eq!(bytes.len(), 20);
    assert_eq!(&bytes[..4], &[0x00, 0x01, 0x00, 0x00]);
    assert_eq!(&bytes[4..8], &[0x21, 0x12, 0xA4, 0x42]);
    let decoded = StunMessage::decode(&bytes).unwrap();
    assert_eq!(decoded, request);
    assert_eq!(decoded.class, StunClass::BindingRequest);
}

#[test]
fn stun_binding_success_round_trip_ipv4_and_ipv6() {
    let request = StunMessage::binding_request(*b"transaction!");
    for source in ["192.0.2.10:5060", "[2001:db8::10]:5062", "[::1]:1"] {
        let success = StunMessage::binding_success(&request, source.parse().unwrap());
        let decoded = StunMessage::decode(&success.encode()).unwrap();
        assert_eq!(decoded.class, StunClass::BindingSuccess);
        assert_eq!(decoded.transaction_id, *b"transaction!");
        assert_eq!(decoded.mapped_address, Some(source.parse().unwrap()), "{source}");
    }
}

/// RFC 5769 §2.2 and §2.3: XOR-MAPPED-ADDRESS of the sample responses (the other attributes left out).
#[test]
fn stun_xor_mapped_address_matches_rfc5769_vectors() {
    let transaction_id = [0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae];
    let v4_attribute = [0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43];
    let v6_attribute = [
        0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25,
        0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
    ];
    for (attribute, expected) in
        [(&v4_attribute[..], "192.0.2.1:32853"), (&v6_attribute[..], "[2001:db8:1234:5678:11:2233:4455:6677]:32853")]
    {
        let mut datagram = vec![0x01, 0x01, 0x00, attribute.len() as u8, 0x21, 0x12, 0xa4, 0x42];
        datagram.extend_from_slice(&transaction_id);
        datagram.extend_from_slice(attribute);
        let decoded = StunMessage::decode(&datagram).unwrap();
        assert_eq!(decoded.mapped_address, Some(expected.parse().unwrap()));
        let reencoded = StunMessage::binding_success(&decoded, expected.parse().unwrap()).encode();
        assert_eq!(reencoded, datagram, "{expected}");
    }
}

#[test]
fn stun_decode_skips_unknown_attributes_and_refuses_truncation() {
    let request = StunMessage::binding_request([1; 12]);
    let success = StunMessage::binding_success(&request, "192.0.2.1:9".parse().unwrap()).encode();
    // An unknown 5-byte attribute (padded to 8) before XOR-MAPPED-ADDRESS.
    let mut datagram = success[..20].to_vec();
    datagram.extend_from_slice(&[0x80, 0x22, 0x00, 0x05, b'h', b'e', b'l', b'l', b'o', 0, 0, 0]);
    datagram.extend_from_slice(&success[20..]);
    let length = (datagram.len() - 20) as u16;
    datagram[2..4].copy_from_slice(&length.to_be_bytes());
    assert_eq!(StunMessage::decode(&datagram).unwrap().mapped_address, Some("192.0.2.1:9".parse().unwrap()));
    let mut truncated = success.clone();
    truncated[3] += 4;
    truncated.extend_from_slice(&[0x00, 0x20, 0x00, 0x08]);
    assert_eq!(StunMessage::decode(&truncated), None);
    assert_eq!(StunMessage::decode(b"short"), None);
}
