//! The core's transitions driven by hand: no sockets, no clock, no resolver; time moves only when a test moves it.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use sip::{Challenge, HeaderName, Message, Method};

use super::*;
use crate::config::PhoneConfig;
use crate::quirks::{Quirk, Quirks};

const BIND_IP: &str = "127.66.0.20";
const REGISTRAR_A: &str = "127.66.0.11:5060";
const REGISTRAR_B: &str = "127.66.0.12:5060";

/// Row 1 of the seed's table with IP-literal registrars, and timers small enough to read.
const ROW_1_CFG: &str = "\
sip proxy ip: proxy-a.lab.test
sip backup proxy ip: proxy-b.lab.test
sip registrar ip: 127.66.0.11
sip registrar port: 5060
sip backup registrar ip: 127.66.0.12
sip backup registrar port: 5060
sip line1 user name: 1001
sip line1 password: secret
sip registration period: 4
sip registration retry timer: 2
sip T1 timer: 100
sip T2 timer: 400
sip transaction timer: 1000
";

/// [`ROW_1_CFG`] as the calls tests use it.
pub(super) fn row_1_with_ip_literals() -> String {
    ROW_1_CFG.replace("sip proxy ip: proxy-a.lab.test", "sip proxy ip: 127.66.0.1")
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn settings(cfg: &str, quirks: Quirks) -> CoreSettings {
    let mut config = PhoneConfig::default();
    config.apply(Path::new("test.cfg"), cfg).unwrap();
    let instance = "urn:uuid:00000000-0000-4000-8000-00085d0a0b0c".to_owned();
    let mut settings = CoreSettings::from_config(&config, BIND_IP.parse::<IpAddr>().unwrap(), quirks, instance, 7);
    settings.user_agent = "refphone/test".into();
    settings
}

/// Plays the shell: keeps the timers the core set, opens flows on request, and hands other outputs to the test.
struct TestPhone {
    core: PhoneCore,
    start: Instant,
    now: Instant,
    timers: BTreeMap<TimerId, Instant>,
    outputs: VecDeque<Output>,
    /// Flows the core asked for: id to remote.
    flows: BTreeMap<FlowId, SocketAddr>,
    /// Answer OpenFlow at once, as the UDP shell does.
    open_flows_at_once: bool,
    /// Flows the core closed.
    closed_flows: Vec<FlowId>,
}

impl TestPhone {
    fn new(cfg: &str, quirks: Quirks) -> TestPhone {
        let now = Instant::now();
        TestPhone {
            core: PhoneCore::new(settings(cfg, quirks)),
            start: now,
            now,
            timers: BTreeMap::new(),
            outputs: VecDeque::new(),
            flows: BTreeMap::new(),
            open_flows_at_once: true,
            closed_flows: Vec::new(),
        }
    }

    fn started(cfg: &str, quirks: Quirks) -> TestPhone {
        let mut phone = TestPhone::new(cfg, quirks);
        phone.core.start(phone.now);
        phone
    }

    fn local_address_of(flow: FlowId) -> SocketAddr {
        SocketAddr::new(BIND_IP.parse().unwrap(), 40000 + flow.0 as u16)
    }

    /// Moves the core's outputs over, applying timer outputs and opening flows.
    fn collect(&mut self) {
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::SetTimer { id, at } => {
                    assert!(at >= self.now, "timer {id:?} set in the past");
                    self.timers.insert(id, at);
                }
                Output::CancelTimer { id } => {
                    self.timers.remove(&id);
                }
                Output::CloseFlow { flow } => self.closed_flows.push(flow),
                Output::OpenFlow { flow, remote, .. } if self.open_flows_at_once => {
                    self.flows.insert(flow, remote);
                    self.core.on_flow_opened(self.now, flow, Self::local_address_of(flow));
                }
                Output::OpenFlow { flow, remote, transport, server_name } => {
                    self.flows.insert(flow, remote);
                    self.outputs.push_back(Output::OpenFlow { flow, remote, transport, server_name });
                }
                other => self.outputs.push_back(other),
            }
        }
    }

    fn next_output(&mut self) -> Option<Output> {
        self.collect();
        self.outputs.pop_front()
    }

    fn assert_quiet(&mut self) {
        assert_eq!(self.next_output(), None);
    }

    /// The next message sent, with the remote its flow goes to.
    fn expect_sent(&mut self) -> (SocketAddr, FlowId, Message) {
        match self.next_output() {
            Some(Output::Send { flow, message }) => (self.flows[&flow], flow, message),
            other => panic!("expected a Send, got {other:?}"),
        }
    }

    fn expect_register_to(&mut self, remote: &str) -> (FlowId, Message) {
        let (to, flow, message) = self.expect_sent();
        assert_eq!(message.method(), Some(&Method::Register));
        assert_eq!(to, addr(remote), "REGISTER went to the wrong address");
        (flow, message)
    }

    /// Answers `request` with `status`, edited by `edit`, on `flow`.
    fn answer(&mut self, flow: FlowId, request: &Message, status: u16, edit: impl FnOnce(&mut Message)) {
        let mut response = Message::response_to(request, status, Some("registrar-tag"));
        edit(&mut response);
        let bytes = response.to_bytes();
        self.core.on_datagram(self.now, Arrival::Flow(flow), &bytes);
    }

    fn ok(&mut self, flow: FlowId, request: &Message) {
        let expires = request.expires().unwrap().unwrap();
        let contact = request.header(&HeaderName::Contact).unwrap().to_owned();
        self.answer(flow, request, 200, |r| {
            r.push_header(HeaderName::Contact, format!("{contact};expires={expires}"));
        });
    }

    fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn timer(&mut self, id: TimerId) -> Option<Duration> {
        self.collect();
        self.timers.get(&id).map(|at| *at - self.start)
    }

    /// Fires the earliest timer, moving time to it.
    fn fire_next_timer(&mut self) -> TimerId {
        self.collect();
        let (&id, &at) = self.timers.iter().min_by_key(|(_, at)| **at).expect("no timer set");
        self.timers.remove(&id);
        self.now = at;
        self.core.on_timer(at, id);
        id
    }

    /// Fires timers until the next message is sent; returns it and how long after the start it went.
    fn wait_for_send(&mut self) -> (SocketAddr, FlowId, Message) {
        for _ in 0..100 {
            self.collect();
            if matches!(self.outputs.front(), Some(Output::Send { .. })) {
                return self.expect_sent();
            }
            assert_eq!(self.outputs.front(), None, "unexpected output");
            self.fire_next_timer();
        }
        panic!("nothing was sent");
    }

    fn state(&self) -> RegistrationState {
        self.core.registration_state().clone()
    }

    fn registered_at(&self) -> Option<Role> {
        match self.state() {
            RegistrationState::Registered { registrar, .. } => Some(registrar),
            _ => None,
        }
    }

    /// Registers at the primary registrar with a plain 200.
    fn register_at_primary(&mut self) -> (FlowId, Message) {
        let (flow, register) = self.expect_register_to(REGISTRAR_A);
        self.ok(flow, &register);
        assert_eq!(self.registered_at(), Some(Role::Primary));
        (flow, register)
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn header(message: &Message, name: HeaderName) -> &str {
    message.header(&name).unwrap_or_else(|| panic!("no {name} in {message:?}"))
}

fn aor_host(message: &Message) -> String {
    message.to().unwrap().uri.as_sip().unwrap().host.to_string()
}

fn branch(message: &Message) -> String {
    message.top_via().unwrap().branch().unwrap().to_owned()
}

// --- R1.1: the first REGISTER goes to the primary registrar, with the primary AOR ---

#[test]
fn the_first_register_goes_to_the_primary_registrar_with_every_header_in_place() {
    let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none());
    let (flow, register) = phone.expect_register_to(REGISTRAR_A);
    assert_eq!(phone.elapsed(), Duration::ZERO);
    let text = String::from_utf8(register.to_bytes()).unwrap();
    assert!(text.starts_with("REGISTER sip:127.66.0.11 SIP/2.0\r\n"), "{text}");

    let via = register.top_via().unwrap();
    assert_eq!(via.transport, "UDP");
    assert_eq!(SocketAddr::new(via.host.ip().unwrap(), via.port.unwrap()), TestPhone::local_address_of(flow));
    assert!(via.branch().unwrap().starts_with("z9hG4bK") && via.branch().unwrap().len() > 7);
    assert_eq!(via.rport(), Some(None));

    assert_eq!(header(&register, HeaderName::MaxForwards), "70");
    assert_eq!(header(&register, HeaderName::To), "<sip:1001@proxy-a.lab.test>");
    let from = register.from().unwrap();
    assert_eq!(from.uri.to_string(), "sip:1001@proxy-a.lab.test");
    assert!(from.tag().is_some_and(|t| !t.is_empty()));
    assert!(register.call_id().unwrap().ends_with("@127.66.0.20"));
    assert_eq!(header(&register, HeaderName::CSeq), "1 REGISTER");
    assert_eq!(header(&register, HeaderName::Contact), "<sip:1001@127.66.0.20:5060>");
    assert_eq!(header(&register, HeaderName::Expires), "4");
    assert_eq!(header(&register, HeaderName::UserAgent), "refphone/test");
    assert!(text.ends_with("Content-Length: 0\r\n\r\n"), "{text}");
    assert_eq!(phone.state(), RegistrationState::Registering { registrar: Role::Primary });
}

