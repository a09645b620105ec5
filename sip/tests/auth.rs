//! Digest authentication: challenge and credential parsing and printing, the response hash, verification, nonce counts.

mod support;

use sip::{Challenge, Credentials, DigestInput, HeaderName, Message, digest_response};

/// RFC 2617 §3.5: the worked example (its method is GET, its algorithm MD5, its qop auth).
const RFC2617_AUTHORIZATION: &str = r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41""#;

#[test]
fn rfc2617_worked_example_response() {
    let response = digest_response(&DigestInput {
        username: "Mufasa",
        realm: "testrealm@host.com",
        password: "Circle Of Life",
        method: "GET",
        uri: "/dir/index.html",
        nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        qop: Some("auth"),
        nc: Some("00000001"),
        cnonce: Some("0a4f113b"),
    });
    assert_eq!(response, "6629fae49393a05397450978507c4ef1");
}

#[test]
fn rfc2617_worked_example_verifies() {
    let credentials = Credentials::parse(RFC2617_AUTHORIZATION).unwrap();
    assert!(credentials.verify("GET", "Circle Of Life"));
    assert!(!credentials.verify("GET", "circle of life"), "a wrong password fails");
    assert!(!credentials.verify("POST", "Circle Of Life"), "another method fails");
    assert_eq!(credentials.nonce_count(), Some(1));
}

/// A SIP REGISTER answer without qop (RFC 2069 compatible form), computed independently:
/// HA1 = MD5("bob:biloxi.com:zanzibar"), HA2 = MD5("REGISTER:sip:biloxi.com"),
/// response = MD5(HA1 ":" nonce ":" HA2).
#[test]
fn sip_register_response_without_qop() {
    let input = DigestInput {
        username: "bob",
        realm: "biloxi.com",
        password: "zanzibar",
        method: "REGISTER",
        uri: "sip:biloxi.com",
        nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        qop: None,
        nc: None,
        cnonce: None,
    };
    let ha1 = md5_hex("bob:biloxi.com:zanzibar");
    let ha2 = md5_hex("REGISTER:sip:biloxi.com");
    let expected = md5_hex(&format!("{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:{ha2}"));
    assert_eq!(digest_response(&input), expected);
    assert_eq!(ha1, "12af60467a33e8518da5c68bbff12b11", "HA1 as `md5sum` computes it");
}

/// A hand-rolled MD5 check value, so the test does not trust the code under test for its hashing.
fn md5_hex(input: &str) -> String {
    use md5_reference::digest;
    digest(input.as_bytes())
}

