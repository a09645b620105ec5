//! Property tests: mutated and random bytes never make the parser, the typed views, lint or the stream framer panic or buffer without bound.

mod support;

use proptest::prelude::*;
use proptest::sample::Index;
use sip::{Frame, FramerRole, HeaderName, Message, StreamFramer, StunMessage, classify_datagram, lint_datagram};
use support::crlf;

/// The framer's documented bound: one message of at most this many bytes is buffered.
const MAX_PENDING: usize = 256 * 1024;

fn seeds() -> Vec<Vec<u8>> {
    vec![
        crlf(
            "REGISTER sip:registrar-a.lab.test SIP/2.0\n\
             Via: SIP/2.0/TCP [2001:db8::10]:5060;branch=z9hG4bKreg1;rport\n\
             Max-Forwards: 70\n\
             From: \"Alice\" <sip:alice@proxy-a.lab.test>;tag=a73kszlfl\n\
             To: <sip:alice@proxy-a.lab.test>\n\
             Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.10\n\
             CSeq: 2 REGISTER\n\
             Supported: path, outbound\n\
             Contact: <sip:alice@192.0.2.10:5060;transport=tcp;ob>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1;expires=3600\n\
             Authorization: Digest username=\"alice\", realm=\"lab.test\", nonce=\"abc\", uri=\"sip:registrar-a.lab.test\", response=\"0123456789abcdef0123456789abcdef\", qop=auth, nc=0000000a, cnonce=\"xyz\"\n\
             Content-Length: 0\n\n",
        ),
        crlf(
            "SIP/2.0 200 OK\n\
             Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKreg2;received=[2001:db8::1];rport=5062, SIP / 2.0 / UDP 192.0.2.11 ;branch=z9hG4bKx\n\
             From: <sip:alice@proxy-a.lab.test>;tag=a73kszlfl\n\
             To: <sip:alice@proxy-a.lab.test>;tag=37GkEhwl6\n\
             Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.10\n\
             CSeq: 2 REGISTER\n\
             Require: outbound\n\
             Flow-Timer: 120\n\
             Contact: <sip:alice@192.0.2.10;ob>;expires=3600;+sip.instance=\"<urn:uuid:aaaa>\";reg-id=1, \"Desk, \\\"2\\\"\" <sip:alice@[2001:db8::12]:5062>;expires=60;q=0.5\n\
             m: <sips:alice@phone.lab.test>;expires=10\n\
             Path: <sip:edge.lab.test;lr;ob>\n\
             Content-Length: 0\n\n",
        ),
        crlf(
            "SUBSCRIBE sip:bob@proxy-a.lab.test SIP/2.0\n\
             v: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKsub\n\
             Max-Forwards: 70\n\
             f: <sip:alice@proxy-a.lab.test>;tag=s1\n\
             t: <sip:bob@proxy-a.lab.test>\n\
             i: sub@192.0.2.10\n\
             CSeq: 1 SUBSCRIBE\n\
             Route: <sip:outbound-a.lab.test;lr>, <sip:proxy-a.lab.test;lr>\n\
             o: dialog;id=1\n\
             Expires: 3600\n\
             Accept: application/dialog-info+xml\n\
             l: 0\n\n",
        ),
        with_body(
            "NOTIFY sip:alice@192.0.2.10:5060;ob SIP/2.0\n\
             Via: SIP/2.0/UDP proxy-a.lab.test;branch=z9hG4bKnot\n\
             Max-Forwards: 70\n\
             From: <sip:bob@proxy-a.lab.test>;tag=n1\n\
             To: <sip:alice@proxy-a.lab.test>;tag=s1\n\
             Call-ID: sub@192.0.2.10\n\
             CSeq: 5 NOTIFY\n\
             Event: dialog;id=1\n\
             Subscription-State: terminated;reason=deactivated;retry-after=5\n\
             Content-Type: application/dialog-info+xml\n\
             Subject: folded\n\
             \x20 onto a second line\n",
            "<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\"\r\n version=\"0\" state=\"full\"/>\r\n",
        ),
        crlf(
            "SIP/2.0 401 Unauthorized\n\
             Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKreg1\n\
             From: <sip:alice@proxy-a.lab.test>;tag=a73kszlfl\n\
             To: <sip:alice@proxy-a.lab.test>;tag=srv\n\
             Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.10\n\
             CSeq: 1 REGISTER\n\
             WWW-Authenticate: Digest realm=\"lab.test\", nonce=\"84a4cc6f3082121f32b42a2187831a9e\", opaque=\"5ccc\", algorithm=MD5, qop=\"auth,auth-int\"\n\
             Retry-After: 30 (back (soon)) ;duration=600\n\
             Min-Expires: 60\n\
             Content-Length: 0\n\n",
        ),
    ]
}