#[test]
fn a_200_registers_and_schedules_the_refresh_at_half_the_granted_expiry() {
    let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none());
    let (flow, register) = phone.expect_register_to(REGISTRAR_A);
    phone.answer(flow, &register, 200, |r| {
        r.push_header(HeaderName::Contact, "<sip:1001@127.66.0.20:5060>;expires=10");
        r.push_header(HeaderName::Expires, "99");
    });
    assert_eq!(
        phone.state(),
        RegistrationState::Registered { registrar: Role::Primary, expires_at: phone.start + ms(10_000) }
    );
    assert_eq!(phone.timer(TimerId::RegistrationRefresh(1)), Some(ms(5_000)));
    // The transaction is over: its timers are gone.
    assert_eq!(phone.timer(TimerId::Retransmit(RequestId(0))), None);
    assert_eq!(phone.timer(TimerId::TransactionTimeout(RequestId(0))), None);
}

#[test]
fn the_expires_header_counts_when_our_contact_has_no_expires_and_the_request_when_neither_does() {
    let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none());
    let (flow, register) = phone.expect_register_to(REGISTRAR_A);
    phone.answer(flow, &register, 200, |r| {
        r.push_header(HeaderName::Expires, "6");
    });
    assert_eq!(phone.timer(TimerId::RegistrationRefresh(1)), Some(ms(3_000)));

    let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none());
    let (flow, register) = phone.expect_register_to(REGISTRAR_A);
    phone.answer(flow, &register, 200, |_| {});
    assert_eq!(phone.timer(TimerId::RegistrationRefresh(1)), Some(ms(2_000)));
}

