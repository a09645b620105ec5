//! The cfg parser's tests: spacing and comments, overriding, line keys, bounds, and the effective settings of a line.

use super::*;

fn parse(files: &[(&str, &str)]) -> Result<PhoneConfig, PhoneError> {
    let mut config = PhoneConfig::default();
    for (name, text) in files {
        config.apply(Path::new(name), text)?;
    }
    Ok(config)
}

fn domain(name: &str) -> Host {
    Host::Domain(name.into())
}

#[test]
fn comments_blank_lines_and_spacing_are_ignored() {
    let config = parse(&[(
        "aastra.cfg",
        "# the lab\n\n   sip proxy ip:   proxy-a.lab.test  \nSIP  Proxy Port:5062\n\t# indented comment\n",
    )])
    .unwrap();
    let line = config.line(1);
    assert_eq!(line.proxy, Some(Destination { host: domain("proxy-a.lab.test"), port: 5062 }));
}

#[test]
fn a_later_file_overrides_an_earlier_one() {
    let config = parse(&[
        ("aastra.cfg", "sip registrar ip: registrar-a.lab.test\nsip registration period: 3600\n"),
        ("00085D000001.cfg", "sip registration period: 4\n"),
    ])
    .unwrap();
    let line = config.line(1);
    assert_eq!(line.registration_period, Duration::from_secs(4));
    assert_eq!(line.registrar.unwrap().host, domain("registrar-a.lab.test"));
}

#[test]
fn a_line_key_overrides_the_global_key_for_that_line_only() {
    let config = parse(&[(
        "aastra.cfg",
        "sip user name: 1000\nsip password: global\nsip line1 user name: 1001\nsip registrar ip: 127.66.0.11\nsip line2 registrar port: 5070\n",
    )])
    .unwrap();
    let line1 = config.line(1);
    assert_eq!(line1.user_name.as_deref(), Some("1001"));
    assert_eq!(line1.password, "global");
    assert_eq!(line1.registrar.as_ref().unwrap().port, 5060);
    let line2 = config.line(2);
    assert_eq!(line2.user_name.as_deref(), Some("1000"));
    assert_eq!(line2.registrar.as_ref().unwrap().port, 5070);
    assert_eq!(line2.registrar.unwrap().host, Host::V4("127.66.0.11".parse().unwrap()));
}

#[test]
fn a_global_key_in_a_later_file_does_not_undo_an_earlier_line_override() {
    let config = parse(&[("aastra.cfg", "sip line1 user name: 1001\n"), ("mac.cfg", "sip user name: 2000\n")]).unwrap();
    assert_eq!(config.line(1).user_name.as_deref(), Some("1001"));
}

#[test]
fn auth_name_defaults_to_user_name() {
    let config = parse(&[("a.cfg", "sip line1 user name: 1001\n")]).unwrap();
    assert_eq!(config.line(1).auth_name.as_deref(), Some("1001"));
    let config = parse(&[("a.cfg", "sip line1 user name: 1001\nsip auth name: auth1001\n")]).unwrap();
    assert_eq!(config.line(1).auth_name.as_deref(), Some("auth1001"));
}

#[test]
fn zero_address_or_empty_switches_a_server_off_even_over_a_global_setting() {
    let config = parse(&[(
        "a.cfg",
        "sip backup registrar ip: registrar-b.lab.test\nsip line1 backup registrar ip: 0.0.0.0\nsip line2 backup registrar ip:\n",
    )])
    .unwrap();
    assert_eq!(config.line(1).backup_registrar, None);
    assert_eq!(config.line(2).backup_registrar, None);
    assert!(config.line(3).backup_registrar.is_some());
}

#[test]
fn port_zero_asks_for_srv() {
    let config = parse(&[("a.cfg", "sip registrar ip: lab.test\nsip registrar port: 0\n")]).unwrap();
    assert!(config.line(1).registrar.unwrap().uses_srv());
}

#[test]
fn timers_take_fractions_and_tiny_values_and_default_to_the_vendor_values() {
    let config = parse(&[(
        "a.cfg",
        "sip T1 timer: 50\nsip T2 timer: 200.5\nsip transaction timer: 400\nsip registration retry timer: 0.5\nrefphone failback probe interval: 1.5\n",
    )])
    .unwrap();
    let timers = config.timers();
    assert_eq!(timers.t1, Duration::from_millis(50));
    assert_eq!(timers.t2, Duration::from_micros(200_500));
    assert_eq!(timers.transaction_timer, Duration::from_millis(400));
    assert_eq!(timers.registration_retry, Duration::from_millis(500));
    assert_eq!(config.refphone.failback_probe_interval, Some(Duration::from_millis(1500)));

    let timers = PhoneConfig::default().timers();
    assert_eq!(timers.t1, defaults::T1);
    assert_eq!(timers.t2, defaults::T2);
    assert_eq!(timers.transaction_timer, defaults::TRANSACTION_TIMER);
}

#[test]
fn t2_is_never_below_t1() {
    let config = parse(&[("a.cfg", "sip T1 timer: 800\nsip T2 timer: 100\n")]).unwrap();
    assert_eq!(config.timers().t2, Duration::from_millis(800));
}

#[test]
fn ipv6_literals_are_accepted_with_or_without_brackets() {
    let config = parse(&[("a.cfg", "sip registrar ip: ::1\nsip backup registrar ip: [::2]\n")]).unwrap();
    assert_eq!(config.line(1).registrar.unwrap().host, Host::V6("::1".parse().unwrap()));
    assert_eq!(config.line(1).backup_registrar.unwrap().host, Host::V6("::2".parse().unwrap()));
}

fn error_of(text: &str) -> String {
    parse(&[("lab/aastra.cfg", text)]).unwrap_err().to_string()
}

