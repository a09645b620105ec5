//! The vendor's cfg format (`key: value` lines) parsed into typed settings, and the effective settings of a line.
//!
//! Files apply in the order given, a later value overriding an earlier one; `sip lineN ...` keys
//! override their global `sip ...` equivalents for line N. Keys the vendor does not expose are
//! spelled `refphone ...`. Durations accept fractions and values far below the vendor's minimums.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use sip::Host;

use crate::error::PhoneError;

/// The highest line number a `sip lineN ...` key may name.
pub const MAX_LINE: u8 = 24;
/// The port a server gets when its host is configured without one.
pub const DEFAULT_SIP_PORT: u16 = 5060;

/// A server host as the cfg gives it: switched off (`0.0.0.0` or empty), or a name or address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostSetting {
    Disabled,
    Host(Host),
}

/// A server's host and port as set in the cfg, each possibly unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerSetting {
    pub host: Option<HostSetting>,
    /// 0 asks for an SRV lookup.
    pub port: Option<u16>,
}

impl ServerSetting {
    /// This setting with every unset part taken from `fallback`.
    fn or(&self, fallback: &ServerSetting) -> ServerSetting {
        ServerSetting { host: self.host.clone().or_else(|| fallback.host.clone()), port: self.port.or(fallback.port) }
    }

    /// The server this setting names, if its host is set and not disabled.
    pub fn destination(&self) -> Option<Destination> {
        match &self.host {
            Some(HostSetting::Host(host)) => {
                Some(Destination { host: host.clone(), port: self.port.unwrap_or(DEFAULT_SIP_PORT) })
            }
            _ => None,
        }
    }
}

/// A configured server: its host exactly as written and its port (0 means look up SRV records).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    pub host: Host,
    pub port: u16,
}

impl Destination {
    pub fn uses_srv(&self) -> bool {
        self.port == 0 && self.host.ip().is_none()
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.port == 0 { write!(f, "{}", self.host) } else { write!(f, "{}:{}", self.host, self.port) }
    }
}

/// `sip transport protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportProtocol {
    UdpAndTcp = 0,
    Udp = 1,
    Tcp = 2,
    Tls = 4,
}

/// The settings a `sip lineN ...` key may override, as set (global `sip ...` or one line's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineSettings {
    pub user_name: Option<String>,
    pub auth_name: Option<String>,
    pub password: Option<String>,
    pub display_name: Option<String>,
    pub proxy: ServerSetting,
    pub backup_proxy: ServerSetting,
    pub registrar: ServerSetting,
    pub backup_registrar: ServerSetting,
    pub registration_period: Option<Duration>,
}

impl LineSettings {
    fn or(&self, global: &LineSettings) -> LineSettings {
        LineSettings {
            user_name: self.user_name.clone().or_else(|| global.user_name.clone()),
            auth_name: self.auth_name.clone().or_else(|| global.auth_name.clone()),
            password: self.password.clone().or_else(|| global.password.clone()),
            display_name: self.display_name.clone().or_else(|| global.display_name.clone()),
            proxy: self.proxy.or(&global.proxy),
            backup_proxy: self.backup_proxy.or(&global.backup_proxy),
            registrar: self.registrar.or(&global.registrar),
            backup_registrar: self.backup_registrar.or(&global.backup_registrar),
            registration_period: self.registration_period.or(global.registration_period),
        }
    }
}

/// Timers the vendor does not expose, set with `refphone ...` keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefphoneSettings {
    /// How often a failed primary is probed (used once failback lands).
    pub failback_probe_interval: Option<Duration>,
    /// RFC 5626 §4.4.1 pong timeout (used once TCP/TLS keep-alives land).
    pub pong_timeout: Option<Duration>,
    /// RFC 5626 §4.5 base-time when all flows failed (used once outbound lands).
    pub outbound_base_time: Option<Duration>,
    /// RFC 5626 §4.5 max-time (used once outbound lands).
    pub outbound_max_time: Option<Duration>,
    /// Keep-alive interval without Flow-Timer (used once outbound lands).
    pub keep_alive_interval: Option<Duration>,
    /// The expiry a BLF SUBSCRIBE asks for.
    pub subscription_period: Option<Duration>,
    /// How long a call placed with `Dial:` lasts before the phone hangs up.
    pub call_duration: Option<Duration>,
}