#[test]
fn the_refresh_keeps_call_id_and_flow_and_increments_cseq() {
    let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none());
    let (flow, first) = phone.register_at_primary();
    assert_eq!(phone.fire_next_timer(), TimerId::RegistrationRefresh(1));
    assert_eq!(phone.elapsed(), ms(2_000));
    let (refresh_flow, refresh) = phone.expect_register_to(REGISTRAR_A);
    assert_eq!(refresh_flow, flow, "a refresh reuses the flow");
    assert_eq!(refresh.call_id().unwrap(), first.call_id().unwrap());
    assert_eq!(refresh.from().unwrap().tag(), first.from().unwrap().tag());
    assert_eq!(header(&refresh, HeaderName::CSeq), "2 REGISTER");
    assert_ne!(branch(&refresh), branch(&first));
    assert_eq!(phone.state(), RegistrationState::Registering { registrar: Role::Primary });
    phone.ok(flow, &refresh);
    assert_eq!(phone.timer(TimerId::RegistrationRefresh(1)), Some(ms(4_000)));
}

#[test]
fn fractional_registration_periods_round_up_to_whole_seconds() {
    let cfg = ROW_1_CFG.replace("sip registration period: 4", "sip registration period: 2.5");
    let mut phone = TestPhone::started(&cfg, Quirks::none());
    let (_, register) = phone.expect_register_to(REGISTRAR_A);
    assert_eq!(header(&register, HeaderName::Expires), "3");
}

