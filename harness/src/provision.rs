//! Provisioning: the vendor cfg files (BRIEF §2) a phone is served for a case, built from the case's configuration and topology.

use std::fmt::Write as _;
use std::time::Duration;

use crate::topology::{Element, Topology};
use crate::trace::Transport;

/// The three rows of the seed's table (BRIEF §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Configuration {
    /// Row 1: outbound off, backup proxy and backup registrar.
    NoOutbound,
    /// Row 2: backup proxy, backup registrar and backup outbound proxy.
    FullBackup,
    /// Row 3: backup outbound proxy only.
    OutboundOnly,
}

impl Configuration {
    /// The case-id segment.
    pub fn id_segment(self) -> &'static str {
        match self {
            Configuration::NoOutbound => "no-outbound",
            Configuration::FullBackup => "full-backup",
            Configuration::OutboundOnly => "outbound-only",
        }
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
    /// `aastra.cfg`: servers, transport and timers.
    pub global_cfg: String,
    /// `<MAC>.cfg`: the line's account.
    pub mac_cfg: String,
}

/// The extension the phone watches with BLF.
pub const BLF_EXTENSION: &str = "1002";

/// The MAC the harness gives a phone that has none of its own.
pub const DEFAULT_MAC: &str = "00085D0A0B0C";

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 { format!("{s:.0}") } else { format!("{s}") }
}

impl Provisioning {
    /// The cfg for a case. `subscriptions` provisions BLF and MWI, for cases that watch them move.
    pub fn new(
        configuration: Configuration,
        transport: Transport,
        topology: &Topology,
        timers: Timers,
        subscriptions: bool,
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
        let backups = configuration != Configuration::OutboundOnly;
        let outbound = configuration != Configuration::NoOutbound;
        key("sip proxy ip", host(Element::ProxyA));
        key("sip proxy port", port.into());
        if backups {
            key("sip backup proxy ip", host(Element::ProxyB));
            key("sip backup proxy port", port.into());
        }
        key("sip registrar ip", host(Element::RegistrarA));
        key("sip registrar port", port.into());
        if backups {
            key("sip backup registrar ip", host(Element::RegistrarB));
            key("sip backup registrar port", port.into());
        }
        if outbound {
            key("sip outbound proxy", host(Element::OutboundA));
            key("sip outbound proxy port", port.into());
            key("sip backup outbound proxy", host(Element::OutboundB));
            key("sip backup outbound proxy port", port.into());
        }
        key("sip outbound support", "0".into());
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

        let mut mac_cfg = String::new();
        let _ = writeln!(mac_cfg, "# Line account for the phone with MAC {mac}.");
        let _ = writeln!(mac_cfg, "sip line1 user name: {}", line.user);
        let _ = writeln!(mac_cfg, "sip line1 auth name: {}", line.auth_name);
        let _ = writeln!(mac_cfg, "sip line1 password: {}", line.password);
        let _ = writeln!(mac_cfg, "sip line1 display name: {}", line.display_name);
        Provisioning { configuration, transport, timers, line, mac: mac.to_owned(), global_cfg: global, mac_cfg }
    }

    /// The AOR the phone registers while `proxy` is its active proxy (BRIEF §2).
    pub fn aor(&self, topology: &Topology, proxy: Element) -> String {
        format!("sip:{}@{}", self.line.user, topology.fqdn(proxy))
    }
}
