//! Quirks: named, deliberate breakages of the reference phone, so each conformance case can prove it fails (BRIEF §6).

use std::collections::BTreeSet;
use std::fmt;

use crate::error::PhoneError;

/// One deliberate breakage. Each breaks exactly one behaviour a case checks, except `requery-dns`,
/// a legal variant every case must pass with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Quirk {
    /// Never uses the backup registrar; keeps retrying the primary (breaks R1.2).
    NoBackupRegistrar,
    /// Refreshes a registration only after it expired: at 1.25x the granted expiry instead of 0.5x.
    LateRefresh,
    /// Starts with the backups, as if primary and backup were swapped (breaks R1.1, R2.1, R3.1).
    BackupFirst,
    /// Never uses the backup proxy: no backup AOR, subscriptions stay at the primary (breaks R1.3).
    NoBackupProxy,
    /// Never probes a failed primary, so it never moves back while the backup works (breaks R1.4, R1.5, R2.3, R3.3).
    NoFailback,
    /// The AOR stays the primary proxy's whatever proxy is active (breaks R1.3, R1.5, R2.2).
    KeepAor,
    /// Subscriptions never move with the proxy: they keep retrying the primary proxy (breaks R1.3, R2.2).
    SubscriptionsStay,
    /// At failback the binding held at the backup registrar is left to expire, not un-REGISTERed.
    NoUnregisterBackup,
    /// At failback the subscriptions at the backup proxy are left to expire, not un-SUBSCRIBEd.
    NoUnsubscribeBackup,
    /// Moves a subscription by re-using its old dialog (same Call-ID and From tag) instead of a new one.
    ReuseSubscriptionDialog,
    /// Keeps refreshing a subscription the proxy answered 481 to, instead of starting a new one.
    Ignore481,
    /// Resolves each name once and uses the answer for ever, past its TTL (breaks F5).
    IgnoreDnsTtl,
    /// Tries SRV targets highest priority value first, the reverse of RFC 2782 (breaks F5).
    IgnoreSrvPriority,
    /// Asks the DNS before every request, within the TTL and on open TCP/TLS flows too: allowed
    /// by F5, so it breaks nothing, and every F5 case must pass with it.
    RequeryDns,
    /// Never sends RFC 5626 keep-alives (breaks F3).
    NoKeepalive,
    /// Sends keep-alives at 150% of Flow-Timer, beyond the RFC 5626 bound of 100% (breaks F3).
    KeepaliveTooSlow,
    /// Sends keep-alives even when the registrar's 2xx lacks `Require: outbound`.
    KeepaliveWithoutRequire,
    /// Never re-establishes a failed outbound flow (breaks F4).
    NoFlowRecovery,
    /// Re-establishes a failed flow at a tenth of the base time, below the RFC 5626 backoff's lower bound (breaks F4).
    BackoffTooEager,
    /// Uses UDP whatever `sip transport protocol` says.
    UdpOnly,
    /// Never moves to the backup outbound proxy (breaks R2.2, R3.2).
    NoOutboundProxyFailover,
    /// Makes a new +sip.instance at every start instead of keeping the one in --state-dir.
    NewInstanceEachBoot,
    /// Ignores ICMP port unreachable and connection resets; notices failures only by the transaction timer.
    IgnoreIcmp,
    /// Moves back to a failed primary after the probe interval whether or not the probe was answered.
    Flap,
    /// Probes a failed primary every T1 instead of once per probe interval.
    ProbeStorm,
    /// Ignores a 503's Retry-After: probes and retries the server on its usual timers.
    IgnoreRetryAfter,
    /// After a failback keeps refreshing the binding at the backup as well as the new one.
    RegisterBoth,
    /// A moved subscription gets a new Call-ID but keeps the old dialog's From tag.
    SameFromTag,
    /// INVITEs go to the primary proxy even while it is marked failed.
    CallToFailedProxy,
    /// At proxy failback the backup AOR's binding is left at the registrar, not un-REGISTERed.
    StaleBackupAor,
    /// At failback the un-REGISTER of the backup binding goes straight to the backup registrar, not through the backup outbound proxy.
    UnregisterBypassesOutbound,
    /// Declares a server failed after T1 without an answer instead of at the transaction timeout.
    EagerFailover,
    /// On a 481 to a subscription refresh, drops the subscription for good.
    NoResubscribeOn481,
    /// Every 408, 5xx and 6xx fails the server over, a callee's 603 Decline to an INVITE included.
    FailoverOnDecline,
    /// A 430 Flow Failed that reaches the phone fails its flow over.
    FailoverOn430,
    /// Row 2 probes only the primary outbound proxy, whatever failed behind it.
    ProbeOutboundOnly,
    /// A TCP/TLS connection to a primary reset or closed with no request on it fails that primary over.
    FailoverOnReset,
    /// With a primary registrar and its backup both down, REGISTERs again every T1 instead of after the retry timer.
    RetryStorm,
}

