//! Message-level parsing and printing: start lines, compact header names, folding, list splitting, Content-Length, round-trips.

mod support;

use assert_matches::assert_matches;
use sip::{HeaderName, Message, Method, StartLine, reason_phrase};
use support::{crlf, parse, register_with};

// ---- start line ----

#[test]
fn request_line_gives_method_and_uri() {
    let m = register_with("");
    assert!(m.is_request());
    assert_eq!(m.method(), Some(&Method::Register));
    assert_eq!(m.status(), None);
    assert_matches!(&m.start, StartLine::Request { uri, .. } if uri == "sip:registrar.lab.test");
    let uri = m.request_uri().expect("a request has a Request-URI").expect("it parses");
    assert_eq!(uri.to_string(), "sip:registrar.lab.test");
}

#[test]
fn extension_methods_are_kept_by_name() {
    let m = parse("FOOBAR sip:x.lab.test SIP/2.0\nContent-Length: 0\n\n");
    assert_eq!(m.method(), Some(&Method::Other("FOOBAR".into())));
    assert_eq!(m.method().map(Method::as_str), Some("FOOBAR"));
}

#[test]
fn methods_are_case_sensitive() {
    let m = parse("register sip:x.lab.test SIP/2.0\nContent-Length: 0\n\n");
    assert_eq!(m.method(), Some(&Method::Other("register".into())));
}

#[test]
fn status_line_gives_code_and_reason() {
    let m = parse("SIP/2.0 503 Service Unavailable\nContent-Length: 0\n\n");
    assert!(!m.is_request());
    assert_eq!(m.status(), Some(503));
    assert_eq!(m.method(), None);
    assert!(m.request_uri().is_none());
    assert_matches!(&m.start, StartLine::Response { reason, .. } if reason == "Service Unavailable");
}

#[test]
fn status_line_reason_may_be_empty_or_unusual() {
    let m = parse("SIP/2.0 200 \nContent-Length: 0\n\n");
    assert_matches!(&m.start, StartLine::Response { status: 200, reason } if reason.is_empty());
    let m = parse("SIP/2.0 200 = 2**3 * 5**2 \u{43d}\u{43e} \u{441}\u{442}\u{43e}\nContent-Length: 0\n\n");
    assert_matches!(&m.start, StartLine::Response { status: 200, reason } if reason.starts_with("= 2**3"));
}

#[test]
fn bad_start_lines_are_malformed_not_panics() {
    for start in [
        "SIP/2.0 20 OK",
        "SIP/2.0 2000 OK",
        "SIP/2.0 099 Too Small",
        "SIP/2.0 abc OK",
        "INVITE sip:x.lab.test SIP/7.0",
        "INVITE  sip:x.lab.test SIP/2.0",
        "INVITE <sip:x.lab.test> SIP/2.0",
        "INVITE sip:x.lab.test",
        "INV(ITE sip:x.lab.test SIP/2.0",
        "",
    ] {
        let bytes = crlf(&format!("{start}\nContent-Length: 0\n\n"));
        let err = Message::parse(&bytes).expect_err(start);
        assert_eq!(err.diagnostics[0].code, "start-line", "{start:?}: {err}");
        assert_eq!(err.raw, bytes, "a malformed message keeps its raw bytes");
    }
}

#[test]
fn the_version_is_case_insensitive() {
    let m = parse("OPTIONS sip:x.lab.test sip/2.0\nContent-Length: 0\n\n");
    assert_eq!(m.method(), Some(&Method::Options));
    let m = parse("Sip/2.0 180 Ringing\nContent-Length: 0\n\n");
    assert_eq!(m.status(), Some(180));
}

#[test]
fn leading_crlfs_before_the_start_line_are_ignored() {
    let m = Message::parse(&crlf("\n\nOPTIONS sip:x.lab.test SIP/2.0\nContent-Length: 0\n\n")).unwrap();
    assert_eq!(m.method(), Some(&Method::Options));
}

#[test]
fn parsed_message_keeps_its_raw_bytes() {
    let bytes = crlf("OPTIONS sip:x.lab.test SIP/2.0\nContent-Length: 0\n\n");
    let m = Message::parse(&bytes).unwrap();
    assert_eq!(m.raw(), Some(bytes.as_slice()));
    let mut edited = m.clone();
    edited.push_header("Subject", "changed");
    assert_eq!(edited.raw(), None, "an edited message no longer matches its raw bytes");
}