mod md5_reference {
    //! A minimal MD5 (RFC 1321) used only as an independent oracle for the digest tests.
    pub fn digest(input: &[u8]) -> String {
        const S: [u32; 64] = [
            7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9,
            14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10,
            15, 21, 6, 10, 15, 21,
        ];
        let k: Vec<u32> = (0..64).map(|i| ((i as f64 + 1.0).sin().abs() * 4294967296.0) as u32).collect();
        let (mut a0, mut b0, mut c0, mut d0) = (0x67452301u32, 0xefcdab89u32, 0x98badcfeu32, 0x10325476u32);
        let mut message = input.to_vec();
        let bit_len = (input.len() as u64).wrapping_mul(8);
        message.push(0x80);
        while message.len() % 64 != 56 {
            message.push(0);
        }
        message.extend_from_slice(&bit_len.to_le_bytes());
        for chunk in message.chunks(64) {
            let m: Vec<u32> = chunk.chunks(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect();
            let (mut a, mut b, mut c, mut d) = (a0, b0, c0, d0);
            for i in 0..64 {
                let (f, g) = match i / 16 {
                    0 => ((b & c) | (!b & d), i),
                    1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                    2 => (b ^ c ^ d, (3 * i + 5) % 16),
                    _ => (c ^ (b | !d), (7 * i) % 16),
                };
                let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
                a = d;
                d = c;
                c = b;
                b = b.wrapping_add(f.rotate_left(S[i]));
            }
            a0 = a0.wrapping_add(a);
            b0 = b0.wrapping_add(b);
            c0 = c0.wrapping_add(c);
            d0 = d0.wrapping_add(d);
        }
        [a0, b0, c0, d0].iter().flat_map(|w| w.to_le_bytes()).map(|b| format!("{b:02x}")).collect()
    }
}

#[test]
fn reference_md5_matches_rfc1321_test_suite() {
    assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
    assert_eq!(md5_hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
    assert_eq!(md5_hex("message digest"), "f96b697d7cb7938d525a2f31aaf161d0");
}

#[test]
fn nonce_count_is_hexadecimal() {
    let with_nc = |nc: &str| Credentials::parse(&format!("Digest username=\"a\", nc={nc}")).unwrap();
    assert_eq!(with_nc("0000000a").nonce_count(), Some(10));
    assert_eq!(with_nc("00000010").nonce_count(), Some(16));
    assert_eq!(with_nc("000000FF").nonce_count(), Some(255));
    assert_eq!(with_nc("zz").nonce_count(), None);
    assert_eq!(Credentials::parse("Digest username=\"a\"").unwrap().nonce_count(), None);
}

#[test]
fn challenge_parses_and_prints_round_trip() {
    let text = r#"Digest realm="lab.test", nonce="84a4cc6f3082121f32b42a2187831a9e", opaque="5ccc", algorithm=MD5, qop="auth,auth-int", stale=FALSE"#;
    let challenge = Challenge::parse(text).unwrap();
    assert!(challenge.is_digest());
    assert_eq!(challenge.realm(), Some("lab.test"));
    assert_eq!(challenge.nonce(), Some("84a4cc6f3082121f32b42a2187831a9e"));
    assert_eq!(challenge.opaque(), Some("5ccc"));
    assert!(challenge.offers_qop_auth());
    assert_eq!(challenge.params.value("stale"), Some("FALSE"));
    assert_eq!(challenge.to_string(), text);
    assert_eq!(Challenge::parse(&challenge.to_string()).unwrap(), challenge);
}

#[test]
fn challenge_without_qop_auth() {
    let challenge = Challenge::parse(r#"Digest realm="lab.test",nonce="n",qop="auth-int""#).unwrap();
    assert!(!challenge.offers_qop_auth());
    let challenge = Challenge::parse(r#"Digest realm="lab.test", nonce="n""#).unwrap();
    assert!(!challenge.offers_qop_auth());
}

#[test]
fn credentials_parse_and_print_round_trip() {
    let credentials = Credentials::parse(RFC2617_AUTHORIZATION).unwrap();
    assert_eq!(credentials.scheme, "Digest");
    assert_eq!(credentials.params.value("username"), Some("Mufasa"));
    assert_eq!(credentials.params.value("uri"), Some("/dir/index.html"));
    assert_eq!(credentials.to_string(), RFC2617_AUTHORIZATION);
    assert_eq!(Credentials::parse(&credentials.to_string()).unwrap(), credentials);
}

#[test]
fn built_challenge_and_answer_verify() {
    let challenge = Challenge::digest("lab.test", "nonce123", Some("op4que"), true);
    let printed = challenge.to_string();
    assert_eq!(printed, r#"Digest realm="lab.test", nonce="nonce123", opaque="op4que", algorithm=MD5, qop="auth""#);
    let answer =
        Credentials::answer(&challenge, "alice", "secret", "REGISTER", "sip:registrar-a.lab.test", "c0ffee", 10);
    assert_eq!(answer.params.value("nc"), Some("0000000a"));
    assert_eq!(answer.nonce_count(), Some(10));
    assert_eq!(answer.params.value("opaque"), Some("op4que"));
    let reparsed = Credentials::parse(&answer.to_string()).unwrap();
    assert!(reparsed.verify("REGISTER", "secret"));
    assert!(!reparsed.verify("REGISTER", "wrong"));
    assert!(!reparsed.verify("INVITE", "secret"));

    let plain = Challenge::digest("lab.test", "n2", None, false);
    let answer = Credentials::answer(&plain, "alice", "secret", "SUBSCRIBE", "sip:proxy-a.lab.test", "c", 1);
    assert_eq!(answer.params.value("qop"), None);
    assert_eq!(answer.params.value("nc"), None);
    assert!(answer.verify("SUBSCRIBE", "secret"));
}

#[test]
fn verify_refuses_incomplete_credentials() {
    let credentials =
        Credentials::parse(r#"Digest username="alice", realm="lab.test", nonce="n", uri="sip:x""#).unwrap();
    assert!(!credentials.verify("REGISTER", "secret"), "no response parameter");
}

#[test]
fn challenges_and_credentials_from_messages() {
    let unauthorized = support::parse(
        "SIP/2.0 401 Unauthorized\n\
         WWW-Authenticate: Digest realm=\"lab.test\", nonce=\"a\", qop=\"auth\"\n\
         WWW-Authenticate: Digest realm=\"other.test\", nonce=\"b\"\n\
         Content-Length: 0\n\n",
    );
    let challenges = unauthorized.challenges().unwrap();
    assert_eq!(challenges.iter().map(|c| c.realm().unwrap()).collect::<Vec<_>>(), ["lab.test", "other.test"]);
    let proxy = support::parse(
        "SIP/2.0 407 Proxy Authentication Required\nProxy-Authenticate: Digest realm=\"p.test\", nonce=\"c\"\nContent-Length: 0\n\n",
    );
    assert_eq!(proxy.challenges().unwrap()[0].realm(), Some("p.test"));

    let mut request = Message::request(sip::Method::Register, "sip:registrar-a.lab.test");
    let answer = Credentials::answer(&challenges[0], "alice", "pw", "REGISTER", "sip:registrar-a.lab.test", "cn", 1);
    request.push_header(HeaderName::Authorization, &answer);
    let request = Message::parse(&request.to_bytes()).unwrap();
    assert!(request.credentials(false).unwrap().unwrap().verify("REGISTER", "pw"));
    assert_eq!(request.credentials(true).unwrap(), None);
}

#[test]
fn bad_auth_headers_are_errors() {
    for value in ["", "Digest realm=\"unclosed", "Digest realm=\"a\", =b", "Di(gest realm=\"a\""] {
        assert!(Challenge::parse(value).is_err(), "{value:?}");
        assert!(Credentials::parse(value).is_err(), "{value:?}");
    }
}