/// What a programmable key does, from `softkeyN type` / `topsoftkeyN type` / `prgkeyN type`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySetting {
    /// The key's type as written, lowercased (`blf`, `speeddial`, `none`, ...).
    pub kind: Option<String>,
    /// The key's value: for `blf`, the extension to watch.
    pub value: Option<String>,
}

/// The families of programmable keys the cfg may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyFamily {
    SoftKey,
    TopSoftKey,
    ProgrammableKey,
}

impl KeyFamily {
    fn prefix(self) -> &'static str {
        match self {
            KeyFamily::SoftKey => "softkey",
            KeyFamily::TopSoftKey => "topsoftkey",
            KeyFamily::ProgrammableKey => "prgkey",
        }
    }
}

/// The highest key number a `softkeyN ...` key may name.
pub const MAX_KEY: u16 = 100;

/// What the phone subscribes to, from the cfg.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SubscriptionSetting {
    /// RFC 4235 `dialog` event for an extension (a BLF key).
    BusyLampField { extension: String },
    /// RFC 3842 `message-summary` event for the line's own mailbox (explicit MWI).
    MessageWaiting,
}

/// Every setting of the cfg files, as written: `None` where no file set it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhoneConfig {
    /// The global `sip ...` settings lines inherit.
    pub global: LineSettings,
    /// `sip lineN ...` overrides, by line number.
    pub lines: BTreeMap<u8, LineSettings>,
    pub outbound_proxy: ServerSetting,
    pub backup_outbound_proxy: ServerSetting,
    pub outbound_support: Option<bool>,
    pub registration_retry_timer: Option<Duration>,
    pub registration_timeout_retry_timer: Option<Duration>,
    pub subscription_timeout_retry_timer: Option<Duration>,
    pub subscription_failed_retry_timer: Option<Duration>,
    pub transport_protocol: Option<TransportProtocol>,
    pub t1: Option<Duration>,
    pub t2: Option<Duration>,
    pub transaction_timer: Option<Duration>,
    pub persistent_tls_keep_alive: Option<Duration>,
    /// `sip explicit mwi subscription`.
    pub explicit_mwi_subscription: Option<bool>,
    /// `sip explicit mwi subscription period`.
    pub explicit_mwi_subscription_period: Option<Duration>,
    /// Programmable keys by family and number.
    pub keys: BTreeMap<(KeyFamily, u16), KeySetting>,
    /// `xml application post list`: the addresses allowed to push XML; `None` allows any sender.
    pub xml_application_post_list: Option<Vec<IpAddr>>,
    pub refphone: RefphoneSettings,
}

/// The effective settings of one line: line overrides applied over the global settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineConfig {
    pub line: u8,
    pub user_name: Option<String>,
    /// The digest user name: `auth name`, else `user name`.
    pub auth_name: Option<String>,
    pub password: String,
    pub display_name: Option<String>,
    pub proxy: Option<Destination>,
    pub backup_proxy: Option<Destination>,
    pub registrar: Option<Destination>,
    pub backup_registrar: Option<Destination>,
    pub registration_period: Duration,
}

/// The SIP timers in effect, defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipTimers {
    pub t1: Duration,
    pub t2: Duration,
    /// The vendor's replacement for Timer F (64*T1).
    pub transaction_timer: Duration,
    pub registration_retry: Duration,
    pub registration_timeout_retry: Duration,
    /// `sip subscription failed retry timer`: after a SUBSCRIBE is refused.
    pub subscription_failed_retry: Duration,
    /// `sip subscription timeout retry timer`: after a SUBSCRIBE got no answer from either proxy.
    pub subscription_timeout_retry: Duration,
}

impl Default for SipTimers {
    fn default() -> SipTimers {
        PhoneConfig::default().timers()
    }
}

