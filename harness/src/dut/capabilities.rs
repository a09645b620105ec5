//! What a phone profile declares about itself (servers it can hold, features, timer floors, known deviations), and why a case it cannot run is skipped.

use std::time::Duration;

use crate::case::Case;
use crate::provision::Timers;
use crate::trace::Transport;

/// How the phone decides that a request timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutModel {
    /// The vendor's `sip transaction timer`.
    TransactionTimer,
    /// RFC 3261 Timer F: 64*T1.
    SixtyFourT1,
}

/// The least a phone accepts for each timer the harness provisions: a real phone's registration
/// and retry timers have floors of tens of seconds, and a case provisioned below them would
/// judge the phone by timers it never ran. Zero means no floor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimerFloors {
    /// RFC 3261 T1, for a phone whose T1 is fixed (its 64*T1 is then its transaction timeout).
    pub t1: Duration,
    pub registration_period: Duration,
    pub registration_retry: Duration,
    pub transaction_timer: Duration,
    pub subscription_period: Duration,
    pub failback_probe: Duration,
}

impl TimerFloors {
    /// `timers` with every timer raised to its floor.
    pub fn apply(&self, timers: Timers) -> Timers {
        let t1 = timers.t1.max(self.t1);
        Timers {
            t1,
            t2: timers.t2.max(t1),
            registration_period: timers.registration_period.max(self.registration_period),
            registration_retry: timers.registration_retry.max(self.registration_retry),
            transaction_timer: timers.transaction_timer.max(self.transaction_timer),
            subscription_period: timers.subscription_period.max(self.subscription_period),
            failback_probe: timers.failback_probe.max(self.failback_probe),
            ..timers
        }
    }
}

/// What a phone has and how it times out (BRIEF §6); deadlines derive from it, and a case that
/// needs what the phone lacks is skipped with the reason.
#[derive(Debug, Clone)]
pub struct Capabilities {
    pub backup_registrar: bool,
    pub backup_proxy: bool,
    /// `sip outbound proxy` and `sip backup outbound proxy` (rows 2 and 3).
    pub outbound_proxies: bool,
    /// RFC 5626 SIP outbound (`sip outbound support`).
    pub sip_outbound: bool,
    /// The transports it speaks; TLS means it trusts a CA the harness hands it.
    pub transports: Vec<Transport>,
    /// BLF (`dialog`) and MWI (`message-summary`) subscriptions provisioned from the cfg.
    pub subscriptions: bool,
    /// The harness can make it dial (the vendor's XML push `Dial:`, or a control interface).
    pub dial: bool,
    /// The harness can reboot it (`Command: Reset`) and it keeps its identity across.
    pub reboot: bool,
    /// Whether a REGISTER's Request-URI names the registrar it is meant for (the vendor's phone:
    /// its `sip registrar ip`, so "at registrar X" reads X there, BRIEF §2). A phone without a
    /// registrar setting names its AOR's domain (RFC 3261 §10.2) and reaches the registrar by its
    /// route (an outbound proxy): then the hop alone says which registrar it registered at.
    pub names_registrar_in_request_uri: bool,
    /// Whether the phone reads ICMP port unreachable (connected UDP sockets or IP_RECVERR).
    pub reads_icmp: bool,
    /// An address the phone also speaks from besides its own ([`crate::Topology::phone_alias`]).
    pub phone_alias: Option<std::net::IpAddr>,
    pub timeout_model: TimeoutModel,
    /// How long after start the phone sends its first request.
    pub startup: Duration,
    /// How long the phone takes to act on a command (dial, reboot): nothing for a control
    /// interface, a person's reaction for `manual`.
    pub reaction: Duration,
    /// When the phone refreshes a registration or subscription, as a share of the granted expiry
    /// (RFC 3261 §10.2.4 asks only for "before it expires"; each phone declares its own point).
    pub refresh_share: f64,
    pub floors: TimerFloors,
    /// Case ids (or globs) the profile expects to fail, each with its reason.
    pub expected_failures: Vec<(String, String)>,
    /// Case ids (or globs) whose outcome the phone's own timing makes vary from run to run
    /// (measured: it passed and failed alike), each with why: skipped with that reason, since
    /// neither `pass` nor `xfail` would hold (an expected failure that passes fails the run).
    pub unstable: Vec<(String, String)>,
}

