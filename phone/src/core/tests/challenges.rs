//! Digest challenges (401, 407) and 423 Min-Expires answered on the first registration.

use super::*;

fn challenge(status: u16, nonce: &str) -> impl FnOnce(&mut Message) {
    let name = if status == 407 { HeaderName::ProxyAuthenticate } else { HeaderName::WwwAuthenticate };
    let challenge = Challenge::digest("lab.test", nonce, Some("opaque-1"), true);
    move |r: &mut Message| {
        r.push_header(name, challenge);
    }
}

#[test]
fn a_401_is_answered_with_digest_credentials_then_a_200_registers() {
    let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none());
    let (flow, first) = phone.expect_register_to(REGISTRAR_A);
    phone.answer(flow, &first, 401, challenge(401, "nonce-1"));
    let (_, second) = phone.expect_register_to(REGISTRAR_A);
    assert_eq!(second.call_id().unwrap(), first.call_id().unwrap());
    assert_eq!(header(&second, HeaderName::CSeq), "2 REGISTER");
    assert_ne!(branch(&second), branch(&first));
    let credentials = second.credentials(false).unwrap().expect("Authorization");
    assert_eq!(credentials.params.value("username"), Some("1001"));
    assert_eq!(credentials.params.value("uri"), Some("sip:127.66.0.11"));
    assert_eq!(credentials.params.value("nonce"), Some("nonce-1"));
    assert_eq!(credentials.params.value("opaque"), Some("opaque-1"));
    assert!(credentials.verify("REGISTER", "secret"));
    phone.ok(flow, &second);
    assert_eq!(phone.registered_at(), Some(Role::Primary));
}

#[test]
fn a_407_is_answered_with_proxy_authorization_using_the_auth_name() {
    let cfg = format!("{ROW_1_CFG}sip line1 auth name: auth-1001\n");
    let mut phone = TestPhone::started(&cfg, Quirks::none());
    let (flow, first) = phone.expect_register_to(REGISTRAR_A);
    phone.answer(flow, &first, 407, challenge(407, "nonce-7"));
    let (_, second) = phone.expect_register_to(REGISTRAR_A);
    assert!(second.credentials(false).unwrap().is_none());
    let credentials = second.credentials(true).unwrap().expect("Proxy-Authorization");
    assert_eq!(credentials.params.value("username"), Some("auth-1001"));
    assert!(credentials.verify("REGISTER", "secret"));
}

#[test]
fn refused_credentials_do_not_loop_nor_fail_over_but_retry_later() {
    let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none());
    // Two challenges in a row are answered; the third means the credentials are refused.
    for round in 0..3 {
        let (flow, register) = phone.expect_register_to(REGISTRAR_A);
        phone.answer(flow, &register, 401, challenge(401, &format!("nonce-{round}")));
    }
    phone.assert_quiet();
    assert_eq!(
        phone.state(),
        RegistrationState::WaitingToRetry { registrar: Role::Primary, at: phone.start + ms(2_000) }
    );
    let (to, _, _) = phone.wait_for_send();
    assert_eq!(to, addr(REGISTRAR_A));
    assert_eq!(phone.elapsed(), ms(2_000));
}

#[test]
fn a_423_is_retried_with_min_expires_and_refreshes_keep_it() {
    let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none());
    let (flow, first) = phone.expect_register_to(REGISTRAR_A);
    phone.answer(flow, &first, 423, |r| {
        r.push_header(HeaderName::MinExpires, "60");
    });
    let (_, second) = phone.expect_register_to(REGISTRAR_A);
    assert_eq!(header(&second, HeaderName::Expires), "60");
    assert_eq!(header(&second, HeaderName::CSeq), "2 REGISTER");
    assert_eq!(second.call_id().unwrap(), first.call_id().unwrap());
    phone.ok(flow, &second);
    assert_eq!(phone.timer(TimerId::RegistrationRefresh(1)), Some(ms(30_000)));
    phone.fire_next_timer();
    let (_, refresh) = phone.expect_register_to(REGISTRAR_A);
    assert_eq!(header(&refresh, HeaderName::Expires), "60");
}

#[test]
fn a_423_without_min_expires_is_a_failure_without_failover() {
    let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none());
    let (flow, first) = phone.expect_register_to(REGISTRAR_A);
    phone.answer(flow, &first, 423, |_| {});
    phone.assert_quiet();
    assert!(matches!(phone.state(), RegistrationState::WaitingToRetry { registrar: Role::Primary, .. }));
}

#[test]
fn every_register_on_the_call_id_takes_the_next_cseq_however_refreshes_and_challenges_interleave() {
    // One owner numbers the Call-ID (RFC 3261 §8.1.1.5): refreshes and challenged retries count
    // 1, 2, 3, ... in the order they are sent, never a number twice, never one skipped.
    let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none());
    let (flow, first) = phone.expect_register_to(REGISTRAR_A);
    let call_id = first.call_id().unwrap().to_owned();
    let mut numbers = vec![first.cseq().unwrap().seq];
    phone.answer(flow, &first, 401, challenge(401, "nonce-0"));
    for round in 1..=3 {
        let (flow, retry) = phone.expect_register_to(REGISTRAR_A);
        numbers.push(retry.cseq().unwrap().seq);
        phone.ok(flow, &retry);
        phone.fire_next_timer();
        let (flow, refresh) = phone.expect_register_to(REGISTRAR_A);
        assert_eq!(refresh.call_id().unwrap(), call_id);
        numbers.push(refresh.cseq().unwrap().seq);
        phone.answer(flow, &refresh, 401, challenge(401, &format!("nonce-{round}")));
    }
    assert_eq!(numbers, (1..=7).collect::<Vec<u32>>());
}