#[test]
fn an_unknown_key_names_file_line_and_key() {
    assert_eq!(
        error_of("# x\nsip proxy ip: a.test\nsip frobnicate: 1\n"),
        "lab/aastra.cfg:3: sip frobnicate: unknown key"
    );
}

#[test]
fn a_global_only_key_is_unknown_per_line() {
    assert_eq!(
        error_of("sip line1 transport protocol: 1\n"),
        "lab/aastra.cfg:1: sip line1 transport protocol: unknown key"
    );
}

#[test]
fn line_numbers_out_of_range_are_unknown_keys() {
    assert!(error_of("sip line0 user name: 1\n").contains("unknown key"));
    assert!(error_of("sip line25 user name: 1\n").contains("unknown key"));
}

#[test]
fn a_line_without_colon_is_an_error() {
    assert_eq!(error_of("sip proxy ip a.test\n"), "lab/aastra.cfg:1: sip proxy ip a.test: expected 'key: value'");
}

#[test]
fn malformed_values_are_errors_naming_the_key() {
    assert!(error_of("sip proxy port: 70000\n").starts_with("lab/aastra.cfg:1: sip proxy port: expected a port"));
    assert!(
        error_of("sip T1 timer: fast\n")
            .starts_with("lab/aastra.cfg:1: sip T1 timer: expected a number of milliseconds")
    );
    assert!(error_of("sip T1 timer: 0\n").contains("above 0"));
    assert!(error_of("sip registration period: -1\n").contains("above 0"));
    assert!(error_of("sip registration period: NaN\n").contains("above 0"));
    assert!(error_of("sip outbound support: yes\n").contains("expected 0 or 1"));
    assert!(error_of("sip transport protocol: 3\n").contains("expected 0 (UDP and TCP)"));
    assert!(error_of("sip proxy ip: bad host!\n").contains("expected a host name"));
}

#[test]
fn blf_keys_and_explicit_mwi_make_the_subscriptions_in_key_order_each_extension_once() {
    let config = parse(&[(
        "a.cfg",
        "softkey2 type: blf\nsoftkey2 value: 2002\nsoftkey1 type: BLF\nsoftkey1 value: 2001\n\
         softkey1 label: Alice\nsoftkey3 type: speeddial\nsoftkey3 value: 2003\nprgkey1 type: blf\n\
         prgkey1 value: 2001\ntopsoftkey4 type: blf\ntopsoftkey4 value: 2004\nsoftkey5 type: blf\n\
         sip explicit mwi subscription: 1\nsip explicit mwi subscription period: 120\n",
    )])
    .unwrap();
    let blf = |e: &str| SubscriptionSetting::BusyLampField { extension: e.into() };
    assert_eq!(
        config.subscriptions(),
        vec![blf("2001"), blf("2002"), blf("2004"), SubscriptionSetting::MessageWaiting]
    );
    assert_eq!(config.phone_timers().mwi_subscription_period, Duration::from_secs(120));
    assert_eq!(config.phone_timers().subscription_period, defaults::SUBSCRIPTION_PERIOD);
}

#[test]
fn refphone_timers_default_and_take_fractions() {
    let timers = PhoneConfig::default().phone_timers();
    assert_eq!(timers.failback_probe_interval, defaults::FAILBACK_PROBE_INTERVAL);
    assert_eq!(timers.pong_timeout, Duration::from_secs(10));
    assert_eq!(timers.stun_rto, Duration::from_millis(500));
    assert_eq!(timers.outbound_base_time, None);
    assert_eq!(timers.outbound_max_time, Duration::from_secs(1800));
    assert_eq!(timers.call_duration, Duration::from_secs(2));
    let config = parse(&[(
        "a.cfg",
        "refphone subscription period: 2.5\nrefphone call duration: 0.5\nrefphone outbound base time: 1\n\
         sip persistent tls keep alive: 20\nrefphone stun rto: 12.5\n",
    )])
    .unwrap();
    let timers = config.phone_timers();
    assert_eq!(timers.subscription_period, Duration::from_millis(2500));
    assert_eq!(timers.mwi_subscription_period, Duration::from_millis(2500), "MWI follows the BLF period unless set");
    assert_eq!(timers.call_duration, Duration::from_millis(500));
    assert_eq!(timers.outbound_base_time, Some(Duration::from_secs(1)));
    assert_eq!(timers.keep_alive_interval, Duration::from_secs(20), "from sip persistent tls keep alive");
    assert_eq!(timers.stun_rto, Duration::from_micros(12_500), "refphone stun rto is in ms");
}

#[test]
fn key_numbers_out_of_range_and_unknown_attributes_are_unknown_keys() {
    assert_eq!(error_of("softkey0 type: blf\n"), "lab/aastra.cfg:1: softkey0 type: unknown key");
    assert!(error_of("softkey101 type: blf\n").contains("unknown key"));
    assert!(error_of("softkey1 colour: red\n").contains("unknown key"));
    assert!(error_of("softkey1 type: b l f\n").contains("expected a key type"));
}

#[test]
fn the_xml_post_list_is_a_list_of_addresses() {
    let config = parse(&[("a.cfg", "xml application post list: 127.66.0.1, 127.66.0.2\n")]).unwrap();
    let expected: Vec<IpAddr> = vec!["127.66.0.1".parse().unwrap(), "127.66.0.2".parse().unwrap()];
    assert_eq!(config.xml_application_post_list, Some(expected));
    assert!(error_of("xml application post list: pusher.lab.test\n").contains("expected IP addresses"));
}

#[test]
fn quoted_text_values_lose_their_quotes() {
    let config = parse(&[("a.cfg", "sip line1 display name: \"Desk 1\"\n")]).unwrap();
    assert_eq!(config.line(1).display_name.as_deref(), Some("Desk 1"));
}
