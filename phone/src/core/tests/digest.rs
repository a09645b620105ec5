//! Digest authentication on the wire: the strongest algorithm offered (RFC 7616, RFC 8760), unknown ones refused, the nonce reused with `nc` incremented on refreshes, and `stale=true`.

use sha2::{Digest, Sha256};
use sip::{Challenge, Credentials, HeaderName, Message};

use super::{REGISTRAR_A, ROW_1_CFG, TestPhone, header};
use crate::core::*;
use crate::quirks::Quirks;

fn challenge_with(params: &str) -> impl FnOnce(&mut Message) {
    let challenge = Challenge::parse(&format!("Digest realm=\"lab.test\", {params}")).unwrap();
    move |r: &mut Message| {
        r.push_header(HeaderName::WwwAuthenticate, challenge);
    }
}

fn sha256_hex(input: &str) -> String {
    Sha256::digest(input.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 `response` the credentials should carry for `method` and `password` (RFC 7616 §3.4.1).
fn expected_sha256_response(credentials: &Credentials, method: &str, password: &str) -> String {
    let p = |name| credentials.params.value(name).unwrap();
    let ha1 = sha256_hex(&format!("{}:{}:{password}", p("username"), p("realm")));
    let ha2 = sha256_hex(&format!("{method}:{}", p("uri")));
    sha256_hex(&format!("{ha1}:{}:{}:{}:{}:{ha2}", p("nonce"), p("nc"), p("cnonce"), p("qop")))
}

fn authorization(message: &Message) -> Credentials {
    message.credentials(false).unwrap().expect("Authorization")
}

#[test]
fn the_strongest_offered_algorithm_is_answered_whatever_the_order() {
    let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none());
    let (flow, first) = phone.expect_register_to(REGISTRAR_A);
    phone.answer(flow, &first, 401, |r| {
        challenge_with("nonce=\"md5-nonce\", algorithm=MD5, qop=\"auth\"")(r);
        challenge_with("nonce=\"sha-nonce\", algorithm=SHA-256, qop=\"auth\"")(r);
    });
    let (_, second) = phone.expect_register_to(REGISTRAR_A);
    let credentials = authorization(&second);
    assert_eq!(credentials.params.value("algorithm"), Some("SHA-256"));
    assert_eq!(credentials.params.value("nonce"), Some("sha-nonce"));
    assert_eq!(credentials.params.value("nc"), Some("00000001"));
    assert_eq!(
        credentials.params.value("response"),
        Some(expected_sha256_response(&credentials, "REGISTER", "secret").as_str())
    );
}

#[test]
fn an_md5_challenge_without_algorithm_is_answered_with_md5() {
    let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none());
    let (flow, first) = phone.expect_register_to(REGISTRAR_A);
    phone.answer(flow, &first, 401, challenge_with("nonce=\"n1\", qop=\"auth\""));
    let (_, second) = phone.expect_register_to(REGISTRAR_A);
    let credentials = authorization(&second);
    assert_eq!(credentials.params.value("algorithm"), Some("MD5"));
    assert!(credentials.verify("REGISTER", "secret"));
}

#[test]
fn a_challenge_with_only_an_unknown_algorithm_ends_the_request_without_failover() {
    let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none());
    let (flow, first) = phone.expect_register_to(REGISTRAR_A);
    phone.answer(flow, &first, 401, challenge_with("nonce=\"n1\", algorithm=SHA-512-256, qop=\"auth\""));
    phone.assert_quiet();
    assert_eq!(
        phone.state(),
        RegistrationState::WaitingToRetry { registrar: Role::Primary, at: phone.start + super::ms(2_000) },
        "the registrar answered: it is not down, so no failover; the line retries after its retry timer"
    );
}

#[test]
fn a_refresh_reuses_the_nonce_with_nc_incremented_instead_of_a_401_round_trip() {
    let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none());
    let (flow, first) = phone.expect_register_to(REGISTRAR_A);
    phone.answer(flow, &first, 401, challenge_with("nonce=\"n1\", algorithm=MD5, qop=\"auth\""));
    let (_, second) = phone.expect_register_to(REGISTRAR_A);
    phone.ok(flow, &second);
    for (round, nc) in [(1, "00000002"), (2, "00000003")] {
        assert_eq!(phone.fire_next_timer(), TimerId::RegistrationRefresh(1), "round {round}");
        let (_, refresh) = phone.expect_register_to(REGISTRAR_A);
        let credentials = authorization(&refresh);
        assert_eq!(credentials.params.value("nonce"), Some("n1"), "round {round}");
        assert_eq!(credentials.params.value("nc"), Some(nc), "round {round}");
        assert_ne!(credentials.params.value("cnonce"), authorization(&second).params.value("cnonce"));
        assert!(credentials.verify("REGISTER", "secret"), "round {round}");
        assert_eq!(header(&refresh, HeaderName::CSeq), format!("{} REGISTER", 2 + round));
        phone.ok(flow, &refresh);
    }
}

#[test]
fn a_stale_nonce_is_answered_without_counting_as_refused_credentials() {
    let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none());
    let (flow, first) = phone.expect_register_to(REGISTRAR_A);
    phone.answer(flow, &first, 401, challenge_with("nonce=\"n1\", qop=\"auth\""));
    let (_, second) = phone.expect_register_to(REGISTRAR_A);
    phone.answer(flow, &second, 401, challenge_with("nonce=\"n2\", qop=\"auth\""));
    let (_, third) = phone.expect_register_to(REGISTRAR_A);
    // Two challenges answered in a row; a third with stale=true only says the nonce expired.
    phone.answer(flow, &third, 401, challenge_with("nonce=\"n3\", qop=\"auth\", stale=true"));
    let (_, fourth) = phone.expect_register_to(REGISTRAR_A);
    assert_eq!(authorization(&fourth).params.value("nonce"), Some("n3"));
    phone.ok(flow, &fourth);
    assert_eq!(phone.registered_at(), Some(Role::Primary));
}