/// Timers of refphone's own (`refphone ...` keys) and the vendor's subscription and outbound timers, defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhoneTimers {
    /// How often a primary marked failed is probed with OPTIONS (without SIP outbound).
    pub failback_probe_interval: Duration,
    /// RFC 5626 §4.4.1: a CRLF ping or STUN request unanswered this long means the flow failed.
    pub pong_timeout: Duration,
    /// RFC 5626 §4.5 base-time; `None` means the RFC's 30 s when every flow failed, 90 s otherwise.
    pub outbound_base_time: Option<Duration>,
    /// RFC 5626 §4.5 max-time.
    pub outbound_max_time: Duration,
    /// Keep-alive interval when the registrar sends no Flow-Timer.
    pub keep_alive_interval: Duration,
    /// Expiry asked for by BLF subscriptions.
    pub subscription_period: Duration,
    /// Expiry asked for by the MWI subscription.
    pub mwi_subscription_period: Duration,
    /// How long a call placed by XML push lasts.
    pub call_duration: Duration,
}
pub mod defaults {
    use std::time::Duration;
    pub const T1: Duration = Duration::from_millis(500);
    pub const T2: Duration = Duration::from_millis(4000);
    pub const TRANSACTION_TIMER: Duration = Duration::from_millis(4000);
    pub const REGISTRATION_PERIOD: Duration = Duration::from_secs(3600);
    pub const REGISTRATION_RETRY: Duration = Duration::from_secs(1800);
    pub const REGISTRATION_TIMEOUT_RETRY: Duration = Duration::from_secs(120);
    pub const SUBSCRIPTION_FAILED_RETRY: Duration = Duration::from_secs(30);
    pub const SUBSCRIPTION_TIMEOUT_RETRY: Duration = Duration::from_secs(120);
    /// `refphone failback probe interval`: a primary marked failed is probed this often, so its
    /// return is noticed at most this plus the transaction timer after it happens.
    pub const FAILBACK_PROBE_INTERVAL: Duration = Duration::from_secs(30);
    /// RFC 5626 §4.4.1: 10 s without a pong means the flow failed.
    pub const PONG_TIMEOUT: Duration = Duration::from_secs(10);
    /// RFC 5626 §4.5 max-time.
    pub const OUTBOUND_MAX_TIME: Duration = Duration::from_secs(1800);
    /// Keep-alive interval without Flow-Timer: the vendor's `sip persistent tls keep alive` default.
    pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(120);
    pub const SUBSCRIPTION_PERIOD: Duration = Duration::from_secs(3600);
    pub const CALL_DURATION: Duration = Duration::from_secs(2);
}

impl PhoneConfig {
    /// Reads and applies `files` in order.
    pub fn load<P: AsRef<Path>>(files: &[P]) -> Result<PhoneConfig, PhoneError> {
        let mut config = PhoneConfig::default();
        for file in files {
            let file = file.as_ref();
            let text = std::fs::read_to_string(file)
                .map_err(|cause| PhoneError::ConfigUnreadable { file: file.to_owned(), cause })?;
            config.apply(file, &text)?;
        }
        Ok(config)
    }

    /// Applies the text of one cfg file over the settings so far; `file` names it in errors.
    pub fn apply(&mut self, file: &Path, text: &str) -> Result<(), PhoneError> {
        for (index, raw_line) in text.lines().enumerate() {
            let line = raw_line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let error = |key: &str, reason: String| PhoneError::ConfigLine {
                file: file.to_owned(),
                line_number: index + 1,
                key: key.to_owned(),
                reason,
            };
            let Some((raw_key, raw_value)) = line.split_once(':') else {
                return Err(error(line, "expected 'key: value'".into()));
            };
            let key_text = collapse_whitespace(raw_key);
            let key =
                Key::parse(&key_text.to_ascii_lowercase()).ok_or_else(|| error(&key_text, "unknown key".into()))?;
            self.set(key, raw_value.trim()).map_err(|reason| error(&key_text, reason))?;
        }
        Ok(())
    }