#[test]
fn the_registrar_uri_carries_a_port_other_than_5060() {
    let cfg = ROW_1_CFG.replace("sip registrar port: 5060", "sip registrar port: 5070");
    let mut phone = TestPhone::started(&cfg, Quirks::none());
    let (_, register) = phone.expect_register_to("127.66.0.11:5070");
    assert!(String::from_utf8(register.to_bytes()).unwrap().starts_with("REGISTER sip:127.66.0.11:5070 SIP/2.0\r\n"));
}

#[test]
fn without_a_proxy_the_aor_names_the_registrar_host() {
    let cfg = ROW_1_CFG.replace("sip proxy ip: proxy-a.lab.test\n", "");
    let mut phone = TestPhone::started(&cfg, Quirks::none());
    let (_, register) = phone.expect_register_to(REGISTRAR_A);
    assert_eq!(header(&register, HeaderName::To), "<sip:1001@127.66.0.11>");
}

#[test]
fn the_display_name_goes_into_from() {
    let cfg = format!("{ROW_1_CFG}sip line1 display name: Desk 1\n");
    let mut phone = TestPhone::started(&cfg, Quirks::none());
    let (_, register) = phone.expect_register_to(REGISTRAR_A);
    assert_eq!(register.from().unwrap().display_name.as_deref(), Some("Desk 1"));
}

#[test]
fn a_line_without_user_or_registrar_does_not_register() {
    let cfg = ROW_1_CFG.replace("sip line1 user name: 1001\n", "");
    let mut phone = TestPhone::started(&cfg, Quirks::none());
    phone.assert_quiet();
    assert_eq!(phone.state(), RegistrationState::Disabled);

    let cfg = ROW_1_CFG.replace("sip registrar ip: 127.66.0.11\n", "");
    let mut phone = TestPhone::started(&cfg, Quirks::none());
    phone.assert_quiet();
    assert_eq!(phone.state(), RegistrationState::Disabled);
}

// --- The UDP client transaction ---

#[test]
fn an_unanswered_register_is_retransmitted_at_t1_doubling_up_to_t2_until_the_transaction_timer() {
    let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none());
    let (_, first) = phone.expect_register_to(REGISTRAR_A);
    let mut sent_at = Vec::new();
    loop {
        let (to, _, again) = phone.wait_for_send();
        if to != addr(REGISTRAR_A) {
            break;
        }
        assert_eq!(again, first, "a retransmission is the same request, byte for byte");
        sent_at.push(phone.elapsed().as_millis());
    }
    // T1 = 100 ms, T2 = 400 ms; the 1100 ms retransmission falls after the 1000 ms transaction timer.
    assert_eq!(sent_at, vec![100, 300, 700]);
    assert_eq!(phone.elapsed(), ms(1_000));
}

#[test]
fn a_provisional_response_keeps_the_transaction_alive_but_not_past_its_timer() {
    let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none());
    let (flow, first) = phone.expect_register_to(REGISTRAR_A);
    phone.answer(flow, &first, 100, |_| {});
    assert_eq!(phone.state(), RegistrationState::Registering { registrar: Role::Primary });
    // 100 ms (Timer E still runs from T1), then every T2 = 400 ms, until the 1000 ms transaction timer.
    let (_, _, _) = phone.wait_for_send();
    assert_eq!(phone.elapsed(), ms(100));
    let (_, _, _) = phone.wait_for_send();
    assert_eq!(phone.elapsed(), ms(500));
    let (_, _, _) = phone.wait_for_send();
    assert_eq!(phone.elapsed(), ms(900));
    let (to, _, _) = phone.wait_for_send();
    assert_eq!(phone.elapsed(), ms(1000), "gave up at the transaction timer");
    assert_eq!(to, addr(REGISTRAR_B));
}

