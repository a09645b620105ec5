//! Provisioning: the vendor cfg files (BRIEF §2) a phone is served for a case, built from the case's configuration and topology.

use std::fmt::Write as _;
use std::time::Duration;

use crate::topology::{Element, Topology};
use crate::trace::Transport;

/// The three rows of the seed's table (BRIEF §2); rows 2 and 3 also with SIP outbound on (RFC
/// 5626 flows, `sip outbound support: 1`), since only row 1's heading says it is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Configuration {
    /// Row 1: outbound off, backup proxy and backup registrar.
    NoOutbound,
    /// Row 2: backup proxy, backup registrar and backup outbound proxy.
    FullBackup,
    /// Row 3: backup outbound proxy only.
    OutboundOnly,
    /// Row 2 with SIP outbound on.
    FullBackupRfc5626,
    /// Row 3 with SIP outbound on.
    OutboundOnlyRfc5626,
}

impl Configuration {
    /// The case-id segment (BRIEF §5: `-rfc5626` appended when SIP outbound is on).
    pub fn id_segment(self) -> &'static str {
        match self {
            Configuration::NoOutbound => "no-outbound",
            Configuration::FullBackup => "full-backup",
            Configuration::OutboundOnly => "outbound-only",
            Configuration::FullBackupRfc5626 => "full-backup-rfc5626",
            Configuration::OutboundOnlyRfc5626 => "outbound-only-rfc5626",
        }
    }

    /// Whether the phone is provisioned with `sip outbound support: 1`.
    pub fn sip_outbound(self) -> bool {
        matches!(self, Configuration::FullBackupRfc5626 | Configuration::OutboundOnlyRfc5626)
    }

    /// The same row with SIP outbound on (row 1 has no outbound proxy: itself).
    pub fn with_sip_outbound(self) -> Configuration {
        match self {
            Configuration::FullBackup => Configuration::FullBackupRfc5626,
            Configuration::OutboundOnly => Configuration::OutboundOnlyRfc5626,
            other => other,
        }
    }

    /// Whether the row has a backup proxy and a backup registrar (rows 1 and 2).
    pub fn has_backups(self) -> bool {
        !matches!(self, Configuration::OutboundOnly | Configuration::OutboundOnlyRfc5626)
    }

    /// Whether the row has outbound proxies (rows 2 and 3).
    pub fn has_outbound_proxies(self) -> bool {
        self != Configuration::NoOutbound
    }
}

/// The phone's timers as the harness provisions them; deadlines derive from these.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timers {
    /// `sip registration period`: the expiry the phone asks for.
    pub registration_period: Duration,
    /// `sip registration retry timer`.
    pub registration_retry: Duration,
    /// `sip T1 timer`.
    pub t1: Duration,
    /// `sip T2 timer`.
    pub t2: Duration,
    /// `sip transaction timer`: the vendor's replacement for 64*T1.
    pub transaction_timer: Duration,
    /// How long the phone subscribes for (`sip explicit mwi subscription period`, and refphone's
    /// `refphone subscription period` for BLF): it refreshes before this runs out.
    pub subscription_period: Duration,
    /// How often the phone probes a failed primary (`refphone failback probe interval`).
    pub failback_probe: Duration,
    /// RFC 5626: what the registrars grant as `Flow-Timer` (whole seconds), and the keep-alive
    /// timers the phone is provisioned with.
    pub outbound: OutboundTimers,
}

/// The RFC 5626 timers of a case: the registrars' `Flow-Timer` and the phone's own keys for
/// what the RFC fixes (scaled down for the lab, so flows fail and recover within a case).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutboundTimers {
    /// `Flow-Timer` in the registrars' 2xx (§4.4): keep-alives at 80-100% of it.
    pub flow_timer: Duration,
    /// `sip persistent tls keep alive`: the keep-alive interval without `Flow-Timer`.
    pub keep_alive: Duration,
    /// `refphone pong timeout`: RFC 5626 §4.4.1's 10 s for a CRLF pong.
    pub pong_timeout: Duration,
    /// `refphone stun rto`: RFC 5389's initial STUN retransmission timeout (a transaction gives
    /// up after 79 of them, §7.2.1).
    pub stun_rto: Duration,
    /// `refphone outbound base time`: RFC 5626 §4.5's base-time (30 s, or 90 s with another flow up).
    pub base_time: Duration,
    /// `refphone outbound max time`: RFC 5626 §4.5's max-time (1800 s).
    pub max_time: Duration,
}