    fn set(&mut self, key: Key, value: &str) -> Result<(), String> {
        match key {
            Key::Programmable(family, number, attribute) => {
                let setting = self.keys.entry((family, number)).or_default();
                match attribute {
                    KeyAttribute::Type => {
                        let kind = parse_text(value).to_ascii_lowercase();
                        if !kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                            return Err(format!("expected a key type such as blf or speeddial, got {value:?}"));
                        }
                        setting.kind = Some(kind);
                    }
                    KeyAttribute::Value => setting.value = Some(parse_text(value)),
                    // Accepted for the vendor's sake; the reference phone has no screen and one line.
                    KeyAttribute::Label | KeyAttribute::Line | KeyAttribute::States => {}
                }
                Ok(())
            }
            Key::Line(scope, line_key) => {
                let settings = match scope {
                    None => &mut self.global,
                    Some(n) => self.lines.entry(n).or_default(),
                };
                set_line_key(settings, line_key, value)
            }
            Key::Global(global_key) => self.set_global(global_key, value),
        }
    }

    fn set_global(&mut self, key: GlobalKey, value: &str) -> Result<(), String> {
        use GlobalKey as G;
        match key {
            G::OutboundProxy => self.outbound_proxy.host = Some(parse_host(value)?),
            G::OutboundProxyPort => self.outbound_proxy.port = Some(parse_port(value)?),
            G::BackupOutboundProxy => self.backup_outbound_proxy.host = Some(parse_host(value)?),
            G::BackupOutboundProxyPort => self.backup_outbound_proxy.port = Some(parse_port(value)?),
            G::OutboundSupport => self.outbound_support = Some(parse_flag(value)?),
            G::RegistrationRetryTimer => self.registration_retry_timer = Some(parse_seconds(value, Bound::Positive)?),
            G::RegistrationTimeoutRetryTimer => {
                self.registration_timeout_retry_timer = Some(parse_seconds(value, Bound::Positive)?)
            }
            G::SubscriptionTimeoutRetryTimer => {
                self.subscription_timeout_retry_timer = Some(parse_seconds(value, Bound::Positive)?)
            }
            G::SubscriptionFailedRetryTimer => {
                self.subscription_failed_retry_timer = Some(parse_seconds(value, Bound::Positive)?)
            }
            G::TransportProtocol => self.transport_protocol = Some(parse_transport(value)?),
            G::T1Timer => self.t1 = Some(parse_millis(value)?),
            G::T2Timer => self.t2 = Some(parse_millis(value)?),
            G::TransactionTimer => self.transaction_timer = Some(parse_millis(value)?),
            G::PersistentTlsKeepAlive => {
                self.persistent_tls_keep_alive = Some(parse_seconds(value, Bound::ZeroAllowed)?)
            }
            G::FailbackProbeInterval => {
                self.refphone.failback_probe_interval = Some(parse_seconds(value, Bound::Positive)?)
            }
            G::PongTimeout => self.refphone.pong_timeout = Some(parse_seconds(value, Bound::Positive)?),
            G::OutboundBaseTime => self.refphone.outbound_base_time = Some(parse_seconds(value, Bound::Positive)?),
            G::OutboundMaxTime => self.refphone.outbound_max_time = Some(parse_seconds(value, Bound::Positive)?),
            G::KeepAliveInterval => self.refphone.keep_alive_interval = Some(parse_seconds(value, Bound::Positive)?),
            G::SubscriptionPeriod => self.refphone.subscription_period = Some(parse_seconds(value, Bound::Positive)?),
            G::CallDuration => self.refphone.call_duration = Some(parse_seconds(value, Bound::Positive)?),
            G::ExplicitMwiSubscription => self.explicit_mwi_subscription = Some(parse_flag(value)?),
            G::ExplicitMwiSubscriptionPeriod => {
                self.explicit_mwi_subscription_period = Some(parse_seconds(value, Bound::Positive)?)
            }
            G::XmlApplicationPostList => {
                let list = parse_text(value)
                    .split([',', ' '])
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(|a| {
                        a.parse::<IpAddr>().map_err(|_| format!("expected IP addresses separated by commas, got {a:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                self.xml_application_post_list = Some(list);
            }
        }
        Ok(())
    }

    /// The effective settings of line `line`: its overrides over the global settings, defaults filled in.
    pub fn line(&self, line: u8) -> LineConfig {
        let merged = match self.lines.get(&line) {
            Some(own) => own.or(&self.global),
            None => self.global.clone(),
        };
        let user_name = merged.user_name.filter(|u| !u.is_empty());
        LineConfig {
            line,
            auth_name: merged.auth_name.filter(|a| !a.is_empty()).or_else(|| user_name.clone()),
            user_name,
            password: merged.password.unwrap_or_default(),
            display_name: merged.display_name.filter(|d| !d.is_empty()),
            proxy: merged.proxy.destination(),
            backup_proxy: merged.backup_proxy.destination(),
            registrar: merged.registrar.destination(),
            backup_registrar: merged.backup_registrar.destination(),
            registration_period: merged.registration_period.unwrap_or(defaults::REGISTRATION_PERIOD),
        }
    }

    /// The SIP timers in effect; T2 is never below T1.
    pub fn timers(&self) -> SipTimers {
        let t1 = self.t1.unwrap_or(defaults::T1);
        SipTimers {
            t1,
            t2: self.t2.unwrap_or(defaults::T2).max(t1),
            transaction_timer: self.transaction_timer.unwrap_or(defaults::TRANSACTION_TIMER),
            registration_retry: self.registration_retry_timer.unwrap_or(defaults::REGISTRATION_RETRY),
            registration_timeout_retry: self
                .registration_timeout_retry_timer
                .unwrap_or(defaults::REGISTRATION_TIMEOUT_RETRY),
            subscription_failed_retry: self
                .subscription_failed_retry_timer
                .unwrap_or(defaults::SUBSCRIPTION_FAILED_RETRY),
            subscription_timeout_retry: self
                .subscription_timeout_retry_timer
                .unwrap_or(defaults::SUBSCRIPTION_TIMEOUT_RETRY),
        }
    }

    /// refphone's own timers and the subscription and outbound timers in effect.
    pub fn phone_timers(&self) -> PhoneTimers {
        let refphone = &self.refphone;
        let subscription_period = refphone.subscription_period.unwrap_or(defaults::SUBSCRIPTION_PERIOD);
        PhoneTimers {
            failback_probe_interval: refphone.failback_probe_interval.unwrap_or(defaults::FAILBACK_PROBE_INTERVAL),
            pong_timeout: refphone.pong_timeout.unwrap_or(defaults::PONG_TIMEOUT),
            outbound_base_time: refphone.outbound_base_time,
            outbound_max_time: refphone.outbound_max_time.unwrap_or(defaults::OUTBOUND_MAX_TIME),
            keep_alive_interval: refphone
                .keep_alive_interval
                .or(self.persistent_tls_keep_alive.filter(|d| !d.is_zero()))
                .unwrap_or(defaults::KEEP_ALIVE_INTERVAL),
            subscription_period,
            mwi_subscription_period: self.explicit_mwi_subscription_period.unwrap_or(subscription_period),
            call_duration: refphone.call_duration.unwrap_or(defaults::CALL_DURATION),
        }
    }

    /// The subscriptions the cfg asks for: one BLF per extension on a `blf` key (in key order,
    /// each extension once), then MWI when `sip explicit mwi subscription` is on.
    pub fn subscriptions(&self) -> Vec<SubscriptionSetting> {
        let mut wanted: Vec<SubscriptionSetting> = Vec::new();
        for setting in self.keys.values() {
            let is_blf = matches!(setting.kind.as_deref(), Some("blf") | Some("blfxfer"));
            let Some(extension) = setting.value.as_deref().map(str::trim).filter(|v| !v.is_empty()) else {
                continue;
            };
            let blf = SubscriptionSetting::BusyLampField { extension: extension.to_owned() };
            if is_blf && !wanted.contains(&blf) {
                wanted.push(blf);
            }
        }
        if self.explicit_mwi_subscription == Some(true) {
            wanted.push(SubscriptionSetting::MessageWaiting);
        }
        wanted
    }
}

/// A key with its inner whitespace collapsed (`sip  T1 timer` is `sip T1 timer`); keys compare case-insensitively.
fn collapse_whitespace(raw: &str) -> String {
    raw.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A key a `sip lineN ...` key may override; also valid as the global `sip ...` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineKey {
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
enum GlobalKey {
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
enum KeyAttribute {
    Type,
    Value,
    Label,
    Line,
    States,
}

const KEY_ATTRIBUTES: &[(&str, KeyAttribute)] = &[
    ("type", KeyAttribute::Type),
    ("value", KeyAttribute::Value),
    ("label", KeyAttribute::Label),
    ("line", KeyAttribute::Line),
    ("states", KeyAttribute::States),
];

/// The keys after `sip ` (global) or `sip lineN ` (per line), lowercased.
const LINE_KEYS: &[(&str, LineKey)] = &[
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
const GLOBAL_KEYS: &[(&str, GlobalKey)] = &[
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
enum Key {
    /// A line key, global (`None`) or for one line.
    Line(Option<u8>, LineKey),
    Global(GlobalKey),
    /// `softkeyN type`, `prgkeyN value`, ...
    Programmable(KeyFamily, u16, KeyAttribute),
}

impl Key {
    /// Parses a lowercased key with collapsed whitespace.
    fn parse(normalised: &str) -> Option<Key> {
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

fn set_line_key(settings: &mut LineSettings, key: LineKey, value: &str) -> Result<(), String> {
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
fn parse_text(value: &str) -> String {
    value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value).to_owned()
}

/// A host: an FQDN, an IPv4 or IPv6 address; `0.0.0.0` or empty switches the server off.
fn parse_host(value: &str) -> Result<HostSetting, String> {
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

fn parse_port(value: &str) -> Result<u16, String> {
    value.parse::<u16>().map_err(|_| format!("expected a port number 0-65535 (0 for SRV), got {value:?}"))
}

fn parse_flag(value: &str) -> Result<bool, String> {
    match value {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(format!("expected 0 or 1, got {value:?}")),
    }
}

fn parse_transport(value: &str) -> Result<TransportProtocol, String> {
    match value {
        "0" => Ok(TransportProtocol::UdpAndTcp),
        "1" => Ok(TransportProtocol::Udp),
        "2" => Ok(TransportProtocol::Tcp),
        "4" => Ok(TransportProtocol::Tls),
        _ => Err(format!("expected 0 (UDP and TCP), 1 (UDP), 2 (TCP) or 4 (TLS), got {value:?}")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    Positive,
    ZeroAllowed,
}

fn parse_number(value: &str, unit: &str, bound: Bound) -> Result<f64, String> {
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
fn parse_seconds(value: &str, bound: Bound) -> Result<Duration, String> {
    parse_number(value, "seconds", bound).map(Duration::from_secs_f64)
}

/// Milliseconds, fractions allowed, above 0.
fn parse_millis(value: &str) -> Result<Duration, String> {
    parse_number(value, "milliseconds", Bound::Positive).map(|ms| Duration::from_secs_f64(ms / 1000.0))
}

#[cfg(test)]
mod tests {
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
        let config =
            parse(&[("aastra.cfg", "sip line1 user name: 1001\n"), ("mac.cfg", "sip user name: 2000\n")]).unwrap();
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
        assert_eq!(timers.outbound_base_time, None);
        assert_eq!(timers.outbound_max_time, Duration::from_secs(1800));
        assert_eq!(timers.call_duration, Duration::from_secs(2));
        let config = parse(&[(
            "a.cfg",
            "refphone subscription period: 2.5\nrefphone call duration: 0.5\nrefphone outbound base time: 1\n\
             sip persistent tls keep alive: 20\n",
        )])
        .unwrap();
        let timers = config.phone_timers();
        assert_eq!(timers.subscription_period, Duration::from_millis(2500));
        assert_eq!(
            timers.mwi_subscription_period,
            Duration::from_millis(2500),
            "MWI follows the BLF period unless set"
        );
        assert_eq!(timers.call_duration, Duration::from_millis(500));
        assert_eq!(timers.outbound_base_time, Some(Duration::from_secs(1)));
        assert_eq!(timers.keep_alive_interval, Duration::from_secs(20), "from sip persistent tls keep alive");
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
}
