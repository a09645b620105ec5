//! The cfg keys the parser knows (the vendor's and refphone's own) and the parsers of their values.

use std::time::Duration;

use super::*;

pub(super) fn collapse_whitespace(raw: &str) -> String {
    raw.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A key a `sip lineN ...` key may override; also valid as the global `sip ...` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LineKey {
    UserName,
    AuthName,
    Password,
    DisplayName,
    ProxyIp,
    ProxyPort,
    BackupProxyIp,
    BackupProxyPort,
    RegistrarIp,
    RegistrarPort,
    BackupRegistrarIp,
    BackupRegistrarPort,
    RegistrationPeriod,
}

/// A key only the global set has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GlobalKey {
    OutboundProxy,
    OutboundProxyPort,
    BackupOutboundProxy,
    BackupOutboundProxyPort,
    OutboundSupport,
    RegistrationRetryTimer,
    RegistrationTimeoutRetryTimer,
    SubscriptionTimeoutRetryTimer,
    SubscriptionFailedRetryTimer,
    TransportProtocol,
    T1Timer,
    T2Timer,
    TransactionTimer,
    PersistentTlsKeepAlive,
    FailbackProbeInterval,
    PongTimeout,
    StunRto,
    OutboundBaseTime,
    OutboundMaxTime,
    KeepAliveInterval,
    SubscriptionPeriod,
    CallDuration,
    ExplicitMwiSubscription,
    ExplicitMwiSubscriptionPeriod,
    XmlApplicationPostList,
}

/// What a `softkeyN ...` key sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyAttribute {
    Type,
    Value,
    Label,
    Line,
    States,
}

pub(super) const KEY_ATTRIBUTES: &[(&str, KeyAttribute)] = &[
    ("type", KeyAttribute::Type),
    ("value", KeyAttribute::Value),
    ("label", KeyAttribute::Label),
    ("line", KeyAttribute::Line),
    ("states", KeyAttribute::States),
];

/// The keys after `sip ` (global) or `sip lineN ` (per line), lowercased.
pub(super) const LINE_KEYS: &[(&str, LineKey)] = &[
    ("user name", LineKey::UserName),
    ("auth name", LineKey::AuthName),
    ("password", LineKey::Password),
    ("display name", LineKey::DisplayName),
    ("proxy ip", LineKey::ProxyIp),
    ("proxy port", LineKey::ProxyPort),
    ("backup proxy ip", LineKey::BackupProxyIp),
    ("backup proxy port", LineKey::BackupProxyPort),
    ("registrar ip", LineKey::RegistrarIp),
    ("registrar port", LineKey::RegistrarPort),
    ("backup registrar ip", LineKey::BackupRegistrarIp),
    ("backup registrar port", LineKey::BackupRegistrarPort),
    ("registration period", LineKey::RegistrationPeriod),
];

/// Global-only keys, complete, spelled as the vendor does.
pub(super) const GLOBAL_KEYS: &[(&str, GlobalKey)] = &[
    ("sip outbound proxy", GlobalKey::OutboundProxy),
    ("sip outbound proxy port", GlobalKey::OutboundProxyPort),
    ("sip backup outbound proxy", GlobalKey::BackupOutboundProxy),
    ("sip backup outbound proxy port", GlobalKey::BackupOutboundProxyPort),
    ("sip outbound support", GlobalKey::OutboundSupport),
    ("sip registration retry timer", GlobalKey::RegistrationRetryTimer),
    ("sip registration timeout retry timer", GlobalKey::RegistrationTimeoutRetryTimer),
    ("sip subscription timeout retry timer", GlobalKey::SubscriptionTimeoutRetryTimer),
    ("sip subscription failed retry timer", GlobalKey::SubscriptionFailedRetryTimer),
    ("sip transport protocol", GlobalKey::TransportProtocol),
    ("sip T1 timer", GlobalKey::T1Timer),
    ("sip T2 timer", GlobalKey::T2Timer),
    ("sip transaction timer", GlobalKey::TransactionTimer),
    ("sip persistent tls keep alive", GlobalKey::PersistentTlsKeepAlive),
    ("refphone failback probe interval", GlobalKey::FailbackProbeInterval),
    ("refphone pong timeout", GlobalKey::PongTimeout),
    ("refphone stun rto", GlobalKey::StunRto),
    ("refphone outbound base time", GlobalKey::OutboundBaseTime),
    ("refphone outbound max time", GlobalKey::OutboundMaxTime),
    ("refphone keep alive interval", GlobalKey::KeepAliveInterval),
    ("refphone subscription period", GlobalKey::SubscriptionPeriod),
    ("refphone call duration", GlobalKey::CallDuration),
    ("sip explicit mwi subscription", GlobalKey::ExplicitMwiSubscription),
    ("sip explicit mwi subscription period", GlobalKey::ExplicitMwiSubscriptionPeriod),
    ("xml application post list", GlobalKey::XmlApplicationPostList),
];