#[test]
fn stray_and_mismatched_responses_are_ignored() {
    let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none());
    let (flow, register) = phone.expect_register_to(REGISTRAR_A);
    let mut stray = register.clone();
    stray.set_header(HeaderName::Via, "SIP/2.0/UDP 127.66.0.20:40000;branch=z9hG4bKother;rport");
    phone.answer(flow, &stray, 200, |_| {});
    let mut wrong_method = register.clone();
    wrong_method.set_header(HeaderName::CSeq, "1 OPTIONS");
    phone.answer(flow, &wrong_method, 200, |_| {});
    phone.assert_quiet();
    assert_eq!(phone.state(), RegistrationState::Registering { registrar: Role::Primary });
    // A retransmitted 200 after the transaction ended changes nothing either.
    phone.ok(flow, &register);
    let registered = phone.state();
    phone.ok(flow, &register);
    phone.assert_quiet();
    assert_eq!(phone.state(), registered);
}

// --- R1.2: the primary registrar fails; the phone registers at the backup with the primary AOR ---

/// Checks that `backup` is the failover REGISTER: to the backup registrar, same AOR, new Call-ID.
fn check_failover_register(phone: &TestPhone, first: &Message, backup: &Message) {
    assert_eq!(aor_host(backup), "proxy-a.lab.test", "the AOR stays the primary proxy's");
    assert_eq!(header(backup, HeaderName::From).split(';').next(), Some("<sip:1001@proxy-a.lab.test>"));
    assert_ne!(backup.call_id().unwrap(), first.call_id().unwrap(), "a new registrar gets a new Call-ID");
    assert_eq!(header(backup, HeaderName::CSeq), "1 REGISTER");
    assert!(String::from_utf8(backup.to_bytes()).unwrap().starts_with("REGISTER sip:127.66.0.12 SIP/2.0\r\n"));
    assert_eq!(phone.state(), RegistrationState::Registering { registrar: Role::Backup });
}

/// Expects the next output to be the failover REGISTER, and checks it.
fn expect_failover_register(phone: &mut TestPhone, first: &Message) -> (FlowId, Message) {
    let (flow, backup) = phone.expect_register_to(REGISTRAR_B);
    check_failover_register(phone, first, &backup);
    (flow, backup)
}

#[test]
fn a_transaction_timeout_at_the_primary_moves_registration_to_the_backup() {
    let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none());
    let (_, first) = phone.expect_register_to(REGISTRAR_A);
    let (to, flow, backup) = loop {
        let (to, flow, message) = phone.wait_for_send();
        if to != addr(REGISTRAR_A) {
            break (to, flow, message);
        }
        assert_eq!(branch(&message), branch(&first), "only retransmissions before the timeout");
    };
    assert_eq!(to, addr(REGISTRAR_B));
    assert_eq!(phone.elapsed(), ms(1_000), "detected by the transaction timer");
    assert_eq!(phone.closed_flows, vec![FlowId(0)], "the flow nothing answered on is closed");
    check_failover_register(&phone, &first, &backup);
    phone.ok(flow, &backup);
    assert_eq!(phone.registered_at(), Some(Role::Backup));
}

#[test]
fn icmp_unreachable_at_the_primary_moves_registration_to_the_backup_at_once() {
    let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none());
    let (flow, first) = phone.expect_register_to(REGISTRAR_A);
    phone.core.on_transport_error(phone.now, flow, TransportFailure::Refused);
    let (backup_flow, backup) = expect_failover_register(&mut phone, &first);
    assert_ne!(backup_flow, flow);
    assert_eq!(phone.elapsed(), Duration::ZERO);
    // The primary's transaction timers are gone.
    assert_eq!(phone.timer(TimerId::TransactionTimeout(RequestId(0))), None);
    phone.ok(backup_flow, &backup);
    assert_eq!(phone.registered_at(), Some(Role::Backup));
}

#[test]
fn a_flow_that_cannot_open_counts_as_a_transport_failure() {
    let mut phone = TestPhone::new(ROW_1_CFG, Quirks::none());
    phone.open_flows_at_once = false;
    phone.core.start(phone.now);
    let Some(Output::OpenFlow { flow, remote, .. }) = phone.next_output() else { panic!("expected OpenFlow") };
    assert_eq!(remote, addr(REGISTRAR_A));
    phone.core.on_transport_error(phone.now, flow, TransportFailure::Other("EADDRNOTAVAIL".into()));
    let Some(Output::OpenFlow { remote, .. }) = phone.next_output() else { panic!("expected OpenFlow") };
    assert_eq!(remote, addr(REGISTRAR_B));
}