#[test]
fn missing_end_of_headers_is_malformed() {
    let err = Message::parse(b"OPTIONS sip:x.lab.test SIP/2.0\r\nContent-Length: 0\r\n").unwrap_err();
    assert_eq!(err.diagnostics[0].code, "no-header-end");
}

#[test]
fn bare_lf_line_ends_parse_with_a_warning() {
    let m = Message::parse(b"OPTIONS sip:x.lab.test SIP/2.0\nCall-ID: abc\nContent-Length: 0\n\n").unwrap();
    assert_eq!(m.call_id().unwrap(), "abc");
    assert!(m.diagnostics.iter().any(|d| d.code == "bare-lf"));
}

#[test]
fn one_lf_only_line_among_crlf_lines_is_noticed() {
    let mixed = b"OPTIONS sip:x.lab.test SIP/2.0\r\nCall-ID: abc\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let m = Message::parse(mixed).unwrap();
    assert_eq!(m.cseq().unwrap().seq, 1);
    assert!(m.diagnostics.iter().any(|d| d.code == "bare-lf"));
    let lf_blank_line = b"OPTIONS sip:x.lab.test SIP/2.0\r\nCall-ID: abc\r\n\n";
    assert!(Message::parse(lf_blank_line).unwrap().diagnostics.iter().any(|d| d.code == "bare-lf"));
    let clean = crlf("OPTIONS sip:x.lab.test SIP/2.0\nCall-ID: abc\nContent-Length: 0\n\n");
    assert!(Message::parse(&clean).unwrap().diagnostics.is_empty());
    let start_line_only = b"OPTIONS sip:x.lab.test SIP/2.0\r\n\r\n";
    assert!(Message::parse(start_line_only).unwrap().diagnostics.is_empty());
}

// ---- header names ----

#[test]
fn every_compact_form_expands_to_its_long_name() {
    let pairs = [
        ("v", HeaderName::Via),
        ("f", HeaderName::From),
        ("t", HeaderName::To),
        ("i", HeaderName::CallId),
        ("m", HeaderName::Contact),
        ("l", HeaderName::ContentLength),
        ("k", HeaderName::Supported),
        ("c", HeaderName::ContentType),
        ("s", HeaderName::Subject),
        ("o", HeaderName::Event),
        ("e", HeaderName::ContentEncoding),
        ("u", HeaderName::AllowEvents),
        ("r", HeaderName::ReferTo),
        ("b", HeaderName::ReferredBy),
        ("x", HeaderName::SessionExpires),
        ("y", HeaderName::Identity),
    ];
    for (compact, long) in pairs {
        assert_eq!(HeaderName::parse(compact), long, "{compact}");
        assert_eq!(HeaderName::parse(&compact.to_uppercase()), long, "{compact} uppercased");
        assert_eq!(HeaderName::parse(long.as_str()), long);
        assert_eq!(HeaderName::parse(&long.as_str().to_lowercase()), long);
    }
    assert_eq!(HeaderName::parse("Call-Id"), HeaderName::CallId);
    assert_eq!(HeaderName::parse("X-Custom"), HeaderName::Other("X-Custom".into()));
    assert_eq!(HeaderName::parse("X-Custom").as_str(), "X-Custom");
}