impl OutboundTimers {
    /// How long a STUN binding transaction runs before it times out (RFC 5389 §7.2.1: 7 sends,
    /// the waits doubling from RTO, then 16 RTO after the last: 79 RTO).
    pub fn stun_timeout(&self) -> Duration {
        self.stun_rto * 79
    }
}

impl Timers {
    /// Far below the vendor's minimums so CI runs fast; the reference phone accepts them.
    pub fn fast() -> Timers {
        Timers {
            registration_period: Duration::from_secs(2),
            registration_retry: Duration::from_secs(1),
            t1: Duration::from_millis(100),
            t2: Duration::from_millis(400),
            transaction_timer: Duration::from_millis(800),
            subscription_period: Duration::from_secs(2),
            failback_probe: Duration::from_secs(1),
            outbound: OutboundTimers {
                flow_timer: Duration::from_secs(2),
                keep_alive: Duration::from_secs(2),
                pong_timeout: Duration::from_millis(800),
                stun_rto: Duration::from_millis(10),
                base_time: Duration::from_millis(500),
                max_time: Duration::from_secs(4),
            },
        }
    }
}

impl Timers {
    /// What `serve` gives a real phone on a bench: within the vendor's ranges, short enough to
    /// watch a failover happen (a refresh every 30 s, a failed primary probed every 30 s).
    pub fn lab() -> Timers {
        Timers {
            registration_period: Duration::from_secs(60),
            registration_retry: Duration::from_secs(30),
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            transaction_timer: Duration::from_secs(4),
            subscription_period: Duration::from_secs(120),
            failback_probe: Duration::from_secs(30),
            outbound: OutboundTimers {
                flow_timer: Duration::from_secs(30),
                keep_alive: Duration::from_secs(30),
                pong_timeout: Duration::from_secs(10),
                stun_rto: Duration::from_millis(500),
                base_time: Duration::from_secs(30),
                max_time: Duration::from_secs(1800),
            },
        }
    }
}

/// The line the harness provisions (line 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineAccount {
    pub user: String,
    pub auth_name: String,
    pub password: String,
    pub display_name: String,
}

impl Default for LineAccount {
    fn default() -> LineAccount {
        LineAccount {
            user: "1001".into(),
            auth_name: "1001".into(),
            password: "secret-1001".into(),
            display_name: "Lab Phone 1001".into(),
        }
    }
}

/// Everything the phone is served for one case.
#[derive(Debug, Clone)]
pub struct Provisioning {
    pub configuration: Configuration,
    pub transport: Transport,
    pub timers: Timers,
    pub line: LineAccount,
    /// The phone's MAC, naming its `<MAC>.cfg`.
    pub mac: String,
    /// BLF and MWI are provisioned.
    pub subscriptions: bool,
    /// The registrar is named by the registrars' SIP service, not by host and port.
    pub registrar_service: bool,
    /// `aastra.cfg`: servers, transport and timers.
    pub global_cfg: String,
    /// `<MAC>.cfg`: the line's account.
    pub mac_cfg: String,
}

/// The extension the phone watches with BLF.
pub const BLF_EXTENSION: &str = "1002";

/// The MAC the harness gives a phone that has none of its own.
pub const DEFAULT_MAC: &str = "00085D0A0B0C";

/// A MAC as the vendor names files with it: 12 hex digits, upper case; `:` and `-` between
/// the octets are dropped (`00:08:5d:0a:0b:0c` is `00085D0A0B0C`).
pub fn parse_mac(text: &str) -> Result<String, String> {
    let mac: String = text.chars().filter(|c| !matches!(c, ':' | '-')).collect::<String>().to_ascii_uppercase();
    if mac.len() == 12 && mac.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(mac)
    } else {
        Err(format!("{text:?} is not a MAC (12 hex digits)"))
    }
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 { format!("{s:.0}") } else { format!("{s}") }
}