impl Quirk {
    pub const ALL: [Quirk; 38] = [
        Quirk::NoBackupRegistrar,
        Quirk::LateRefresh,
        Quirk::BackupFirst,
        Quirk::NoBackupProxy,
        Quirk::NoFailback,
        Quirk::KeepAor,
        Quirk::SubscriptionsStay,
        Quirk::NoUnregisterBackup,
        Quirk::NoUnsubscribeBackup,
        Quirk::ReuseSubscriptionDialog,
        Quirk::Ignore481,
        Quirk::IgnoreDnsTtl,
        Quirk::IgnoreSrvPriority,
        Quirk::RequeryDns,
        Quirk::NoKeepalive,
        Quirk::KeepaliveTooSlow,
        Quirk::KeepaliveWithoutRequire,
        Quirk::NoFlowRecovery,
        Quirk::BackoffTooEager,
        Quirk::UdpOnly,
        Quirk::NoOutboundProxyFailover,
        Quirk::NewInstanceEachBoot,
        Quirk::IgnoreIcmp,
        Quirk::Flap,
        Quirk::ProbeStorm,
        Quirk::IgnoreRetryAfter,
        Quirk::RegisterBoth,
        Quirk::SameFromTag,
        Quirk::CallToFailedProxy,
        Quirk::StaleBackupAor,
        Quirk::UnregisterBypassesOutbound,
        Quirk::EagerFailover,
        Quirk::NoResubscribeOn481,
        Quirk::FailoverOnDecline,
        Quirk::FailoverOn430,
        Quirk::ProbeOutboundOnly,
        Quirk::FailoverOnReset,
        Quirk::RetryStorm,
    ];