#[test]
fn a_message_in_compact_forms_reads_like_its_long_form() {
    let m = parse(
        "INVITE sip:bob@proxy-a.lab.test SIP/2.0\n\
         v: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKcompact\n\
         f: \"Alice\" <sip:alice@proxy-a.lab.test>;tag=1\n\
         t: <sip:bob@proxy-a.lab.test>\n\
         i: compact@192.0.2.10\n\
         Max-Forwards: 70\n\
         CSeq: 1 INVITE\n\
         m: <sip:alice@192.0.2.10>\n\
         k: outbound, path\n\
         o: dialog\n\
         u: dialog, presence\n\
         s: hello\n\
         c: application/sdp\n\
         e: gzip\n\
         r: <sip:carol@proxy-a.lab.test>\n\
         b: <sip:alice@proxy-a.lab.test>\n\
         x: 1800\n\
         y: abc\n\
         l: 4\n\
         \n\
         v=0\n",
    );
    assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bKcompact"));
    assert_eq!(m.from().unwrap().tag(), Some("1"));
    assert_eq!(m.to().unwrap().tag(), None);
    assert_eq!(m.call_id().unwrap(), "compact@192.0.2.10");
    assert_eq!(m.contacts().unwrap().len(), 1);
    assert_eq!(m.supported(), vec!["outbound", "path"]);
    assert_eq!(m.event().unwrap().map(|(package, _)| package), Some("dialog".to_owned()));
    assert_eq!(m.header_values(&HeaderName::AllowEvents), vec!["dialog", "presence"]);
    assert_eq!(m.header(&HeaderName::Subject), Some("hello"));
    assert_eq!(m.header(&HeaderName::ContentType), Some("application/sdp"));
    assert_eq!(m.header(&HeaderName::ContentEncoding), Some("gzip"));
    assert_eq!(m.header(&HeaderName::ReferTo), Some("<sip:carol@proxy-a.lab.test>"));
    assert_eq!(m.header(&HeaderName::ReferredBy), Some("<sip:alice@proxy-a.lab.test>"));
    assert_eq!(m.header(&HeaderName::SessionExpires), Some("1800"));
    assert_eq!(m.header(&HeaderName::Identity), Some("abc"));
    assert_eq!(m.body, b"v=0\r");
}

#[test]
fn header_names_allow_whitespace_before_the_colon() {
    let m = parse("OPTIONS sip:x.lab.test SIP/2.0\nCall-ID  \t: spaced@x\nContent-Length: 0\n\n");
    assert_eq!(m.call_id().unwrap(), "spaced@x");
}

#[test]
fn a_header_line_without_a_colon_or_with_a_bad_name_is_malformed() {
    for line in ["Via SIP/2.0/UDP host", "Bad Name: x", "Na(me: x", ": no name"] {
        let bytes = crlf(&format!("OPTIONS sip:x.lab.test SIP/2.0\n{line}\nContent-Length: 0\n\n"));
        let err = Message::parse(&bytes).expect_err(line);
        assert_eq!(err.diagnostics[0].code, "header-line", "{line}");
    }
}

// ---- folding ----

#[test]
fn folded_lines_join_with_one_space() {
    let m = parse(
        "OPTIONS sip:x.lab.test SIP/2.0\n\
         Subject: I know you're there,\n\
         \x20     pick up the phone\n\
         \t   and talk to me!\n\
         Call-ID: fold@x\n\
         Content-Length: 0\n\n",
    );
    assert_eq!(m.header(&HeaderName::Subject), Some("I know you're there, pick up the phone and talk to me!"));
    assert_eq!(m.call_id().unwrap(), "fold@x");
}

#[test]
fn a_value_that_starts_on_a_folded_line_has_no_leading_space() {
    let m = parse("OPTIONS sip:x.lab.test SIP/2.0\nExpires:\n 3600\nMin-Expires: \n\t60\nContent-Length: 0\n\n");
    assert_eq!(m.header(&HeaderName::Expires), Some("3600"));
    assert_eq!(m.expires().unwrap(), Some(3600));
    assert_eq!(m.min_expires().unwrap(), Some(60));
}

#[test]
fn a_blank_folded_line_adds_nothing() {
    let m = parse("OPTIONS sip:x.lab.test SIP/2.0\nExpires: 3600\n \t \nContent-Length: 0\n\n");
    assert_eq!(m.expires().unwrap(), Some(3600));
}

#[test]
fn folding_inside_a_via_keeps_every_part() {
    let m = parse(
        "OPTIONS sip:x.lab.test SIP/2.0\n\
         Via: SIP/2.0/TCP 192.0.2.1:5060\n\
         \x20 ;branch=z9hG4bKfolded\n\
         \x20 ;received=192.0.2.99,\n\
         \x20SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKsecond\n\
         Content-Length: 0\n\n",
    );
    let vias = m.vias().unwrap();
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[0].branch(), Some("z9hG4bKfolded"));
    assert_eq!(vias[0].received(), Some("192.0.2.99"));
    assert_eq!(vias[1].branch(), Some("z9hG4bKsecond"));
}