fn fails_over_on_status(status: u16, edit: impl FnOnce(&mut Message)) {
    let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none());
    let (flow, first) = phone.expect_register_to(REGISTRAR_A);
    phone.answer(flow, &first, status, edit);
    expect_failover_register(&mut phone, &first);
    assert_eq!(phone.elapsed(), Duration::ZERO);
}

#[test]
fn a_503_moves_registration_to_the_backup_with_or_without_retry_after() {
    fails_over_on_status(503, |_| {});
    fails_over_on_status(503, |r| {
        r.push_header(HeaderName::RetryAfter, "30");
    });
}

#[test]
fn a_408_moves_registration_to_the_backup() {
    fails_over_on_status(408, |_| {});
}

#[test]
fn a_4xx_rejection_retries_the_same_registrar_later() {
    for status in [403, 404, 480] {
        let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none());
        let (flow, first) = phone.expect_register_to(REGISTRAR_A);
        phone.answer(flow, &first, status, |_| {});
        phone.assert_quiet();
        let (to, _, again) = phone.wait_for_send();
        assert_eq!(to, addr(REGISTRAR_A), "{status}");
        assert_eq!(phone.elapsed(), ms(2_000));
        assert_eq!(again.call_id().unwrap(), first.call_id().unwrap());
        assert_eq!(header(&again, HeaderName::CSeq), "2 REGISTER");
    }
}

#[test]
fn while_the_primary_is_marked_failed_refreshes_go_to_the_backup() {
    let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none());
    let (flow, first) = phone.expect_register_to(REGISTRAR_A);
    phone.answer(flow, &first, 503, |_| {});
    let (backup_flow, backup) = expect_failover_register(&mut phone, &first);
    phone.ok(backup_flow, &backup);
    assert_eq!(phone.fire_next_timer(), TimerId::RegistrationRefresh(1));
    let (refresh_flow, refresh) = phone.expect_register_to(REGISTRAR_B);
    assert_eq!(refresh_flow, backup_flow);
    assert_eq!(refresh.call_id().unwrap(), backup.call_id().unwrap());
    assert_eq!(header(&refresh, HeaderName::CSeq), "2 REGISTER");
    assert_eq!(aor_host(&refresh), "proxy-a.lab.test");
}

#[test]
fn a_refresh_failing_at_the_primary_moves_registration_to_the_backup() {
    let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none());
    let (flow, first) = phone.register_at_primary();
    phone.fire_next_timer();
    let (_, refresh) = phone.expect_register_to(REGISTRAR_A);
    phone.core.on_transport_error(phone.now, flow, TransportFailure::Refused);
    let (_, backup) = expect_failover_register(&mut phone, &first);
    assert_ne!(backup.call_id().unwrap(), refresh.call_id().unwrap());
}

#[test]
fn when_the_backup_fails_too_the_phone_retries_the_primary_after_the_retry_timer() {
    let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none());
    let (flow, first) = phone.expect_register_to(REGISTRAR_A);
    phone.answer(flow, &first, 503, |_| {});
    let (backup_flow, backup) = expect_failover_register(&mut phone, &first);
    phone.answer(backup_flow, &backup, 503, |_| {});
    phone.assert_quiet();
    assert_eq!(
        phone.state(),
        RegistrationState::WaitingToRetry { registrar: Role::Primary, at: phone.start + ms(2_000) }
    );
    let (to, _, again) = phone.wait_for_send();
    assert_eq!(to, addr(REGISTRAR_A));
    assert_eq!(phone.elapsed(), ms(2_000));
    assert_eq!(again.call_id().unwrap(), first.call_id().unwrap(), "the primary's call leg is kept");
}

#[test]
fn without_a_backup_a_failed_registration_is_retried_after_the_retry_timer() {
    let cfg = ROW_1_CFG.replace("sip backup registrar ip: 127.66.0.12\n", "");
    let mut phone = TestPhone::started(&cfg, Quirks::none());
    let (flow, first) = phone.expect_register_to(REGISTRAR_A);
    phone.core.on_transport_error(phone.now, flow, TransportFailure::Refused);
    phone.assert_quiet();
    assert_eq!(
        phone.state(),
        RegistrationState::WaitingToRetry { registrar: Role::Primary, at: phone.start + ms(2_000) }
    );
    assert_eq!(phone.timer(TimerId::RegistrationRetry(1)), Some(ms(2_000)));
    let (to, _, again) = phone.wait_for_send();
    assert_eq!(to, addr(REGISTRAR_A));
    assert_eq!(phone.elapsed(), ms(2_000));
    assert_eq!(again.call_id().unwrap(), first.call_id().unwrap());
}

