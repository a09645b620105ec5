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
    /// RFC 5389 §7.2.1 initial RTO of STUN keep-alives on UDP (`refphone stun rto`, ms).
    pub stun_rto: Option<Duration>,
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
    /// RFC 5626 §4.4.1: a CRLF ping on TCP/TLS unanswered this long means the flow failed.
    pub pong_timeout: Duration,
    /// RFC 5389 §7.2.1: a STUN keep-alive on UDP is retransmitted after this, doubling, 7 sends
    /// in all; 16 times it after the last, the flow failed (79 times it from the first send).
    pub stun_rto: Duration,
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
    /// RFC 5389 §7.2.1: the recommended initial RTO of a STUN transaction.
    pub const STUN_RTO: Duration = Duration::from_millis(500);
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
            G::StunRto => self.refphone.stun_rto = Some(parse_millis(value)?),
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
            stun_rto: refphone.stun_rto.unwrap_or(defaults::STUN_RTO),
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
mod keys;
#[cfg(test)]
mod tests;

pub use keys::supported_keys;
use keys::*;