/// A message from a header block written with `\n` line ends and a body, with its Content-Length.
fn with_body(head: &str, body: &str) -> Vec<u8> {
    let mut bytes = crlf(&format!("{head}Content-Length: {}\n\n", body.len()));
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

/// Bytes a mutation likes to insert: SIP's separators and the ones that end quotes and brackets early.
const INTERESTING: &[&[u8]] = &[
    b";",
    b",",
    b"\"",
    b"\\",
    b"<",
    b">",
    b"[",
    b"]",
    b":",
    b"=",
    b"\r\n",
    b"\r\n ",
    b"\r\n\r\n",
    b" ",
    b"\t",
    b"%",
    b"%4",
    b"(",
    b")",
    b"/",
    b"@",
    b"?",
    b"\0",
    b"\xff",
    b"\xc3",
    b"99999999999999999999",
    b"Content-Length: 1000000\r\n",
    b"l: 3\r\n",
    b"SIP/2.0/UDP [::1]:",
    b";branch=",
    b";received=[",
    b";+sip.instance=\"<urn:",
];

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(Index, u8),
    Insert(Index, Vec<u8>),
    InsertInteresting(Index, Index),
    Delete(Index, usize),
    Truncate(Index),
    Duplicate(Index, usize, Index),
    Overwrite(Index, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, bit)| Mutation::FlipBit(i, bit)),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, which)| Mutation::InsertInteresting(i, which)),
        (any::<Index>(), 1usize..40).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), 1usize..120, any::<Index>()).prop_map(|(from, n, to)| Mutation::Duplicate(from, n, to)),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, b)| Mutation::Overwrite(i, b)),
    ]
}

/// Applies one mutation; positions are taken modulo the current length, so every mutation applies.
fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len + 1) };
    match mutation {
        Mutation::FlipBit(i, bit) => {
            if !bytes.is_empty() {
                let i = i.index(bytes.len());
                bytes[i] ^= 1 << bit;
            }
        }
        Mutation::Insert(i, new) => {
            let i = at(i, bytes.len());
            bytes.splice(i..i, new.iter().copied());
        }
        Mutation::InsertInteresting(i, which) => {
            let i = at(i, bytes.len());
            bytes.splice(i..i, which.get(INTERESTING).iter().copied());
        }
        Mutation::Delete(i, n) => {
            let i = at(i, bytes.len()).min(bytes.len());
            let end = (i + n).min(bytes.len());
            bytes.drain(i..end);
        }
        Mutation::Truncate(i) => {
            let i = at(i, bytes.len());
            bytes.truncate(i);
        }
        Mutation::Duplicate(from, n, to) => {
            if !bytes.is_empty() {
                let from = from.index(bytes.len());
                let end = (from + n).min(bytes.len());
                let slice = bytes[from..end].to_vec();
                let to = at(to, bytes.len());
                bytes.splice(to..to, slice);
            }
        }
        Mutation::Overwrite(i, new) => {
            if !bytes.is_empty() {
                let i = i.index(bytes.len());
                for (offset, b) in new.iter().enumerate() {
                    if let Some(slot) = bytes.get_mut(i + offset) {
                        *slot = *b;
                    }
                }
            }
        }
    }
}

fn mutated_seed() -> impl Strategy<Value = Vec<u8>> {
    (any::<Index>(), prop::collection::vec(mutation(), 1..8)).prop_map(|(seed, mutations)| {
        let mut bytes = seed.get(&seeds()).clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        bytes
    })
}

/// Calls every typed view and accessor; their results are free to be errors, never panics.
fn exercise_views(m: &Message) {
    let _ = m.request_uri();
    let _ = (m.method(), m.status(), m.is_request(), m.raw());
    let _ = m.vias();
    let _ = m.top_via().map(|v| (v.branch().map(str::len), v.received().map(str::len), v.rport(), v.to_string()));
    let _ = m.from().map(|n| (n.tag().map(str::len), n.to_string()));
    let _ = m.to().map(|n| n.to_string());
    let _ = m.call_id();
    let _ = m.cseq().map(|c| c.to_string());
    if let Ok(contacts) = m.contacts() {
        for c in contacts {
            let _ = (c.expires(), c.q(), c.instance().map(str::len), c.reg_id(), c.has_ob(), c.to_string());
        }
    }
    let _ = m.routes();
    let _ = m.record_routes();
    let _ = m.paths();
    let _ = (m.expires(), m.min_expires(), m.max_forwards(), m.flow_timer());
    let _ = (m.supported(), m.require(), m.proxy_require());
    let _ = m.has_option_tag(&HeaderName::Supported, "outbound");
    let _ = m.event();
    let _ = m.subscription_state().map(|s| s.map(|s| (s.reason().map(str::len), s.expires())));
    let _ = m.retry_after().map(|r| r.map(|r| r.duration()));
    if let Ok(challenges) = m.challenges() {
        for c in challenges {
            let _ = (c.is_digest(), c.realm(), c.nonce(), c.opaque(), c.offers_qop_auth(), c.to_string());
        }
    }
    for proxy in [false, true] {
        if let Ok(Some(credentials)) = m.credentials(proxy) {
            let _ = (credentials.nonce_count(), credentials.verify("REGISTER", "pw"), credentials.to_string());
        }
    }
    let _ = Message::response_to(m, 200, Some("tag"));
}

