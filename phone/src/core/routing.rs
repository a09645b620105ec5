//! The failover state machine of the seed's three rows: which registrar, proxy and outbound proxy are active, what a failed request means, and when a primary is back.
//!
//! # The three rows (BRIEF §2)
//!
//! The configured servers decide the [`FailoverScheme`]:
//!
//! - **Row 1, [`FailoverScheme::Independent`]** (no backup outbound proxy): two independent
//!   dimensions. The *registrar* dimension decides where REGISTERs go; the *proxy* dimension
//!   decides where SUBSCRIBEs and INVITEs go and which AOR is registered
//!   (`sip:<user>@<active proxy host>`). A failed REGISTER marks the primary registrar failed; a
//!   failed SUBSCRIBE, INVITE or refresh to the proxy marks the primary proxy failed. Each
//!   dimension is in one of two states, so the phone is in one of four; every order of failures
//!   and returns lands in the state the table implies, because each transition only ever touches
//!   its own dimension:
//!
//!   ```text
//!   registrar:  Primary --(REGISTER to primary fails)--> Backup --(probe of primary answered)--> Primary
//!                  ^                                        |
//!                  +---(REGISTER to backup fails too: primary first again, after the retry timer)
//!   proxy:      Primary --(request to primary proxy fails)--> Backup --(probe answered)--> Primary
//!                  ^                                             |
//!                  +---(request to backup proxy fails too: primary first again, after the retry timer)
//!   ```
//!
//!   A single outbound proxy (no backup) only routes; its failures count for the dimension of
//!   the request's target.
//! - **Row 2, [`FailoverScheme::AllTogether`]** (backup outbound proxy and a backup registrar
//!   or proxy): one dimension, *everything*. Any failed request (a connection failure) flips the
//!   outbound proxy, the registrar and the proxy (and so the AOR) to their backups at once. The
//!   phone remembers which element failed ([`FailedElement`]): the primary outbound proxy when its
//!   own hop failed (a transport error, its name unresolvable), else the registrar or proxy the
//!   request was for, behind the outbound proxy (a timeout, 503 or 408 cannot tell the two apart,
//!   and probing through the outbound proxy tests both). That element is probed (an outbound
//!   proxy directly; a registrar or proxy with an OPTIONS naming it, routed through the primary
//!   outbound proxy), and only its answer moves everything back.
//! - **Row 3, [`FailoverScheme::OutboundOnly`]** (backup outbound proxy, no other backup): one
//!   dimension, the *outbound proxy*. A failed request moves the route to the backup outbound
//!   proxy; AOR and registrar never change; when the primary outbound proxy answers probes, the
//!   route moves back.
//!
//! What counts as a failure is in [`super::server_down`]: no final response before the
//! transaction timer, a transport error, a DNS failure, a 503, or a 408 to a non-INVITE.
//! Probing, and the bound on how late a return is noticed, are in [`super::failback`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;

use sip::{Host, Scheme, SipUri};

use super::CoreSettings;
use crate::config::{DEFAULT_SIP_PORT, Destination};
use crate::quirks::Quirk;

/// Which of a pair of servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Primary,
    Backup,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Primary => "primary",
            Role::Backup => "backup",
        })
    }
}

/// How failures move the phone, decided by which servers are configured (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverScheme {
    /// Row 1: registrar and proxy fail over independently.
    Independent,
    /// Row 2: outbound proxy, registrar and proxy fail over together.
    AllTogether,
    /// Row 3: only the outbound proxy fails over.
    OutboundOnly,
}

/// Something whose primary can be marked failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    Registrar,
    Proxy,
    OutboundProxy,
    /// Row 2: outbound proxy, registrar and proxy as one.
    Everything,
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dimension::Registrar => "registrar",
            Dimension::Proxy => "proxy",
            Dimension::OutboundProxy => "outbound proxy",
            Dimension::Everything => "outbound proxy, registrar and proxy",
        })
    }
}

/// Which server of each pair a request uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Placement {
    pub registrar: Role,
    /// Also decides the AOR.
    pub proxy: Role,
    pub outbound: Role,
}