    /// The name given to `--quirk`.
    pub fn name(self) -> &'static str {
        match self {
            Quirk::NoBackupRegistrar => "no-backup-registrar",
            Quirk::LateRefresh => "late-refresh",
            Quirk::BackupFirst => "backup-first",
            Quirk::NoBackupProxy => "no-backup-proxy",
            Quirk::NoFailback => "no-failback",
            Quirk::KeepAor => "keep-aor",
            Quirk::SubscriptionsStay => "subscriptions-stay",
            Quirk::NoUnregisterBackup => "no-unregister-backup",
            Quirk::NoUnsubscribeBackup => "no-unsubscribe-backup",
            Quirk::ReuseSubscriptionDialog => "reuse-subscription-dialog",
            Quirk::Ignore481 => "ignore-481",
            Quirk::IgnoreDnsTtl => "ignore-dns-ttl",
            Quirk::IgnoreSrvPriority => "ignore-srv-priority",
            Quirk::RequeryDns => "requery-dns",
            Quirk::NoKeepalive => "no-keepalive",
            Quirk::KeepaliveTooSlow => "keepalive-too-slow",
            Quirk::KeepaliveWithoutRequire => "keepalive-without-require",
            Quirk::NoFlowRecovery => "no-flow-recovery",
            Quirk::BackoffTooEager => "backoff-too-eager",
            Quirk::UdpOnly => "udp-only",
            Quirk::NoOutboundProxyFailover => "no-outbound-proxy-failover",
            Quirk::NewInstanceEachBoot => "new-instance-each-boot",
            Quirk::IgnoreIcmp => "ignore-icmp",
            Quirk::Flap => "flap",
            Quirk::ProbeStorm => "probe-storm",
            Quirk::IgnoreRetryAfter => "ignore-retry-after",
            Quirk::RegisterBoth => "register-both",
            Quirk::SameFromTag => "same-from-tag",
            Quirk::CallToFailedProxy => "call-to-failed-proxy",
            Quirk::StaleBackupAor => "stale-backup-aor",
            Quirk::UnregisterBypassesOutbound => "unregister-bypasses-outbound",
            Quirk::EagerFailover => "eager-failover",
            Quirk::NoResubscribeOn481 => "no-resubscribe-on-481",
            Quirk::FailoverOnDecline => "failover-on-decline",
            Quirk::FailoverOn430 => "failover-on-430",
            Quirk::ProbeOutboundOnly => "probe-outbound-only",
            Quirk::FailoverOnReset => "failover-on-reset",
            Quirk::RetryStorm => "retry-storm",
        }
    }

    /// What the quirk breaks, for `--list-quirks`: one line ending with the requirement it breaks in parentheses.
    pub fn breaks(self) -> &'static str {
        match self {
            Quirk::NoBackupRegistrar => {
                "never registers at the backup registrar; keeps retrying the primary after every failure (R1.2)"
            }
            Quirk::LateRefresh => {
                "refreshes a registration at 1.25x the granted expiry, after the binding expired, instead of 0.5x \
                 (RFC3261-10.2.4)"
            }
            Quirk::BackupFirst => {
                "sends its first requests to the backup registrar, proxy and outbound proxy; also breaks R2.1, R3.1 \
                 (R1.1)"
            }
            Quirk::NoBackupProxy => {
                "never uses the backup proxy: keeps the primary AOR and subscriptions after the proxy fails (R1.3)"
            }
            Quirk::NoFailback => {
                "never probes a failed primary, so stays on the backup after the primary returns; also breaks R1.5, \
                 R2.3, R3.3 (R1.4)"
            }
            Quirk::KeepAor => {
                "registers the primary proxy's AOR whatever proxy is active; also breaks R1.5, R2.2 (R1.3)"
            }
            Quirk::SubscriptionsStay => {
                "leaves subscriptions at the primary proxy when the proxy fails over; also breaks R2.2 (R1.3)"
            }
            Quirk::NoUnregisterBackup => {
                "does not un-REGISTER (Expires: 0) the binding held at the backup registrar at failback (R1.4)"
            }
            Quirk::NoUnsubscribeBackup => {
                "does not un-SUBSCRIBE (Expires: 0) from the backup proxy at failback; also breaks R2.3 (R1.5)"
            }
            Quirk::ReuseSubscriptionDialog => {
                "moves a subscription in its old dialog (same Call-ID and From tag) instead of a new dialog (R1.3)"
            }
            Quirk::Ignore481 => {
                "keeps refreshing a subscription answered 481 instead of starting a new one (proxy restart) \
                 (RFC6665-4.1.2.4)"
            }
            Quirk::IgnoreDnsTtl => "resolves each name once and keeps using the answer after its TTL ran out (F5)",
            Quirk::IgnoreSrvPriority => {
                "tries SRV targets highest priority value first, the reverse of RFC 2782, so the first request goes \
                 to the least preferred target (F5)"
            }
            Quirk::RequeryDns => {
                "re-queries the DNS before every request, within the TTL too and on open TCP/TLS flows: allowed by \
                 F5, so every case must pass with it (F5)"
            }
            Quirk::NoKeepalive => "sends no RFC 5626 keep-alives (CRLF ping or STUN) on its flows (F3)",
            Quirk::KeepaliveTooSlow => "sends keep-alives at 150% of Flow-Timer instead of 80-100% (F3)",
            Quirk::KeepaliveWithoutRequire => {
                "sends keep-alives although the registrar's 2xx lacks Require: outbound (F3)"
            }
            Quirk::NoFlowRecovery => "never re-establishes a failed outbound flow in the background (F4)",
            Quirk::BackoffTooEager => {
                "re-establishes a failed flow after a tenth of the base time, below the RFC 5626 backoff (F4)"
            }
            Quirk::UdpOnly => "uses UDP whatever sip transport protocol says (C1)",
            Quirk::NoOutboundProxyFailover => "never moves to the backup outbound proxy; also breaks R3.2 (R2.2)",
            Quirk::NewInstanceEachBoot => {
                "makes a new +sip.instance at every start instead of keeping the one in --state-dir (F2)"
            }
            Quirk::IgnoreIcmp => {
                "ignores ICMP port unreachable and TCP resets; notices a refused server only by the transaction timer \
                 (R1.2)"
            }
            Quirk::Flap => {
                "moves back to a failed primary one probe interval after failing over whether or not the probe was \
                 answered, then fails over again: it does not stay at the backup registrar (R1.2)"
            }
            Quirk::ProbeStorm => {
                "probes a failed primary with OPTIONS every T1 instead of once per probe interval (R1.2)"
            }
            Quirk::IgnoreRetryAfter => {
                "ignores a 503's Retry-After: probes and retries that server on its usual timers (RFC3261-21.5.4)"
            }
            Quirk::RegisterBoth => {
                "after failback keeps refreshing the binding at the backup registrar too: two active registrations \
                 (R1.4)"
            }
            Quirk::SameFromTag => {
                "a moved subscription gets a new Call-ID but keeps the old From tag; also breaks R2.2, R3.2 (R1.3)"
            }
            Quirk::CallToFailedProxy => {
                "sends INVITEs to the primary proxy even while it is marked failed; also breaks R2.2 (R1.3)"
            }
            Quirk::StaleBackupAor => {
                "at proxy failback leaves the backup AOR's binding at the registrar instead of un-REGISTERing it (R1.5)"
            }
            Quirk::UnregisterBypassesOutbound => {
                "at failback in row 2 sends the un-REGISTER of the backup binding straight to the backup registrar, \
                 not through the backup outbound proxy (R2.3)"
            }
            Quirk::EagerFailover => {
                "declares a server failed after T1 without an answer instead of at the transaction timeout, so a \
                 slow but healthy primary is failed over; also breaks R2.1, R3.1 (R1.1)"
            }
            Quirk::NoResubscribeOn481 => {
                "drops a subscription whose refresh got 481 and never starts a new one (RFC6665-4.1.2.4)"
            }
            Quirk::FailoverOnDecline => {
                "fails the server over on every 408, 5xx and 6xx, a callee's 603 Decline or 408 to an INVITE included \
                 (R1.1)"
            }
            Quirk::FailoverOn430 => {
                "treats a 430 Flow Failed it receives as a failed flow and fails over; also breaks R2.1 (R1.1)"
            }
            Quirk::ProbeOutboundOnly => {
                "in row 2 probes only the primary outbound proxy, so moves back while the registrar or proxy behind \
                 it is still failed: it does not stay at the backups (R2.2)"
            }
            Quirk::FailoverOnReset => {
                "takes a TCP/TLS connection to a primary registrar, proxy or outbound proxy that the server reset or \
                 closed with no request on it for a failed server and moves to the backup, instead of connecting \
                 again to the primary that still listens; also breaks R2.1, R3.1 (R1.1)"
            }
            Quirk::RetryStorm => {
                "with a primary registrar and its backup both down, sends REGISTER again every T1 (primary, then \
                 backup) instead of no faster than sip registration retry timer (R1.2)"
            }
        }
    }

    /// The requirement the quirk breaks (BRIEF §2): the ID its [`Quirk::breaks`] text ends with.
    pub fn requirement(self) -> &'static str {
        match self {
            Quirk::BackupFirst
            | Quirk::EagerFailover
            | Quirk::FailoverOnDecline
            | Quirk::FailoverOn430
            | Quirk::FailoverOnReset => "R1.1",
            Quirk::NoBackupRegistrar | Quirk::IgnoreIcmp | Quirk::ProbeStorm | Quirk::Flap | Quirk::RetryStorm => {
                "R1.2"
            }
            Quirk::NoBackupProxy
            | Quirk::KeepAor
            | Quirk::SubscriptionsStay
            | Quirk::ReuseSubscriptionDialog
            | Quirk::SameFromTag
            | Quirk::CallToFailedProxy => "R1.3",
            Quirk::NoFailback | Quirk::NoUnregisterBackup | Quirk::RegisterBoth => "R1.4",
            Quirk::NoUnsubscribeBackup | Quirk::StaleBackupAor => "R1.5",
            Quirk::NoOutboundProxyFailover | Quirk::ProbeOutboundOnly => "R2.2",
            Quirk::UnregisterBypassesOutbound => "R2.3",
            Quirk::UdpOnly => "C1",
            Quirk::NewInstanceEachBoot => "F2",
            Quirk::NoKeepalive | Quirk::KeepaliveTooSlow | Quirk::KeepaliveWithoutRequire => "F3",
            Quirk::NoFlowRecovery | Quirk::BackoffTooEager => "F4",
            Quirk::IgnoreDnsTtl | Quirk::IgnoreSrvPriority | Quirk::RequeryDns => "F5",
            Quirk::LateRefresh => "RFC3261-10.2.4",
            Quirk::IgnoreRetryAfter => "RFC3261-21.5.4",
            Quirk::Ignore481 | Quirk::NoResubscribeOn481 => "RFC6665-4.1.2.4",
        }
    }

    pub fn parse(name: &str) -> Result<Quirk, PhoneError> {
        Quirk::ALL.into_iter().find(|q| q.name() == name).ok_or_else(|| PhoneError::UnknownQuirk {
            name: name.to_owned(),
            known: Quirk::ALL.map(Quirk::name).join(", "),
        })
    }
}