#[test]
fn a_continuation_line_before_any_header_is_malformed() {
    let err = Message::parse(&crlf("OPTIONS sip:x.lab.test SIP/2.0\n folded: x\nContent-Length: 0\n\n")).unwrap_err();
    assert_eq!(err.diagnostics[0].code, "header-line");
}

// ---- multi-value headers ----

#[test]
fn list_headers_split_on_one_line_and_across_lines() {
    let m = parse(
        "INVITE sip:bob@proxy-a.lab.test SIP/2.0\n\
         Via: SIP/2.0/UDP a.lab.test;branch=z9hG4bK1, SIP/2.0/TCP b.lab.test;branch=z9hG4bK2\n\
         Via: SIP/2.0/TLS c.lab.test;branch=z9hG4bK3\n\
         Route: <sip:outbound-a.lab.test;lr>,<sip:proxy-a.lab.test;lr>\n\
         Route: <sip:proxy-b.lab.test;lr>\n\
         Record-Route: <sip:rr1.lab.test;lr>, <sip:rr2.lab.test;lr>\n\
         Record-Route: <sip:rr3.lab.test;lr>\n\
         Path: <sip:edge1.lab.test;lr;ob>, <sip:edge2.lab.test;lr>\n\
         Path: <sip:edge3.lab.test;lr>\n\
         Contact: <sip:a@192.0.2.1>, \"Bob, Jr.\" <sip:b@192.0.2.2>\n\
         Contact: <sip:c@192.0.2.3>\n\
         Content-Length: 0\n\n",
    );
    let hosts = |names: Vec<sip::NameAddr>| -> Vec<String> {
        names.iter().map(|n| n.uri.as_sip().unwrap().host.to_string()).collect()
    };
    let vias: Vec<String> = m.vias().unwrap().iter().map(|v| v.host.to_string()).collect();
    assert_eq!(vias, ["a.lab.test", "b.lab.test", "c.lab.test"]);
    assert_eq!(m.top_via().unwrap().transport, "UDP");
    assert_eq!(hosts(m.routes().unwrap()), ["outbound-a.lab.test", "proxy-a.lab.test", "proxy-b.lab.test"]);
    assert_eq!(hosts(m.record_routes().unwrap()), ["rr1.lab.test", "rr2.lab.test", "rr3.lab.test"]);
    assert_eq!(hosts(m.paths().unwrap()), ["edge1.lab.test", "edge2.lab.test", "edge3.lab.test"]);
    let contacts = m.contacts().unwrap();
    assert_eq!(contacts.len(), 3);
    assert_eq!(contacts[1].address().unwrap().display_name.as_deref(), Some("Bob, Jr."));
    assert_eq!(m.header_values(&HeaderName::Via).len(), 3);
}

#[test]
fn empty_list_items_are_dropped() {
    let m = parse("OPTIONS sip:x.lab.test SIP/2.0\nSupported: , outbound,,path ,\nContent-Length: 0\n\n");
    assert_eq!(m.supported(), vec!["outbound", "path"]);
}

#[test]
fn non_list_headers_are_not_split() {
    let m = parse("OPTIONS sip:x.lab.test SIP/2.0\nSubject: one, two\nContent-Length: 0\n\n");
    assert_eq!(m.header_values(&HeaderName::Subject), vec!["one, two"]);
}

// ---- body and Content-Length ----

#[test]
fn the_body_is_exactly_content_length_octets() {
    let m = parse("MESSAGE sip:x.lab.test SIP/2.0\nContent-Type: text/plain\nContent-Length: 5\n\nhello");
    assert_eq!(m.body, b"hello");
    assert!(m.diagnostics.is_empty(), "{:?}", m.diagnostics);
}

#[test]
fn octets_after_the_body_are_ignored_with_a_warning() {
    let m = parse("MESSAGE sip:x.lab.test SIP/2.0\nContent-Length: 2\n\nhello");
    assert_eq!(m.body, b"he");
    assert!(m.diagnostics.iter().any(|d| d.code == "trailing-octets"));
}

#[test]
fn without_content_length_a_datagram_body_runs_to_the_end() {
    let m = parse("MESSAGE sip:x.lab.test SIP/2.0\n\nhello");
    assert_eq!(m.body, b"hello");
}

