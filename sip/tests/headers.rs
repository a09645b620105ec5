//! Typed views of the simpler headers: CSeq, Call-ID, From/To tags, Expires, option tags, Flow-Timer, Event, Subscription-State, Retry-After.

mod support;

use sip::{CSeq, Error, HeaderName, Method, RetryAfter, SubscriptionState};
use support::register_with;

#[test]
fn cseq_gives_number_and_method() {
    assert_eq!(register_with("").cseq().unwrap(), CSeq { seq: 314159, method: Method::Register });
    assert_eq!(CSeq::parse("  4711 \t SUBSCRIBE ").unwrap(), CSeq { seq: 4711, method: Method::Subscribe });
    assert_eq!(CSeq::parse("0 FOO").unwrap().method, Method::Other("FOO".into()));
    assert_eq!(CSeq { seq: 9, method: Method::Notify }.to_string(), "9 NOTIFY");
}

#[test]
fn bad_cseqs_are_errors() {
    for value in ["REGISTER", "1", "x REGISTER", "-1 REGISTER", "+1 REGISTER", "1 REG(ISTER", "4294967296 INVITE", ""] {
        assert!(CSeq::parse(value).is_err(), "{value:?}");
    }
}

#[test]
fn missing_mandatory_headers_are_reported_by_name() {
    let m = sip::Message::parse(b"OPTIONS sip:x.lab.test SIP/2.0\r\n\r\n").unwrap();
    assert_eq!(m.cseq(), Err(Error::MissingHeader { header: "CSeq" }));
    assert_eq!(m.call_id(), Err(Error::MissingHeader { header: "Call-ID" }));
    assert_eq!(m.from(), Err(Error::MissingHeader { header: "From" }));
    assert_eq!(m.to(), Err(Error::MissingHeader { header: "To" }));
    assert_eq!(m.top_via(), Err(Error::MissingHeader { header: "Via" }));
    assert_eq!(m.vias(), Ok(vec![]));
    assert_eq!(m.contacts(), Ok(vec![]));
    assert_eq!(m.expires(), Ok(None));
}

#[test]
fn call_id_is_one_word() {
    assert_eq!(register_with("").call_id().unwrap(), "a84b4c76e66710@192.0.2.10");
    let mut m = register_with("");
    m.set_header(HeaderName::CallId, "has space");
    assert!(m.call_id().is_err());
    m.set_header(HeaderName::CallId, "");
    assert!(m.call_id().is_err());
}

#[test]
fn from_and_to_tags() {
    let m = register_with("");
    assert_eq!(m.from().unwrap().tag(), Some("1928301774"));
    assert_eq!(m.to().unwrap().tag(), None);
    let mut m = m;
    m.set_header(HeaderName::To, "Bob <sip:bob@proxy-a.lab.test> ; tag = a6c85cf");
    assert_eq!(m.to().unwrap().tag(), Some("a6c85cf"));
    assert_eq!(m.to().unwrap().display_name.as_deref(), Some("Bob"));
    m.set_header(HeaderName::To, "sip:bob@proxy-a.lab.test;tag=addrspec");
    assert_eq!(m.to().unwrap().tag(), Some("addrspec"), "in addr-spec form parameters belong to the header");
    assert!(m.to().unwrap().uri.as_sip().unwrap().params.is_empty());
}

#[test]
fn expires_and_min_expires() {
    let m = register_with("Expires: 3600\nMin-Expires: 60\n");
    assert_eq!(m.expires().unwrap(), Some(3600));
    assert_eq!(m.min_expires().unwrap(), Some(60));
    let m = register_with("Expires: 0\n");
    assert_eq!(m.expires().unwrap(), Some(0));
    for bad in ["soon", "-1", "+5", "36 00"] {
        let m = register_with(&format!("Expires: {bad}\nMin-Expires: {bad}\n"));
        assert!(m.expires().is_err(), "{bad:?}");
        assert!(m.min_expires().is_err(), "{bad:?}");
    }
}

#[test]
fn max_forwards() {
    assert_eq!(register_with("").max_forwards().unwrap(), Some(70));
}