// --- DNS ---

const DNS_CFG: &str = "\
sip proxy ip: proxy-a.lab.test
sip registrar ip: registrar-a.lab.test
sip backup registrar ip: registrar-b.lab.test
sip line1 user name: 1001
sip registration period: 4
sip registration retry timer: 2
sip T1 timer: 100
sip T2 timer: 400
sip transaction timer: 1000
";

fn expect_resolve(phone: &mut TestPhone) -> (RequestId, Lookup) {
    match phone.next_output() {
        Some(Output::Resolve { request, lookup }) => (request, lookup),
        other => panic!("expected Resolve, got {other:?}"),
    }
}

#[test]
fn a_named_registrar_is_resolved_before_every_register_and_named_in_the_request_uri() {
    let mut phone = TestPhone::started(DNS_CFG, Quirks::none());
    let (request, lookup) = expect_resolve(&mut phone);
    assert_eq!(lookup, Lookup::Address { host: "registrar-a.lab.test".into(), port: 5060 });
    phone.core.on_resolved(phone.now, request, Ok(vec![addr(REGISTRAR_A)]));
    let (flow, register) = phone.expect_register_to(REGISTRAR_A);
    assert!(
        String::from_utf8(register.to_bytes()).unwrap().starts_with("REGISTER sip:registrar-a.lab.test SIP/2.0\r\n")
    );
    phone.ok(flow, &register);
    phone.fire_next_timer();
    // The refresh asks again: the shell's cache answers while the TTL lasts.
    let (request, lookup) = expect_resolve(&mut phone);
    assert_eq!(lookup, Lookup::Address { host: "registrar-a.lab.test".into(), port: 5060 });
    phone.core.on_resolved(phone.now, request, Ok(vec![addr("127.66.0.13:5060")]));
    let (_, _) = phone.expect_register_to("127.66.0.13:5060");
}

#[test]
fn port_zero_asks_for_srv() {
    let cfg = DNS_CFG
        .replace("sip registrar ip: registrar-a.lab.test\n", "sip registrar ip: lab.test\nsip registrar port: 0\n");
    let mut phone = TestPhone::started(&cfg, Quirks::none());
    let (_, lookup) = expect_resolve(&mut phone);
    assert_eq!(lookup, Lookup::Service { host: "lab.test".into(), transport: Transport::Udp });
}

#[test]
fn a_failed_lookup_of_the_primary_moves_registration_to_the_backup() {
    let mut phone = TestPhone::started(DNS_CFG, Quirks::none());
    let (request, _) = expect_resolve(&mut phone);
    phone.core.on_resolved(phone.now, request, Err("SERVFAIL".into()));
    let (_, lookup) = expect_resolve(&mut phone);
    assert_eq!(lookup, Lookup::Address { host: "registrar-b.lab.test".into(), port: 5060 });
    assert_eq!(phone.state(), RegistrationState::Registering { registrar: Role::Backup });
}

#[test]
fn every_resolved_address_is_tried_before_the_registrar_counts_as_failed() {
    let mut phone = TestPhone::started(DNS_CFG, Quirks::none());
    let (request, _) = expect_resolve(&mut phone);
    phone.core.on_resolved(phone.now, request, Ok(vec![addr(REGISTRAR_A), addr("127.66.0.13:5060")]));
    let (flow, first) = phone.expect_register_to(REGISTRAR_A);
    phone.core.on_transport_error(phone.now, flow, TransportFailure::Refused);
    let (_, second) = phone.expect_register_to("127.66.0.13:5060");
    assert_eq!(second.call_id().unwrap(), first.call_id().unwrap(), "the same request to the same registrar");
    assert_eq!(header(&second, HeaderName::CSeq), header(&first, HeaderName::CSeq));
    assert_ne!(branch(&second), branch(&first), "a new transaction");
    assert_eq!(phone.state(), RegistrationState::Registering { registrar: Role::Primary });
}

