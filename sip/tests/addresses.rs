//! URIs (sip, sips, tel), name-addr values with display names, and Contact with its RFC 3261 and RFC 5626 parameters.

mod support;

use assert_matches::assert_matches;
use sip::{Contact, Host, NameAddr, Scheme, Uri};

fn sip_uri(text: &str) -> sip::SipUri {
    match Uri::parse(text) {
        Ok(Uri::Sip(uri)) => uri,
        other => panic!("{text:?} gave {other:?}"),
    }
}

// ---- URIs ----

#[test]
fn sip_and_sips_uris() {
    let u = sip_uri("sip:alice@proxy-a.lab.test");
    assert_eq!(u.scheme, Scheme::Sip);
    assert_eq!(u.user.as_deref(), Some("alice"));
    assert_eq!(u.host, Host::Domain("proxy-a.lab.test".into()));
    assert_eq!(u.port, None);
    let u = sip_uri("SIPS:bob:secret@192.0.2.4:5061;transport=tcp?subject=hi");
    assert_eq!(u.scheme, Scheme::Sips);
    assert_eq!(u.user.as_deref(), Some("bob"));
    assert_eq!(u.password.as_deref(), Some("secret"));
    assert_eq!(u.host, Host::V4("192.0.2.4".parse().unwrap()));
    assert_eq!(u.port, Some(5061));
    assert_eq!(u.params.value("transport"), Some("tcp"));
    assert_eq!(u.headers.as_deref(), Some("subject=hi"));
    assert_eq!(u.address_of_record(), "sips:bob@192.0.2.4");
    let u = sip_uri("sip:registrar.lab.test");
    assert_eq!(u.user, None);
    assert_eq!(u.address_of_record(), "sip:registrar.lab.test");
}

#[test]
fn ipv6_hosts_with_and_without_port() {
    let u = sip_uri("sip:alice@[2001:db8::10]:5070;transport=udp");
    assert_eq!(u.host, Host::V6("2001:db8::10".parse().unwrap()));
    assert_eq!(u.port, Some(5070));
    assert_eq!(u.params.value("transport"), Some("udp"));
    assert_eq!(u.to_string(), "sip:alice@[2001:db8::10]:5070;transport=udp");
    let u = sip_uri("sip:[::1]");
    assert_eq!(u.host, Host::V6("::1".parse().unwrap()));
    assert_eq!(u.port, None);
    assert!(Uri::parse("sip:alice@2001:db8::10").is_err(), "an IPv6 host must be bracketed");
    assert!(Uri::parse("sip:alice@[2001:db8::10").is_err());
    assert!(Uri::parse("sip:alice@[not-v6]").is_err());
}

#[test]
fn user_parts_with_dots_and_escapes() {
    let u = sip_uri("sip:first.last@proxy-a.lab.test");
    assert_eq!(u.user.as_deref(), Some("first.last"));
    let u = sip_uri("sip:sips%3Auser%40example.com@proxy-a.lab.test;transport=tcp");
    assert_eq!(u.user.as_deref(), Some("sips%3Auser%40example.com"), "escapes are kept as written");
    let u = sip_uri("sip:+1-212-555-1212;phone-context=lab.test@gw.lab.test;user=phone");
    assert_eq!(u.user.as_deref(), Some("+1-212-555-1212;phone-context=lab.test"));
    assert_eq!(u.params.value("user"), Some("phone"));
    assert!(Uri::parse("sip:bad%4@proxy-a.lab.test").is_err(), "a truncated escape");
    assert!(Uri::parse("sip:bad%zz@proxy-a.lab.test").is_err());
    assert!(Uri::parse("sip:@proxy-a.lab.test").is_err(), "an empty user");
}