impl Capabilities {
    /// What the reference phone declares: everything the vendor's phone has, every transport it
    /// speaks, ICMP read, the vendor's transaction timer, no floors (it takes the lab's fast timers).
    pub fn reference(transports: Vec<Transport>, startup: Duration) -> Capabilities {
        Capabilities {
            backup_registrar: true,
            backup_proxy: true,
            outbound_proxies: true,
            sip_outbound: true,
            transports,
            subscriptions: true,
            dial: true,
            reboot: true,
            names_registrar_in_request_uri: true,
            reads_icmp: true,
            phone_alias: None,
            timeout_model: TimeoutModel::TransactionTimer,
            startup,
            reaction: Duration::ZERO,
            // refphone refreshes at half the granted expiry.
            refresh_share: 0.5,
            floors: TimerFloors::default(),
            expected_failures: Vec::new(),
            unstable: Vec::new(),
        }
    }

    /// Why `profile` cannot run `case`, if it cannot: the first thing the case needs that the
    /// phone lacks.
    pub fn lacks(&self, case: &Case, profile: &str) -> Option<String> {
        if !self.transports.contains(&case.transport) {
            return Some(format!("{profile} does not speak SIP over {}", case.transport));
        }
        let needs = &case.needs;
        let missing = [
            (needs.backup_registrar && !self.backup_registrar, "has no backup registrar"),
            (needs.backup_proxy && !self.backup_proxy, "has no backup proxy"),
            (case.configuration.has_outbound_proxies() && !self.outbound_proxies, "has no backup outbound proxy"),
            (case.configuration.sip_outbound() && !self.sip_outbound, "does not do RFC 5626 SIP outbound"),
            (needs.subscriptions && !self.subscriptions, "takes no BLF and MWI subscriptions from its cfg"),
            (needs.dial && !self.dial, "cannot be made to dial by the harness"),
            (needs.reboot && !self.reboot, "cannot be rebooted by the harness"),
        ];
        missing.into_iter().find(|(lacking, _)| *lacking).map(|(_, what)| format!("{profile} {what}"))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::{Capabilities, TimerFloors};
    use crate::case::{Case, Needs};
    use crate::provision::{Configuration, Timers};
    use crate::trace::Transport;

    fn case(configuration: Configuration, transport: Transport, needs: Needs) -> Case {
        Case {
            id: Case::id_of("test", configuration, "behaviour", None, transport),
            requirements: Vec::new(),
            configuration,
            transport,
            fault: None,
            needs,
            timers: Timers::fast(),
            lab: crate::lab::standard_lab,
            run: Arc::new(|_| Box::pin(async { Ok(()) })),
        }
    }

    fn softphone() -> Capabilities {
        Capabilities {
            backup_registrar: false,
            backup_proxy: false,
            sip_outbound: false,
            dial: false,
            transports: vec![Transport::Udp],
            ..Capabilities::reference(vec![], Duration::ZERO)
        }
    }

    #[test]
    fn a_case_is_skipped_for_the_first_thing_the_phone_lacks() {
        let phone = softphone();
        let lacks = |c: &Case| phone.lacks(c, "soft");
        let row1 = Needs { backup_registrar: true, backup_proxy: true, ..Needs::NONE };
        assert_eq!(lacks(&case(Configuration::NoOutbound, Transport::Udp, Needs::NONE)), None);
        assert_eq!(
            lacks(&case(Configuration::NoOutbound, Transport::Tls, Needs::NONE)).as_deref(),
            Some("soft does not speak SIP over tls")
        );
        assert_eq!(
            lacks(&case(Configuration::NoOutbound, Transport::Udp, row1)).as_deref(),
            Some("soft has no backup registrar")
        );
        assert_eq!(
            lacks(&case(Configuration::FullBackupRfc5626, Transport::Udp, Needs::NONE)).as_deref(),
            Some("soft does not do RFC 5626 SIP outbound")
        );
        assert_eq!(
            lacks(&case(Configuration::OutboundOnly, Transport::Udp, Needs { dial: true, ..Needs::NONE })).as_deref(),
            Some("soft cannot be made to dial by the harness")
        );
        let reference = Capabilities::reference(vec![Transport::Udp, Transport::Tls], Duration::ZERO);
        let everything = Needs { subscriptions: true, reboot: true, dial: true, ..row1 };
        assert_eq!(reference.lacks(&case(Configuration::FullBackupRfc5626, Transport::Tls, everything), "ref"), None);
    }

    #[test]
    fn floors_raise_the_timers_below_them_and_leave_the_others() {
        let fast = Timers::fast();
        let floors = TimerFloors {
            registration_period: Duration::from_secs(60),
            transaction_timer: Duration::from_millis(1),
            ..TimerFloors::default()
        };
        let raised = floors.apply(fast);
        assert_eq!(raised.registration_period, Duration::from_secs(60));
        assert_eq!(raised.transaction_timer, fast.transaction_timer);
        assert_eq!(raised.t1, fast.t1);
        assert_eq!(TimerFloors::default().apply(fast), fast);
    }
}