impl Placement {
    pub const PRIMARY: Placement =
        Placement { registrar: Role::Primary, proxy: Role::Primary, outbound: Role::Primary };

    /// The role this placement gives `dimension` (for [`Dimension::Everything`], the registrar's).
    pub fn role_of(&self, dimension: Dimension) -> Role {
        match dimension {
            Dimension::Registrar | Dimension::Everything => self.registrar,
            Dimension::Proxy => self.proxy,
            Dimension::OutboundProxy => self.outbound,
        }
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "registrar {}, proxy {}, outbound proxy {}", self.registrar, self.proxy, self.outbound)
    }
}

/// The final target of a request: whom its Request-URI names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Registrar,
    Proxy,
}

/// The element a failure is laid at, and so the one probed until it answers again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailedElement {
    Registrar,
    Proxy,
    OutboundProxy,
}

/// A primary server and its backup, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerPair {
    pub primary: Destination,
    pub backup: Option<Destination>,
}

impl ServerPair {
    fn new(primary: Option<Destination>, backup: Option<Destination>) -> Option<ServerPair> {
        // A backup without a primary is not used: the phone starts with the primary.
        primary.map(|primary| ServerPair { primary, backup })
    }

    /// The server of `role`; the primary when there is no backup.
    pub fn get(&self, role: Role) -> &Destination {
        match (role, &self.backup) {
            (Role::Backup, Some(backup)) => backup,
            _ => &self.primary,
        }
    }

    /// `backup-first`: the configured backup is used as if it were the primary.
    fn swapped(self) -> ServerPair {
        match self.backup {
            Some(backup) => ServerPair { primary: backup, backup: Some(self.primary) },
            None => self,
        }
    }
}

/// Where a request goes: its next hop, and the Route naming it when that is an outbound proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub next_hop: Destination,
    /// `<sip:outbound:port;lr>` when the request goes through an outbound proxy.
    pub route: Option<SipUri>,
}

/// What a failed request means for the failover state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The primary of this dimension is now marked failed: everything moves to its backup.
    FailedOver(Dimension),
    /// The backup failed too: the primary is preferred again, after the owner's retry delay.
    BackupFailedToo(Dimension),
    /// There is no usable backup: the owner retries the same server later.
    NoBackup(Dimension),
    /// The failure concerns a placement that is no longer the active one (the state moved while
    /// the request was out): the owner sends again to the active placement.
    AlreadyMoved,
}

/// Every server the phone may use, and which primaries are marked failed.
#[derive(Debug, Clone)]
pub struct Failover {
    scheme: FailoverScheme,
    registrar: Option<ServerPair>,
    proxy: Option<ServerPair>,
    outbound: Option<ServerPair>,
    /// Backups the quirks forbid.
    no_backup_registrar: bool,
    no_backup_proxy: bool,
    no_outbound_failover: bool,
    keep_aor: bool,
    /// `probe-outbound-only`: row 2 probes the primary outbound proxy whatever failed.
    probe_outbound_only: bool,
    /// When each failed primary was marked failed.
    failed_since: BTreeMap<Dimension, Instant>,
    /// Which element's failure marked each dimension failed.
    failed_elements: BTreeMap<Dimension, FailedElement>,
}

impl Failover {
    pub fn new(settings: &CoreSettings) -> Failover {
        let line = &settings.line;
        let quirks = &settings.quirks;
        let mut registrar = ServerPair::new(line.registrar.clone(), line.backup_registrar.clone());
        let mut proxy = ServerPair::new(line.proxy.clone(), line.backup_proxy.clone());
        let mut outbound = ServerPair::new(settings.outbound_proxy.clone(), settings.backup_outbound_proxy.clone());
        if quirks.has(Quirk::BackupFirst) {
            registrar = registrar.map(ServerPair::swapped);
            proxy = proxy.map(ServerPair::swapped);
            outbound = outbound.map(ServerPair::swapped);
        }
        let has_backup = |pair: &Option<ServerPair>| pair.as_ref().is_some_and(|p| p.backup.is_some());
        let scheme = if has_backup(&outbound) {
            if has_backup(&registrar) || has_backup(&proxy) {
                FailoverScheme::AllTogether
            } else {
                FailoverScheme::OutboundOnly
            }
        } else {
            FailoverScheme::Independent
        };
        Failover {
            scheme,
            registrar,
            proxy,
            outbound,
            no_backup_registrar: quirks.has(Quirk::NoBackupRegistrar),
            no_backup_proxy: quirks.has(Quirk::NoBackupProxy),
            no_outbound_failover: quirks.has(Quirk::NoOutboundProxyFailover),
            keep_aor: quirks.has(Quirk::KeepAor),
            probe_outbound_only: quirks.has(Quirk::ProbeOutboundOnly),
            failed_since: BTreeMap::new(),
            failed_elements: BTreeMap::new(),
        }
    }