/// Parses, exercises and reprints one datagram, checking what must hold for any input.
fn check_datagram(bytes: &[u8]) -> Result<(), TestCaseError> {
    let parsed = Message::parse(bytes);
    let report = lint_datagram(bytes);
    let _ = report.diagnostics.iter().map(ToString::to_string).count();
    let _ = classify_datagram(bytes);
    let _ = StunMessage::decode(bytes);
    match parsed {
        Err(malformed) => {
            prop_assert!(report.is_malformed(), "lint must agree that an unframable datagram is malformed");
            prop_assert!(!malformed.diagnostics.is_empty());
            let _ = malformed.to_string();
        }
        Ok(m) => {
            prop_assert!(m.body.len() <= bytes.len(), "body {} from {} input bytes", m.body.len(), bytes.len());
            exercise_views(&m);
            let printed = m.to_bytes();
            let reparsed = Message::parse(&printed);
            prop_assert!(reparsed.is_ok(), "a parsed message must reprint parseably: {:?}", reparsed.err());
            let reparsed = reparsed.unwrap();
            prop_assert_eq!(&reparsed.start, &m.start);
            prop_assert_eq!(&reparsed.body, &m.body);
            let without_length = |m: &Message| -> Vec<sip::Header> {
                m.headers.iter().filter(|h| h.name != HeaderName::ContentLength).cloned().collect()
            };
            prop_assert_eq!(without_length(&reparsed), without_length(&m));
        }
    }
    Ok(())
}

/// Feeds `bytes` to a framer in chunks of the given sizes, checking the buffer bound after every push.
fn check_stream(bytes: &[u8], chunk_sizes: &[usize], role: FramerRole) -> Result<Vec<Frame>, TestCaseError> {
    let mut framer = StreamFramer::new(role);
    let mut frames = Vec::new();
    let mut rest = bytes;
    let mut sizes = chunk_sizes.iter().cycle();
    while !rest.is_empty() {
        let size = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        framer.push(chunk);
        prop_assert!(framer.pending() <= MAX_PENDING, "pending {} after a push", framer.pending());
        while let Some(frame) = framer.next_frame() {
            if let Frame::Message(m) = &frame {
                prop_assert!(m.body.len() <= bytes.len());
                exercise_views(m);
            }
            frames.push(frame);
        }
    }
    Ok(frames)
}

proptest! {
    #[test]
    fn mutated_seeds_never_panic(bytes in mutated_seed()) {
        check_datagram(&bytes)?;
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        check_datagram(&bytes)?;
    }

    #[test]
    fn random_text_lines_never_panic(lines in prop::collection::vec("[ -~\t]{0,60}", 0..12), body in "[ -~]{0,20}") {
        let mut text = String::from("INVITE sip:x.lab.test SIP/2.0\r\n");
        for line in &lines {
            text.push_str(line);
            text.push_str("\r\n");
        }
        text.push_str("\r\n");
        text.push_str(&body);
        check_datagram(text.as_bytes())?;
    }

    #[test]
    fn mutated_streams_never_panic_and_stay_bounded(
        bytes in prop::collection::vec(mutated_seed(), 1..4).prop_map(|v| v.concat()),
        chunk_sizes in prop::collection::vec(1usize..200, 1..10),
        server in any::<bool>(),
    ) {
        let role = if server { FramerRole::Server } else { FramerRole::Client };
        let frames = check_stream(&bytes, &chunk_sizes, role)?;
        let broken = frames.iter().position(|f| matches!(f, Frame::Broken(_)));
        if let Some(i) = broken {
            prop_assert_eq!(i, frames.len() - 1, "nothing follows a broken frame");
        }
    }

    #[test]
    fn valid_streams_frame_exactly_at_any_chunking(
        picks in prop::collection::vec(any::<Index>(), 1..6),
        pings in prop::collection::vec(any::<bool>(), 6),
        chunk_sizes in prop::collection::vec(1usize..300, 1..10),
    ) {
        let seeds = seeds();
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for (pick, ping) in picks.iter().zip(&pings) {
            let seed = pick.get(&seeds);
            stream.extend_from_slice(seed);
            expected.push(Message::parse(seed).unwrap());
            if *ping {
                stream.extend_from_slice(b"\r\n\r\n");
            }
        }
        let frames = check_stream(&stream, &chunk_sizes, FramerRole::Server)?;
        let messages: Vec<&Message> = frames.iter().filter_map(|f| match f { Frame::Message(m) => Some(m), _ => None }).collect();
        prop_assert_eq!(messages.len(), expected.len());
        for (got, want) in messages.iter().zip(&expected) {
            prop_assert_eq!(&got.headers, &want.headers);
            prop_assert_eq!(&got.body, &want.body);
        }
        let pings_sent = picks.iter().zip(&pings).filter(|(_, p)| **p).count();
        prop_assert_eq!(frames.iter().filter(|f| **f == Frame::Ping).count(), pings_sent);
    }
}

#[test]
fn every_seed_is_valid_and_lints_clean_of_errors() {
    for seed in seeds() {
        let report = lint_datagram(&seed);
        assert!(!report.is_malformed(), "{}\n{:?}", String::from_utf8_lossy(&seed), report.diagnostics);
        check_datagram(&seed).unwrap();
    }
}