impl Provisioning {
    /// The cfg for a case. `subscriptions` provisions BLF and MWI, for cases that watch them move;
    /// `registrar_service` names the registrar by the registrars' SIP service (port 0: NAPTR and SRV,
    /// RFC 3263) instead of registrar-a and registrar-b by host and port.
    pub fn new(
        configuration: Configuration,
        transport: Transport,
        topology: &Topology,
        timers: Timers,
        subscriptions: bool,
        registrar_service: bool,
        mac: &str,
    ) -> Provisioning {
        let line = LineAccount::default();
        let mut global =
            format!("# Served by sipharness for a {} case over {transport}.\n", configuration.id_segment());
        let mut key = |k: &str, v: String| {
            let _ = writeln!(global, "{k}: {v}");
        };
        let host = |e: Element| topology.fqdn(e);
        let port = if transport == Transport::Tls { "5061" } else { "5060" };
        let backups = configuration.has_backups();
        let outbound = configuration.has_outbound_proxies();
        key("sip proxy ip", host(Element::ProxyA));
        key("sip proxy port", port.into());
        if backups {
            key("sip backup proxy ip", host(Element::ProxyB));
            key("sip backup proxy port", port.into());
        }
        if registrar_service {
            // RFC 3263: the service's NAPTR and SRV records name both registrars (F5).
            key("sip registrar ip", topology.registrar_service());
            key("sip registrar port", "0".into());
        } else {
            key("sip registrar ip", host(Element::RegistrarA));
            key("sip registrar port", port.into());
        }
        if backups && !registrar_service {
            key("sip backup registrar ip", host(Element::RegistrarB));
            key("sip backup registrar port", port.into());
        }
        if outbound {
            key("sip outbound proxy", host(Element::OutboundA));
            key("sip outbound proxy port", port.into());
            key("sip backup outbound proxy", host(Element::OutboundB));
            key("sip backup outbound proxy port", port.into());
        }
        key("sip outbound support", if configuration.sip_outbound() { "1" } else { "0" }.into());
        key(
            "sip transport protocol",
            match transport {
                Transport::Udp => "1",
                Transport::Tcp => "2",
                Transport::Tls => "4",
            }
            .into(),
        );
        key("sip registration period", seconds(timers.registration_period));
        key("sip registration retry timer", seconds(timers.registration_retry));
        key("sip registration timeout retry timer", seconds(timers.registration_retry));
        key("sip T1 timer", timers.t1.as_millis().to_string());
        key("sip T2 timer", timers.t2.as_millis().to_string());
        key("sip transaction timer", timers.transaction_timer.as_millis().to_string());
        if subscriptions {
            // BLF on one extension (RFC 4235) and MWI (RFC 3842).
            key("softkey1 type", "blf".into());
            key("softkey1 value", BLF_EXTENSION.into());
            key("sip explicit mwi subscription", "1".into());
            key("sip explicit mwi subscription period", seconds(timers.subscription_period));
            key("refphone subscription period", seconds(timers.subscription_period));
        }
        key("refphone failback probe interval", seconds(timers.failback_probe));
        if configuration.sip_outbound() {
            let outbound = &timers.outbound;
            key("sip persistent tls keep alive", seconds(outbound.keep_alive));
            key("refphone pong timeout", seconds(outbound.pong_timeout));
            key("refphone stun rto", outbound.stun_rto.as_millis().to_string());
            key("refphone outbound base time", seconds(outbound.base_time));
            key("refphone outbound max time", seconds(outbound.max_time));
        }

        let mut mac_cfg = String::new();
        let _ = writeln!(mac_cfg, "# Line account for the phone with MAC {mac}.");
        let _ = writeln!(mac_cfg, "sip line1 user name: {}", line.user);
        let _ = writeln!(mac_cfg, "sip line1 auth name: {}", line.auth_name);
        let _ = writeln!(mac_cfg, "sip line1 password: {}", line.password);
        let _ = writeln!(mac_cfg, "sip line1 display name: {}", line.display_name);
        Provisioning {
            configuration,
            transport,
            timers,
            line,
            mac: mac.to_owned(),
            subscriptions,
            registrar_service,
            global_cfg: global,
            mac_cfg,
        }
    }

    /// The same files naming every server by address instead of by name, for a phone that cannot
    /// use the lab's DNS (`provision --addressing ip`). A case that names the registrars by their
    /// SIP service (NAPTR and SRV) needs the DNS: that is the error.
    pub fn by_address(&mut self, topology: &Topology) -> Result<(), String> {
        if self.registrar_service {
            return Err(format!(
                "this case names its registrar by the SIP service {} (NAPTR and SRV): the phone needs the lab's DNS",
                topology.registrar_service()
            ));
        }
        for element in Element::ALL {
            self.global_cfg = self.global_cfg.replace(&topology.fqdn(element), &topology.ip(element).to_string());
        }
        Ok(())
    }

    /// The AOR the phone registers while `proxy` is its active proxy (BRIEF §2).
    pub fn aor(&self, topology: &Topology, proxy: Element) -> String {
        format!("sip:{}@{}", self.line.user, topology.fqdn(proxy))
    }
}