    pub fn scheme(&self) -> FailoverScheme {
        self.scheme
    }

    pub fn registrars(&self) -> Option<&ServerPair> {
        self.registrar.as_ref()
    }

    pub fn proxies(&self) -> Option<&ServerPair> {
        self.proxy.as_ref()
    }

    pub fn outbound_proxies(&self) -> Option<&ServerPair> {
        self.outbound.as_ref()
    }

    /// The dimension a failed request to `target` counts against.
    pub fn dimension_of(&self, target: Target) -> Dimension {
        match self.scheme {
            FailoverScheme::Independent => match target {
                Target::Registrar => Dimension::Registrar,
                Target::Proxy => Dimension::Proxy,
            },
            FailoverScheme::AllTogether => Dimension::Everything,
            FailoverScheme::OutboundOnly => Dimension::OutboundProxy,
        }
    }

    /// Whether the primary of `dimension` has a backup the phone may use.
    pub fn has_usable_backup(&self, dimension: Dimension) -> bool {
        let has = |pair: &Option<ServerPair>| pair.as_ref().is_some_and(|p| p.backup.is_some());
        match dimension {
            Dimension::Registrar => has(&self.registrar) && !self.no_backup_registrar,
            Dimension::Proxy => has(&self.proxy) && !self.no_backup_proxy,
            Dimension::OutboundProxy => has(&self.outbound) && !self.no_outbound_failover,
            Dimension::Everything => {
                (has(&self.registrar) && !self.no_backup_registrar)
                    || (has(&self.proxy) && !self.no_backup_proxy)
                    || (has(&self.outbound) && !self.no_outbound_failover)
            }
        }
    }

    pub fn is_failed(&self, dimension: Dimension) -> bool {
        self.failed_since.contains_key(&dimension)
    }