#[test]
fn uri_params_valueless_and_with_quoted_values() {
    let u = sip_uri("sip:alice@192.0.2.10;ob;lr;maddr=239.255.255.1");
    assert!(u.params.has("ob"));
    assert!(u.params.has("LR"), "parameter names compare case-insensitively");
    assert_eq!(u.params.value("lr"), None);
    assert_eq!(u.params.value("maddr"), Some("239.255.255.1"));
    let u = sip_uri("sip:alice@192.0.2.10;+sip.instance=\"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>\";ob");
    assert_eq!(u.params.value("+sip.instance"), Some("<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>"));
    assert!(u.params.has("ob"));
    assert_eq!(Uri::parse(&u.to_string()).unwrap(), Uri::Sip(u));
}

#[test]
fn tel_and_other_schemes() {
    let tel = Uri::parse("tel:+1-201-555-0123;phone-context=lab.test").unwrap();
    assert_matches!(&tel, Uri::Tel { number, params } if number == "+1-201-555-0123" && params.value("phone-context") == Some("lab.test"));
    assert_eq!(tel.to_string(), "tel:+1-201-555-0123;phone-context=lab.test");
    assert!(tel.as_sip().is_none());
    assert!(Uri::parse("tel:").is_err());
    assert_eq!(Uri::parse("urn:service:sos").unwrap(), Uri::Other("urn:service:sos".into()));
    assert!(Uri::parse("no-scheme").is_err());
    assert!(Uri::parse("1sip:x").is_err());
    assert!(Uri::parse("sip:a b@host").is_err());
}

#[test]
fn bad_hosts_and_ports() {
    for text in [
        "sip:alice@",
        "sip:alice@-bad.test",
        "sip:alice@host:99999",
        "sip:alice@host:",
        "sip:alice@1.2.3.999",
        "sip:alice@ho_st",
    ] {
        assert!(Uri::parse(text).is_err(), "{text:?}");
    }
}

#[test]
fn host_matching_follows_rfc3261() {
    let a = Host::Domain("Proxy-A.Lab.Test.".into());
    assert!(a.matches(&Host::Domain("proxy-a.lab.test".into())));
    assert!(!a.matches(&Host::Domain("proxy-b.lab.test".into())));
    assert!(Host::V6("2001:db8::1".parse().unwrap()).matches(&Host::parse("[2001:0db8:0::1]").unwrap()));
}

// ---- name-addr ----