impl fmt::Display for Quirk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The quirks switched on for one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quirks(BTreeSet<Quirk>);

impl Quirks {
    pub fn none() -> Quirks {
        Quirks::default()
    }

    pub fn parse_all<S: AsRef<str>>(names: &[S]) -> Result<Quirks, PhoneError> {
        names.iter().map(|n| Quirk::parse(n.as_ref())).collect::<Result<BTreeSet<_>, _>>().map(Quirks)
    }

    pub fn has(&self, quirk: Quirk) -> bool {
        self.0.contains(&quirk)
    }

    pub fn with(mut self, quirk: Quirk) -> Quirks {
        self.0.insert(quirk);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Quirk> + '_ {
        self.0.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_quirk_parses_back_from_its_name() {
        for quirk in Quirk::ALL {
            assert_eq!(Quirk::parse(quirk.name()).unwrap(), quirk);
        }
    }

    #[test]
    fn an_unknown_quirk_lists_the_known_ones() {
        let err = Quirk::parse("no-such").unwrap_err().to_string();
        assert!(err.contains("no-backup-registrar") && err.contains("late-refresh"), "{err}");
    }

    #[test]
    fn the_quirks_the_issue_names_are_spelled_exactly_so() {
        for name in [
            "no-backup-registrar",
            "late-refresh",
            "backup-first",
            "no-backup-proxy",
            "no-failback",
            "keep-aor",
            "subscriptions-stay",
            "no-unregister-backup",
            "ignore-dns-ttl",
            "no-keepalive",
            "keepalive-too-slow",
            "no-flow-recovery",
            "backoff-too-eager",
            "udp-only",
            "no-outbound-proxy-failover",
        ] {
            assert!(Quirk::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn every_quirk_text_ends_with_the_requirement_it_breaks() {
        for quirk in Quirk::ALL {
            let ending = format!("({})", quirk.requirement());
            assert!(quirk.breaks().ends_with(&ending), "{quirk}: {:?} should end with {ending}", quirk.breaks());
            let id = quirk.requirement();
            let well_formed =
                ["R", "C", "F"].iter().any(|p| id.starts_with(p) && id[1..].starts_with(|c: char| c.is_ascii_digit()))
                    || id.starts_with("RFC");
            assert!(well_formed, "{quirk}: {id}");
        }
    }

    #[test]
    fn every_quirk_is_listed_once() {
        let names: BTreeSet<&str> = Quirk::ALL.iter().map(|q| q.name()).collect();
        assert_eq!(names.len(), Quirk::ALL.len());
    }

    #[test]
    fn every_quirk_says_what_it_breaks_on_one_line() {
        for quirk in Quirk::ALL {
            assert!(!quirk.breaks().is_empty() && !quirk.breaks().contains('\n'), "{quirk}");
        }
    }
}