#[test]
fn content_length_beyond_the_datagram_is_malformed() {
    let err = Message::parse(&crlf("MESSAGE sip:x.lab.test SIP/2.0\nContent-Length: 50\n\nhello")).unwrap_err();
    assert_eq!(err.diagnostics[0].code, "content-length");
}

#[test]
fn content_length_must_be_digits() {
    for value in ["-3", "+3", "3 3", "three", "", "99999999999999999999999999"] {
        let bytes = crlf(&format!("MESSAGE sip:x.lab.test SIP/2.0\nContent-Length: {value}\n\nhello"));
        let err = Message::parse(&bytes).expect_err(value);
        assert_eq!(err.diagnostics[0].code, "content-length", "{value:?}");
    }
}

#[test]
fn conflicting_content_lengths_are_malformed() {
    let bytes = crlf("MESSAGE sip:x.lab.test SIP/2.0\nContent-Length: 2\nl: 5\n\nhello");
    let err = Message::parse(&bytes).unwrap_err();
    assert_eq!(err.diagnostics[0].code, "content-length");
    let agreeing = crlf("MESSAGE sip:x.lab.test SIP/2.0\nContent-Length: 5\nl: 5\n\nhello");
    assert_eq!(Message::parse(&agreeing).unwrap().body, b"hello");
}

// ---- printer ----

#[test]
fn to_bytes_sets_content_length_to_the_body_length() {
    let mut m = Message::request(Method::Message, "sip:bob@proxy-a.lab.test");
    m.push_header(HeaderName::ContentLength, 999);
    m.push_header("l", 7);
    m.set_body("text/plain", "hello");
    let printed = String::from_utf8(m.to_bytes()).unwrap();
    assert_eq!(printed.matches("Content-Length").count(), 1, "{printed}");
    assert!(printed.contains("Content-Length: 5\r\n\r\nhello"), "{printed}");
    assert!(!printed.contains("999"));
    assert!(printed.starts_with("MESSAGE sip:bob@proxy-a.lab.test SIP/2.0\r\n"));
}