#[test]
fn quoted_display_names_with_commas_and_escaped_quotes() {
    let n = NameAddr::parse(r#""Doe, John \"JD\"" <sip:jd@proxy-a.lab.test>;tag=x"#).unwrap();
    assert_eq!(n.display_name.as_deref(), Some(r#"Doe, John "JD""#));
    assert_eq!(n.tag(), Some("x"));
    assert_eq!(NameAddr::parse(&n.to_string()).unwrap(), n);
    let n = NameAddr::parse(r#""<not a uri>" <sip:x@y.test>"#).unwrap();
    assert_eq!(n.display_name.as_deref(), Some("<not a uri>"));
    assert_eq!(n.uri.to_string(), "sip:x@y.test");
}

#[test]
fn token_display_names_and_bare_angle_brackets() {
    let n = NameAddr::parse("Alice Smith <sip:alice@proxy-a.lab.test>").unwrap();
    assert_eq!(n.display_name.as_deref(), Some("Alice Smith"));
    let n = NameAddr::parse("<sip:alice@proxy-a.lab.test>").unwrap();
    assert_eq!(n.display_name, None);
    let n = NameAddr::parse("\"\" <sip:alice@proxy-a.lab.test>").unwrap();
    assert_eq!(n.display_name.as_deref(), Some(""));
}

#[test]
fn bad_name_addrs_are_errors() {
    for value in [
        "\"unclosed <sip:a@b.test>",
        "<sip:a@b.test",
        "Bad@Name <sip:a@b.test>",
        "<sip:a@b.test> junk",
        "<sip:a@b.test>;",
        "",
    ] {
        assert!(NameAddr::parse(value).is_err(), "{value:?}");
    }
}

// ---- Contact ----

#[test]
fn star_contact() {
    assert_eq!(Contact::parse("*").unwrap(), Contact::Star);
    assert_eq!(Contact::parse(" * ").unwrap(), Contact::Star);
    let m = support::register_with("Contact: *\nExpires: 0\n");
    assert_eq!(m.contacts().unwrap(), vec![Contact::Star]);
    assert_eq!(Contact::Star.to_string(), "*");
    assert_eq!(Contact::Star.expires(), None);
    assert!(!Contact::Star.has_ob());
}

#[test]
fn outbound_contact_parameters() {
    let c = Contact::parse(
        "<sip:alice@192.0.2.10:5070;transport=tcp;ob>;expires=3600;q=0.7;\
         +sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1",
    )
    .unwrap();
    assert_eq!(c.expires(), Some(3600));
    assert_eq!(c.q(), Some(0.7));
    assert_eq!(c.instance(), Some("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"));
    assert_eq!(c.reg_id(), Some(1));
    assert!(c.has_ob());
    let reprinted = Contact::parse(&c.to_string()).unwrap();
    assert_eq!(reprinted, c);
    assert!(c.to_string().contains("+sip.instance=\"<urn:uuid:"), "{c}");
}

#[test]
fn ob_on_the_header_is_not_ob_on_the_uri() {
    let c = Contact::parse("<sip:alice@192.0.2.10>;ob").unwrap();
    assert!(!c.has_ob(), "RFC 5626 puts ;ob in the Contact URI");
}

#[test]
fn addr_spec_contact_with_instance() {
    let c = Contact::parse("sip:alice@192.0.2.10;+sip.instance=\"<urn:uuid:1234>\";reg-id=2;expires=60").unwrap();
    assert_eq!(c.instance(), Some("<urn:uuid:1234>"));
    assert_eq!(c.reg_id(), Some(2));
    assert_eq!(c.expires(), Some(60));
}

#[test]
fn q_values_follow_the_qvalue_grammar() {
    for (value, q) in
        [("1", Some(1.0)), ("0", Some(0.0)), ("0.5", Some(0.5)), ("1.000", Some(1.0)), ("0.123", Some(0.123))]
    {
        assert_eq!(Contact::parse(&format!("<sip:a@b.test>;q={value}")).unwrap().q(), q, "{value}");
    }
    for value in ["NaN", "inf", "2", "1.5", "-0.5", "0.1234", ".5"] {
        assert_eq!(Contact::parse(&format!("<sip:a@b.test>;q={value}")).unwrap().q(), None, "{value}");
    }
}

#[test]
fn several_contacts_in_one_header() {
    let m = support::parse(
        "SIP/2.0 200 OK\n\
         Contact: <sip:alice@192.0.2.10;ob>;expires=3600;+sip.instance=\"<urn:uuid:aaaa>\";reg-id=1, \
         \"Desk, Phone\" <sip:alice@192.0.2.11>;expires=1200;+sip.instance=\"<urn:uuid:bbbb>\";reg-id=2,<sip:alice@[2001:db8::12]:5062>;expires=60\n\
         Content-Length: 0\n\n",
    );
    let contacts = m.contacts().unwrap();
    assert_eq!(contacts.len(), 3);
    assert_eq!(contacts.iter().map(Contact::expires).collect::<Vec<_>>(), [Some(3600), Some(1200), Some(60)]);
    assert_eq!(contacts.iter().map(Contact::reg_id).collect::<Vec<_>>(), [Some(1), Some(2), None]);
    assert_eq!(contacts[1].instance(), Some("<urn:uuid:bbbb>"));
    assert_eq!(contacts[1].address().unwrap().display_name.as_deref(), Some("Desk, Phone"));
    assert_eq!(contacts[2].address().unwrap().uri.as_sip().unwrap().port, Some(5062));
}

#[test]
fn contact_with_bad_params_is_an_error() {
    for value in ["<sip:a@b.test>;expires", "<sip:a@b.test>;+sip.instance=\"<urn:uuid:1>", "<sip:a@b.test>;=1"] {
        let c = Contact::parse(value);
        if value.ends_with("expires") {
            assert_eq!(c.unwrap().expires(), None, "a valueless expires has no number");
        } else {
            assert!(c.is_err(), "{value:?}");
        }
    }
}