/// Every key the cfg accepts, `N` standing for a line number; for `--help`.
pub fn supported_keys() -> Vec<String> {
    let mut keys: Vec<String> = LINE_KEYS.iter().map(|(k, _)| format!("sip {k}")).collect();
    keys.extend(GLOBAL_KEYS.iter().map(|(k, _)| (*k).to_owned()));
    keys.extend(LINE_KEYS.iter().map(|(k, _)| format!("sip lineN {k}")));
    for family in [KeyFamily::SoftKey, KeyFamily::TopSoftKey, KeyFamily::ProgrammableKey] {
        keys.extend(KEY_ATTRIBUTES.iter().map(|(a, _)| format!("{}N {a}", family.prefix())));
    }
    keys
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key {
    /// A line key, global (`None`) or for one line.
    Line(Option<u8>, LineKey),
    Global(GlobalKey),
    /// `softkeyN type`, `prgkeyN value`, ...
    Programmable(KeyFamily, u16, KeyAttribute),
}

impl Key {
    /// Parses a lowercased key with collapsed whitespace.
    pub(super) fn parse(normalised: &str) -> Option<Key> {
        if let Some(&(_, key)) = GLOBAL_KEYS.iter().find(|(k, _)| k.eq_ignore_ascii_case(normalised)) {
            return Some(Key::Global(key));
        }
        // Longest prefix first: `topsoftkey` before `softkey`.
        for family in [KeyFamily::TopSoftKey, KeyFamily::SoftKey, KeyFamily::ProgrammableKey] {
            if let Some(after) = normalised.strip_prefix(family.prefix()) {
                let digits_end = after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len());
                let number: u16 = after[..digits_end].parse().ok().filter(|n| (1..=MAX_KEY).contains(n))?;
                let attribute = after[digits_end..].strip_prefix(' ')?;
                let &(_, attribute) = KEY_ATTRIBUTES.iter().find(|(a, _)| *a == attribute)?;
                return Some(Key::Programmable(family, number, attribute));
            }
        }
        let rest = normalised.strip_prefix("sip ")?;
        let (scope, rest) = match rest.strip_prefix("line") {
            Some(after) => {
                let digits_end = after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len());
                let number: u8 = after[..digits_end].parse().ok().filter(|n| (1..=MAX_LINE).contains(n))?;
                (Some(number), after[digits_end..].strip_prefix(' ')?)
            }
            None => (None, rest),
        };
        LINE_KEYS.iter().find(|(k, _)| *k == rest).map(|&(_, key)| Key::Line(scope, key))
    }
}

pub(super) fn set_line_key(settings: &mut LineSettings, key: LineKey, value: &str) -> Result<(), String> {
    use LineKey as L;
    match key {
        L::UserName => settings.user_name = Some(parse_text(value)),
        L::AuthName => settings.auth_name = Some(parse_text(value)),
        L::Password => settings.password = Some(parse_text(value)),
        L::DisplayName => settings.display_name = Some(parse_text(value)),
        L::ProxyIp => settings.proxy.host = Some(parse_host(value)?),
        L::ProxyPort => settings.proxy.port = Some(parse_port(value)?),
        L::BackupProxyIp => settings.backup_proxy.host = Some(parse_host(value)?),
        L::BackupProxyPort => settings.backup_proxy.port = Some(parse_port(value)?),
        L::RegistrarIp => settings.registrar.host = Some(parse_host(value)?),
        L::RegistrarPort => settings.registrar.port = Some(parse_port(value)?),
        L::BackupRegistrarIp => settings.backup_registrar.host = Some(parse_host(value)?),
        L::BackupRegistrarPort => settings.backup_registrar.port = Some(parse_port(value)?),
        L::RegistrationPeriod => settings.registration_period = Some(parse_seconds(value, Bound::Positive)?),
    }
    Ok(())
}

/// A text value; one pair of surrounding double quotes is removed.
pub(super) fn parse_text(value: &str) -> String {
    value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value).to_owned()
}

/// A host: an FQDN, an IPv4 or IPv6 address; `0.0.0.0` or empty switches the server off.
pub(super) fn parse_host(value: &str) -> Result<HostSetting, String> {
    let value = parse_text(value);
    if value.is_empty() || value == "0.0.0.0" {
        return Ok(HostSetting::Disabled);
    }
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Ok(HostSetting::Host(Host::from(ip)));
    }
    Host::parse(&value)
        .map(HostSetting::Host)
        .map_err(|_| format!("expected a host name or an IP address, got {value:?}"))
}

pub(super) fn parse_port(value: &str) -> Result<u16, String> {
    value.parse::<u16>().map_err(|_| format!("expected a port number 0-65535 (0 for SRV), got {value:?}"))
}

pub(super) fn parse_flag(value: &str) -> Result<bool, String> {
    match value {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(format!("expected 0 or 1, got {value:?}")),
    }
}

pub(super) fn parse_transport(value: &str) -> Result<TransportProtocol, String> {
    match value {
        "0" => Ok(TransportProtocol::UdpAndTcp),
        "1" => Ok(TransportProtocol::Udp),
        "2" => Ok(TransportProtocol::Tcp),
        "4" => Ok(TransportProtocol::Tls),
        _ => Err(format!("expected 0 (UDP and TCP), 1 (UDP), 2 (TCP) or 4 (TLS), got {value:?}")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Bound {
    Positive,
    ZeroAllowed,
}

pub(super) fn parse_number(value: &str, unit: &str, bound: Bound) -> Result<f64, String> {
    let number: f64 = value.parse().map_err(|_| format!("expected a number of {unit}, got {value:?}"))?;
    let ok = number.is_finite()
        && match bound {
            Bound::Positive => number > 0.0,
            Bound::ZeroAllowed => number >= 0.0,
        };
    // Durations beyond a century are a typo, and would overflow Instant arithmetic.
    if !ok || number > 3.2e9 {
        let range = if bound == Bound::Positive { "above 0" } else { "0 or more" };
        return Err(format!("expected a number of {unit} {range}, got {value:?}"));
    }
    Ok(number)
}

/// Seconds, fractions allowed.
pub(super) fn parse_seconds(value: &str, bound: Bound) -> Result<Duration, String> {
    parse_number(value, "seconds", bound).map(Duration::from_secs_f64)
}

/// Milliseconds, fractions allowed, above 0.
pub(super) fn parse_millis(value: &str) -> Result<Duration, String> {
    parse_number(value, "milliseconds", Bound::Positive).map(|ms| Duration::from_secs_f64(ms / 1000.0))
}