#[test]
fn supported_require_and_proxy_require_option_tags() {
    let m = register_with("Supported: path, outbound\nk: gruu\nRequire: outbound\nProxy-Require: sec-agree,foo\n");
    assert_eq!(m.supported(), vec!["path", "outbound", "gruu"]);
    assert_eq!(m.require(), vec!["outbound"]);
    assert_eq!(m.proxy_require(), vec!["sec-agree", "foo"]);
    assert!(m.has_option_tag(&HeaderName::Supported, "OUTBOUND"), "option tags compare case-insensitively");
    assert!(m.has_option_tag(&HeaderName::Supported, "gruu"));
    assert!(!m.has_option_tag(&HeaderName::Require, "path"));
    assert!(!m.has_option_tag(&HeaderName::ProxyRequire, "sec"));
}

#[test]
fn flow_timer() {
    assert_eq!(register_with("Flow-Timer: 120\n").flow_timer().unwrap(), Some(120));
    assert_eq!(register_with("").flow_timer().unwrap(), None);
    assert!(register_with("Flow-Timer: two minutes\n").flow_timer().is_err());
}

#[test]
fn event_package_and_parameters() {
    let m = register_with("Event: dialog ; id=42;call-id=\"a;b\"\n");
    let (package, params) = m.event().unwrap().unwrap();
    assert_eq!(package, "dialog");
    assert_eq!(params.value("id"), Some("42"));
    assert_eq!(params.value("call-id"), Some("a;b"));
    let (package, params) = register_with("o: presence.winfo\n").event().unwrap().unwrap();
    assert_eq!(package, "presence.winfo");
    assert!(params.is_empty());
    assert_eq!(register_with("").event().unwrap(), None);
    assert!(register_with("Event: bad package\n").event().is_err());
    assert!(register_with("Event: \n").event().is_err());
}

#[test]
fn subscription_state() {
    let active = SubscriptionState::parse("Active;expires=600").unwrap();
    assert_eq!(active.state, "active");
    assert_eq!(active.expires(), Some(600));
    assert_eq!(active.reason(), None);
    let terminated = SubscriptionState::parse("terminated ;reason=deactivated").unwrap();
    assert_eq!(terminated.state, "terminated");
    assert_eq!(terminated.reason(), Some("deactivated"));
    let pending = SubscriptionState::parse("pending").unwrap();
    assert_eq!(pending.state, "pending");
    assert!(SubscriptionState::parse("").is_err());
    assert!(SubscriptionState::parse("act ive").is_err());
    let m = register_with("Subscription-State: terminated;reason=timeout;retry-after=30\n");
    let state = m.subscription_state().unwrap().unwrap();
    assert_eq!(state.reason(), Some("timeout"));
    assert_eq!(state.params.value("retry-after"), Some("30"));
}

#[test]
fn retry_after_with_comment_and_duration() {
    let value = RetryAfter::parse("18000;duration=3600").unwrap();
    assert_eq!(value.seconds, 18000);
    assert_eq!(value.comment, None);
    assert_eq!(value.params.value("duration"), Some("3600"));
    assert_eq!(value.duration(), Some(3600));

    let value = RetryAfter::parse("120 (I'm in a meeting)").unwrap();
    assert_eq!(value.seconds, 120);
    assert_eq!(value.comment.as_deref(), Some("I'm in a meeting"));
    assert_eq!(value.duration(), None);

    let value = RetryAfter::parse("120 (maintenance (planned)) ;duration=60").unwrap();
    assert_eq!(value.comment.as_deref(), Some("maintenance (planned)"));
    assert_eq!(value.duration(), Some(60));

    let value = RetryAfter::parse("5 (a) ;note=\"x)\"").unwrap();
    assert_eq!(value.comment.as_deref(), Some("a"), "the comment ends at its own closing parenthesis");
    assert_eq!(value.params.value("note"), Some("x)"));

    let m = support::parse("SIP/2.0 503 Service Unavailable\nRetry-After: 30\nContent-Length: 0\n\n");
    assert_eq!(m.retry_after().unwrap().unwrap().seconds, 30);
}

#[test]
fn bad_retry_afters_are_errors() {
    for value in ["", "soon", "30 junk", "30 (unclosed", "30 (a))", "-5"] {
        assert!(RetryAfter::parse(value).is_err(), "{value:?}");
    }
}