    /// The dimensions whose primary is marked failed, each with when it was marked.
    pub fn failed(&self) -> impl Iterator<Item = (Dimension, Instant)> + '_ {
        self.failed_since.iter().map(|(d, at)| (*d, *at))
    }

    /// Where requests go now: the backup of every dimension marked failed, the primary elsewhere.
    pub fn active(&self) -> Placement {
        let mut placement = Placement::PRIMARY;
        for &dimension in self.failed_since.keys() {
            match dimension {
                Dimension::Registrar => placement.registrar = Role::Backup,
                Dimension::Proxy => placement.proxy = Role::Backup,
                Dimension::OutboundProxy => placement.outbound = Role::Backup,
                Dimension::Everything => {
                    if !self.no_backup_registrar {
                        placement.registrar = Role::Backup;
                    }
                    if !self.no_backup_proxy {
                        placement.proxy = Role::Backup;
                    }
                    if !self.no_outbound_failover {
                        placement.outbound = Role::Backup;
                    }
                }
            }
        }
        placement
    }

    /// The element a failed request to `target` is laid at: in row 3 always the outbound proxy
    /// (the only thing that moves); elsewhere the outbound proxy when the phone's own hop to it
    /// failed, else the target itself.
    pub fn element_of(&self, target: Target, used: Placement, hop_failed: bool) -> FailedElement {
        let through_outbound = self.outbound_proxy(used).is_some();
        match (self.scheme, target) {
            (FailoverScheme::OutboundOnly, _) => FailedElement::OutboundProxy,
            _ if hop_failed && through_outbound => FailedElement::OutboundProxy,
            (_, Target::Registrar) => FailedElement::Registrar,
            (_, Target::Proxy) => FailedElement::Proxy,
        }
    }

    /// The configured server `element` names under `placement`.
    pub fn server_of(&self, element: FailedElement, placement: Placement) -> Option<&Destination> {
        match element {
            FailedElement::Registrar => self.registrar(placement),
            FailedElement::Proxy => self.proxy(placement),
            FailedElement::OutboundProxy => self.outbound_proxy(placement),
        }
    }

    /// The element whose failure marked `dimension` failed, if it is marked.
    pub fn failed_element(&self, dimension: Dimension) -> Option<FailedElement> {
        self.failed_elements.get(&dimension).copied()
    }

    /// A request sent with placement `used` to `target` failed at `now` (`hop_failed`: the
    /// phone's own hop failed, see [`Failover::element_of`]): decide what that means.
    pub fn on_server_down(&mut self, now: Instant, target: Target, used: Placement, hop_failed: bool) -> Verdict {
        let dimension = self.dimension_of(target);
        let used_role = self.effective_role(used, dimension);
        let active_role = self.effective_role(self.active(), dimension);
        if used_role != active_role {
            // A request at the backup failing after the backup already failed (the primary is
            // first again) is one more sign the backup failed too; others moved on since.
            if used_role == Role::Backup && active_role == Role::Primary {
                return Verdict::BackupFailedToo(dimension);
            }
            return Verdict::AlreadyMoved;
        }
        match used_role {
            Role::Primary if self.has_usable_backup(dimension) => {
                self.failed_since.insert(dimension, now);
                self.failed_elements.insert(dimension, self.element_of(target, used, hop_failed));
                Verdict::FailedOver(dimension)
            }
            Role::Primary => Verdict::NoBackup(dimension),
            Role::Backup => {
                self.failed_since.remove(&dimension);
                self.failed_elements.remove(&dimension);
                Verdict::BackupFailedToo(dimension)
            }
        }
    }

    /// A probe found the primary of `dimension` working again: unmark it. Whether it was marked.
    pub fn on_primary_back(&mut self, dimension: Dimension) -> bool {
        self.failed_elements.remove(&dimension);
        self.failed_since.remove(&dimension).is_some()
    }

    /// The role of `dimension` under `placement`, seen through the quirks: with `Everything` the
    /// role of whichever part actually moves.
    fn effective_role(&self, placement: Placement, dimension: Dimension) -> Role {
        if dimension == Dimension::Everything {
            if placement.registrar == Role::Backup
                || placement.proxy == Role::Backup
                || placement.outbound == Role::Backup
            {
                return Role::Backup;
            }
            return Role::Primary;
        }
        placement.role_of(dimension)
    }

    /// The targets whose requests travel on a connection to `next_hop` now, each counting against
    /// a different dimension whose active server is its primary and which has a usable backup
    /// (`failover-on-reset`: such a connection lost with no request on it fails that primary over).
    pub fn primaries_reached_through(&self, next_hop: &Destination) -> Vec<Target> {
        let active = self.active();
        let mut dimensions = Vec::new();
        let mut targets = Vec::new();
        for target in [Target::Registrar, Target::Proxy] {
            let server = match target {
                Target::Registrar => self.registrar(active),
                Target::Proxy => self.proxy(active),
            };
            let Some(server) = server else { continue };
            let dimension = self.dimension_of(target);
            if self.hop(active, server).next_hop == *next_hop
                && self.effective_role(active, dimension) == Role::Primary
                && self.has_usable_backup(dimension)
                && !dimensions.contains(&dimension)
            {
                dimensions.push(dimension);
                targets.push(target);
            }
        }
        targets
    }

    /// Whether a placement goes through a primary marked failed now.
    pub fn uses_failed_primary(&self, placement: Placement) -> bool {
        self.failed_since.keys().any(|&dimension| self.effective_role(placement, dimension) == Role::Primary)
    }

    /// The registrar REGISTERs go to under `placement`.
    pub fn registrar(&self, placement: Placement) -> Option<&Destination> {
        self.registrar.as_ref().map(|pair| pair.get(placement.registrar))
    }

    /// The proxy SUBSCRIBEs and INVITEs go to under `placement`: the active proxy, else the registrar.
    pub fn proxy(&self, placement: Placement) -> Option<&Destination> {
        match &self.proxy {
            Some(pair) => Some(pair.get(placement.proxy)),
            None => self.registrar(Placement { registrar: Role::Primary, ..placement }),
        }
    }

    /// The host of the AOR under `placement`: the active proxy's host exactly as configured, else
    /// the primary registrar's (`keep-aor`: always the primary proxy's).
    pub fn aor_host(&self, placement: Placement) -> Option<&Host> {
        let proxy_role = if self.keep_aor { Role::Primary } else { placement.proxy };
        match &self.proxy {
            Some(pair) => Some(&pair.get(proxy_role).host),
            None => self.registrar.as_ref().map(|pair| &pair.primary.host),
        }
    }

    /// The outbound proxy under `placement`, if one is configured.
    pub fn outbound_proxy(&self, placement: Placement) -> Option<&Destination> {
        self.outbound.as_ref().map(|pair| pair.get(placement.outbound))
    }

    /// How a request to `target` (a registrar or proxy) travels under `placement`: through the
    /// active outbound proxy with a loose Route naming it, or straight to the target.
    pub fn hop(&self, placement: Placement, target: &Destination) -> Hop {
        match self.outbound_proxy(placement) {
            Some(outbound) => Hop { next_hop: outbound.clone(), route: Some(loose_route(outbound)) },
            None => Hop { next_hop: target.clone(), route: None },
        }
    }

    /// What probes `dimension`'s primary: the server itself (its Request-URI) and the hop there.
    /// Registrar and proxy are probed through the active outbound proxy, if any; an outbound
    /// proxy (row 3, and row 2 when its own hop failed) is probed directly; in row 2 a registrar
    /// or proxy that failed behind the outbound proxy is probed through the primary outbound proxy.
    pub fn probe_target(&self, dimension: Dimension) -> Option<(Destination, Hop)> {
        let active = self.active();
        match dimension {
            Dimension::Registrar => {
                let target = self.registrar.as_ref()?.primary.clone();
                Some((target.clone(), self.hop(active, &target)))
            }
            Dimension::Proxy => {
                let target = self.proxy.as_ref()?.primary.clone();
                Some((target.clone(), self.hop(active, &target)))
            }
            Dimension::Everything
                if !self.probe_outbound_only
                    && matches!(
                        self.failed_element(dimension),
                        Some(FailedElement::Registrar | FailedElement::Proxy)
                    ) =>
            {
                let element = self.failed_element(dimension)?;
                let target = self.server_of(element, Placement::PRIMARY)?.clone();
                Some((target.clone(), self.hop(Placement::PRIMARY, &target)))
            }
            Dimension::OutboundProxy | Dimension::Everything => {
                let target = self.outbound.as_ref()?.primary.clone();
                Some((target.clone(), Hop { next_hop: target, route: None }))
            }
        }
    }
}

/// `sip:<host>:<port>;lr`, the loose Route naming an outbound proxy (no port when it is 0, SRV).
pub fn loose_route(outbound: &Destination) -> SipUri {
    let port = Some(outbound.port).filter(|p| *p != 0);
    let mut uri = SipUri::new(Scheme::Sip, None, outbound.host.clone(), port);
    uri.params.set("lr", None);
    uri
}

/// The port a URI names for a configured port: none for the default 5060 and for 0 (SRV).
pub fn uri_port(port: u16) -> Option<u16> {
    Some(port).filter(|p| *p != DEFAULT_SIP_PORT && *p != 0)
}

/// `sip:<host>[:port]`: a server's URI, as a Request-URI names it.
pub fn server_uri(server: &Destination) -> SipUri {
    SipUri::new(Scheme::Sip, None, server.host.clone(), uri_port(server.port))
}