#[test]
fn to_bytes_adds_content_length_zero_without_a_body() {
    let printed = Message::response(200).to_bytes();
    assert_eq!(printed, b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n");
}

#[test]
fn reason_phrases_are_the_standard_phrases() {
    for (status, phrase) in [
        (100, "Trying"),
        (200, "OK"),
        (401, "Unauthorized"),
        (407, "Proxy Authentication Required"),
        (408, "Request Timeout"),
        (423, "Interval Too Brief"),
        (430, "Flow Failed"),
        (439, "First Hop Lacks Outbound Support"),
        (481, "Call/Transaction Does Not Exist"),
        (489, "Bad Event"),
        (503, "Service Unavailable"),
        (504, "Server Time-out"),
    ] {
        assert_eq!(reason_phrase(status), phrase);
    }
    let printed = Message::response(503).to_bytes();
    assert!(printed.starts_with(b"SIP/2.0 503 Service Unavailable\r\n"));
    assert_eq!(reason_phrase(499), "Client Error");
    assert_eq!(reason_phrase(699), "Global Failure");
}

#[test]
fn response_to_copies_the_transaction_headers_and_adds_a_to_tag() {
    let request = register_with("Contact: <sip:alice@192.0.2.10>\n");
    let response = Message::response_to(&request, 200, Some("srv1"));
    assert_eq!(response.status(), Some(200));
    assert_eq!(response.top_via().unwrap(), request.top_via().unwrap());
    assert_eq!(response.from().unwrap(), request.from().unwrap());
    assert_eq!(response.call_id().unwrap(), request.call_id().unwrap());
    assert_eq!(response.cseq().unwrap(), request.cseq().unwrap());
    assert_eq!(response.to().unwrap().tag(), Some("srv1"));
    assert!(response.contacts().unwrap().is_empty(), "Contact is not copied");
    let again = Message::response_to(&response, 200, Some("other"));
    assert_eq!(again.to().unwrap().tag(), Some("srv1"), "an existing To tag is kept");
}

#[test]
fn parse_of_print_round_trips() {
    let original = parse(
        "NOTIFY sip:alice@192.0.2.10:5070;transport=tcp;ob SIP/2.0\n\
         Via: SIP/2.0/TCP [2001:db8::5]:5060;branch=z9hG4bKnotify;received=[2001:db8::1]\n\
         v: SIP/2.0/UDP 192.0.2.20;branch=z9hG4bKsecond;rport=5062\n\
         Max-Forwards: 69\n\
         From: \"Proxy \\\"A\\\"\" <sip:alice@proxy-a.lab.test>;tag=n1\n\
         To: <sip:alice@proxy-a.lab.test>;tag=s1\n\
         Call-ID: sub1@192.0.2.10\n\
         CSeq: 7 NOTIFY\n\
         Contact: <sip:proxy-a.lab.test>\n\
         Event: dialog;id=7\n\
         Subscription-State: terminated;reason=deactivated\n\
         Content-Type: application/dialog-info+xml\n\
         Content-Length: 9\n\
         \n\
         <dialog/>",
    );
    let printed = original.to_bytes();
    let reparsed = Message::parse(&printed).unwrap();
    assert_eq!(reparsed.start, original.start);
    assert_eq!(reparsed.headers, original.headers);
    assert_eq!(reparsed.body, original.body);
    assert_eq!(reparsed.to_bytes(), printed, "printing is stable");
    assert_eq!(reparsed.from().unwrap().display_name.as_deref(), Some("Proxy \"A\""));
}

#[test]
fn built_messages_round_trip_through_the_typed_views() {
    use sip::{CSeq, Contact, Host, NameAddr, Scheme, SipUri, Via};
    let mut contact_uri = SipUri::new(Scheme::Sip, Some("alice"), Host::V4("192.0.2.10".parse().unwrap()), Some(5070));
    contact_uri.params.set("ob", None);
    let mut contact = NameAddr::new(contact_uri);
    contact.params.set_quoted("+sip.instance", "<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>");
    contact.params.set("reg-id", Some("1"));
    let mut m = Message::request(Method::Register, "sip:registrar-a.lab.test");
    m.push_header(
        HeaderName::Via,
        Via::new("udp", Host::V6("2001:db8::10".parse().unwrap()), Some(5060), "z9hG4bKbuilt"),
    )
    .push_header(
        HeaderName::From,
        NameAddr::new(SipUri::new(Scheme::Sip, Some("alice"), Host::Domain("proxy-a.lab.test".into()), None)),
    )
    .push_header(HeaderName::CSeq, CSeq { seq: 2, method: Method::Register })
    .push_header(HeaderName::Contact, Contact::Address(contact));
    let reparsed = Message::parse(&m.to_bytes()).unwrap();
    let via = reparsed.top_via().unwrap();
    assert_eq!(via.transport, "UDP");
    assert_eq!(via.host, Host::V6("2001:db8::10".parse().unwrap()));
    assert_eq!(via.branch(), Some("z9hG4bKbuilt"));
    let contacts = reparsed.contacts().unwrap();
    assert_eq!(contacts[0].instance(), Some("<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"));
    assert_eq!(contacts[0].reg_id(), Some(1));
    assert!(contacts[0].has_ob());
    assert_eq!(reparsed.cseq().unwrap(), CSeq { seq: 2, method: Method::Register });
}

#[test]
fn set_header_replaces_every_line_of_that_name() {
    let mut m = register_with("Supported: path\nk: outbound\n");
    m.set_header(HeaderName::Supported, "gruu");
    assert_eq!(m.supported(), vec!["gruu"]);
    m.remove_header(&HeaderName::Supported);
    assert!(m.supported().is_empty());
}

#[test]
fn set_header_at_replaces_one_line_and_is_printed() {
    let mut m = Message::parse(
        b"OPTIONS sip:x@lab.test SIP/2.0\r\nVia: SIP/2.0/UDP a:5060;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP b:5060;branch=z9hG4bK2\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    m.set_header_at(0, "SIP/2.0/UDP a:5060;branch=z9hG4bK1;received=127.0.0.2");
    m.set_header_at(99, "out of range: nothing happens");
    let printed = String::from_utf8(m.to_bytes()).unwrap();
    assert!(printed.contains("Via: SIP/2.0/UDP a:5060;branch=z9hG4bK1;received=127.0.0.2\r\nVia: SIP/2.0/UDP b:5060"));
    assert_eq!(m.headers.len(), 3);
}