// --- Quirks ---

#[test]
fn quirk_no_backup_registrar_keeps_retrying_the_primary() {
    let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none().with(Quirk::NoBackupRegistrar));
    let (flow, _) = phone.expect_register_to(REGISTRAR_A);
    phone.core.on_transport_error(phone.now, flow, TransportFailure::Refused);
    phone.assert_quiet();
    for attempt in 1..=3u64 {
        let (to, flow, register) = phone.wait_for_send();
        assert_eq!(to, addr(REGISTRAR_A));
        assert_eq!(phone.elapsed(), ms(2_000 * attempt));
        phone.answer(flow, &register, 503, |_| {});
    }
}

#[test]
fn quirk_late_refresh_refreshes_after_the_binding_expired() {
    let mut phone = TestPhone::started(ROW_1_CFG, Quirks::none().with(Quirk::LateRefresh));
    phone.register_at_primary();
    assert_eq!(phone.timer(TimerId::RegistrationRefresh(1)), Some(ms(5_000)));
    phone.fire_next_timer();
    let (_, _) = phone.expect_register_to(REGISTRAR_A);
    assert_eq!(phone.elapsed(), ms(5_000));
}

// --- Requests the phone receives ---

fn incoming(method: &str) -> Vec<u8> {
    format!(
        "{method} sip:1001@127.66.0.20:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.66.0.11:5060;branch=z9hG4bKin1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:registrar-a.lab.test>;tag=abc\r\n\
         To: <sip:1001@127.66.0.20>\r\n\
         Call-ID: in-1@127.66.0.11\r\n\
         CSeq: 5 {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn reply_to(phone: &mut TestPhone, bytes: &[u8]) -> Option<(Arrival, Message)> {
    let arrival = Arrival::Listener { remote: addr(REGISTRAR_A) };
    phone.core.on_datagram(phone.now, arrival, bytes);
    match phone.next_output() {
        Some(Output::Reply { to, message }) => Some((to, message)),
        None => None,
        other => panic!("expected a Reply, got {other:?}"),
    }
}

#[test]
fn options_is_answered_200_and_a_notify_of_no_dialog_481_back_where_they_came_from() {
    let mut phone = TestPhone::new(ROW_1_CFG, Quirks::none());
    for (method, status) in [("OPTIONS", 200), ("NOTIFY", 481)] {
        let (to, reply) = reply_to(&mut phone, &incoming(method)).expect("a reply");
        assert_eq!(to, Arrival::Listener { remote: addr(REGISTRAR_A) });
        assert_eq!(reply.status(), Some(status));
        assert_eq!(header(&reply, HeaderName::CSeq), format!("5 {method}"));
        assert_eq!(header(&reply, HeaderName::CallId), "in-1@127.66.0.11");
        assert!(reply.to().unwrap().tag().is_some());
        assert_eq!(branch(&reply), "z9hG4bKin1");
    }
}

#[test]
fn other_requests_get_501_and_ack_gets_nothing() {
    let mut phone = TestPhone::new(ROW_1_CFG, Quirks::none());
    let (_, reply) = reply_to(&mut phone, &incoming("INVITE")).expect("a reply");
    assert_eq!(reply.status(), Some(501));
    assert_eq!(reply_to(&mut phone, &incoming("ACK")), None);
}

#[test]
fn malformed_datagrams_and_keep_alives_are_ignored() {
    let mut phone = TestPhone::new(ROW_1_CFG, Quirks::none());
    for junk in [
        &b"\x00\x01garbage"[..],
        b"NOT SIP AT ALL\r\n\r\n",
        b"\r\n\r\n",
        b"",
        b"OPTIONS sip:x SIP/2.0\r\nVia: bad\r\n\r\n",
    ] {
        assert_eq!(reply_to(&mut phone, junk), None, "{junk:?}");
    }
    assert_eq!(phone.state(), RegistrationState::Idle);
}

mod calls;
mod challenges;
mod contact;
mod dialogs;
mod digest;
mod flows;
mod machine;
mod outbound;
mod quirks;
mod rows;
mod simulated;
mod srv;
mod stun;
mod transactions;
mod wire;
