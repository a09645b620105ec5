//! A line's registration (RFC 3261 §10): REGISTER at the active registrar with the active AOR, refresh, follow the failover state machine, and release bindings left at a backup when a primary returns.
//!
//! Two dimensions decide a REGISTER (see [`super::routing`]): the active registrar (where it
//! goes, named in the Request-URI) and the active proxy (whose host makes the AOR in To and
//! From). Each (registrar, AOR) pair keeps its own call leg (Call-ID, From tag, CSeq), so a
//! registration that comes back to a registrar continues its old Call-ID.
//!
//! Every binding the phone holds is remembered with the path it was made on. After a failback
//! (a primary returned) and the new REGISTER succeeded, each other binding still held at a server
//! that is not marked failed is un-REGISTERed (`Expires: 0`): the binding at the backup
//! registrar, or the backup AOR's binding at the active registrar. At failover nothing is
//! released (the old server is down; un-REGISTERing there is allowed, not required).
//!
//! With RFC 5626 outbound (`sip outbound support: 1`) the Contact carries `+sip.instance` and
//! `reg-id` (1 through the primary outbound proxy or straight to the registrar, 2 through the
//! backup outbound proxy), the REGISTER `Supported: outbound, path`, and the Contact URI `;ob`
//! only when the phone registers without an outbound proxy (the registrar is its edge; see
//! [`super::outbound`]). Keep-alives start on the flow only after a 2xx with `Require: outbound`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use sip::{HeaderName, Host, Message, Method, Scheme, SipUri};

use super::expiry::{granted_expiry, whole_seconds};
use super::routing::{Failover, Placement, Role, Target};
use super::sender::{RequestEvent, RequestSender};
use super::server_down::response_means_server_failed;
use super::{Context, CoreSettings, FlowId, RequestId, ServerDown, TimerId, TransportFailure, Why};
use crate::quirks::Quirk;

mod release;
mod request;

/// The Max-Forwards of every request (RFC 3261 §8.1.1.6).
pub(crate) const MAX_FORWARDS: u32 = 70;

/// Where a line's registration stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationState {
    /// The line has no user name or no registrar: it never registers.
    Disabled,
    /// Not started.
    Idle,
    /// A REGISTER is in flight (a first registration, a refresh, a move or a retry).
    Registering { registrar: Role },
    /// Bound at `registrar` until `expires_at`; a refresh is scheduled.
    Registered { registrar: Role, expires_at: Instant },
    /// The last attempt failed; the next goes to `registrar` at `at`.
    WaitingToRetry { registrar: Role, at: Instant },
}

/// Why a REGISTER did not register, when its server is not down.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RegisterFailure {
    /// A final response that is not a success and does not mean the server is down.
    Status(u16),
    /// A response the phone cannot act on (refused credentials, 423 without Min-Expires, expires=0).
    Unusable(String),
}

impl fmt::Display for RegisterFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterFailure::Status(status) => write!(f, "{status} {}", sip::reason_phrase(*status)),
            RegisterFailure::Unusable(why) => f.write_str(why),
        }
    }
}

/// The account of a line that registers.
#[derive(Debug, Clone)]
struct Account {
    user: String,
    display_name: Option<String>,
}

/// One binding at a registrar: which registrar, which AOR, which RFC 5626 flow (`reg-id`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct BindingKey {
    registrar: Role,
    aor: String,
    reg_id: Option<u32>,
}

/// A binding the phone holds, with the path it was made on.
#[derive(Debug, Clone)]
struct HeldBinding {
    path: Placement,
    expires_at: Instant,
    /// The Contact URI it was made with (over TLS it names the connection; see [`super::contact`]).
    contact: SipUri,
}

/// The Call-ID and From tag of the REGISTERs to one registrar for one AOR (RFC 3261 §10.2); the
/// sender numbers them.
#[derive(Debug, Clone)]
struct RegisterCallLeg {
    call_id: String,
    from_tag: String,
    /// The Min-Expires this registrar asked for with a 423.
    min_expires: Option<u32>,
}

/// The REGISTER in flight.
#[derive(Debug, Clone)]
struct PendingRegister {
    request: RequestId,
    placement: Placement,
    key: BindingKey,
    requested_expires: u32,
}

#[derive(Debug)]
pub(crate) struct Registration {
    line: u8,
    account: Option<Account>,
    call_legs: HashMap<(Role, String), RegisterCallLeg>,
    pending: Option<PendingRegister>,
    /// un-REGISTERs in flight; their outcome changes nothing.
    releasing: BTreeMap<RequestId, BindingKey>,
    /// `register-both`: bindings left at the other registrar at failback and kept refreshed, by the path they were made on.
    kept_alive: BTreeMap<BindingKey, Placement>,
    /// Refreshes of those in flight; their outcome changes nothing.
    keeping: BTreeMap<RequestId, BindingKey>,
    bindings: BTreeMap<BindingKey, HeldBinding>,
    state: RegistrationState,
    /// The binding in effect (the last successful REGISTER), its path and the flow it went on.
    current: Option<(BindingKey, Placement, FlowId)>,
    /// The placement of the last REGISTER sent, successful or not.
    last_placement: Option<Placement>,
    /// Set by a failback: once the next REGISTER succeeds, release the other bindings.
    release_after_success: bool,
    /// What the last outbound 2xx asked of its flow, until the core takes it.
    keepalive_request: Option<super::outbound::KeepAliveRequest>,
    /// RFC 5626 §4.5 consecutive-failures: failed attempts since the last successful flow.
    consecutive_failures: u32,
    /// Whether the current flow succeeded (RFC 5626 §4.5): a 2xx, and an answer to its first
    /// keep-alive when keep-alives run on it.
    flow_confirmed: bool,
    /// A successful flow just failed: the next REGISTER forms its replacement at once (§4.5).
    replace_flow_at_once: bool,
}

impl Registration {
    pub fn new(settings: &CoreSettings) -> Registration {
        let line = &settings.line;
        let account = match (&line.user_name, &line.registrar) {
            (Some(user), Some(_)) => Some(Account { user: user.clone(), display_name: line.display_name.clone() }),
            _ => None,
        };
        Registration {
            line: line.line,
            state: if account.is_some() { RegistrationState::Idle } else { RegistrationState::Disabled },
            account,
            call_legs: HashMap::new(),
            pending: None,
            releasing: BTreeMap::new(),
            kept_alive: BTreeMap::new(),
            keeping: BTreeMap::new(),
            bindings: BTreeMap::new(),
            current: None,
            last_placement: None,
            release_after_success: false,
            keepalive_request: None,
            consecutive_failures: 0,
            flow_confirmed: false,
            replace_flow_at_once: false,
        }
    }

    /// The keep-alives the last outbound 2xx asked for, once.
    pub fn take_keepalive_request(&mut self) -> Option<super::outbound::KeepAliveRequest> {
        self.keepalive_request.take()
    }

    pub fn state(&self) -> &RegistrationState {
        &self.state
    }

    /// Whether `request` is this registration's REGISTER or un-REGISTER in flight.
    pub fn owns(&self, request: RequestId) -> bool {
        self.pending.as_ref().is_some_and(|p| p.request == request)
            || self.releasing.contains_key(&request)
            || self.keeping.contains_key(&request)
    }

    pub fn start(&mut self, now: Instant, context: &mut Context, sender: &mut RequestSender, failover: &Failover) {
        if self.account.is_none() {
            tracing::warn!("line {}: no user name or no registrar configured; not registering", self.line);
            return;
        }
        let placement = failover.active();
        tracing::info!(
            "line {}: registering {} at {} registrar {}",
            self.line,
            self.aor(failover, placement).map(|a| a.to_string()).unwrap_or_default(),
            placement.registrar,
            failover.registrar(placement).map(|r| r.host.to_string()).unwrap_or_default()
        );
        self.send_register(now, context, sender, failover, placement);
    }

    pub fn on_timer(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        failover: &Failover,
        id: TimerId,
    ) {
        if let TimerId::KeptBindingRefresh(_) = id {
            return self.refresh_kept_bindings(now, context, sender, failover);
        }
        if self.pending.is_some() {
            return;
        }
        match (id, &self.state) {
            (TimerId::RegistrationRefresh(_), RegistrationState::Registered { .. })
            | (TimerId::RegistrationRetry(_), RegistrationState::WaitingToRetry { .. }) => {
                self.send_register(now, context, sender, failover, failover.active());
            }
            _ => {}
        }
    }

    /// Moves the registration to the active placement, if it is elsewhere (see the module doc).
    pub fn reconcile(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        failover: &Failover,
        why: Why,
    ) {
        if matches!(self.state, RegistrationState::Disabled | RegistrationState::Idle) {
            return;
        }
        let desired = failover.active();
        if why == Why::Failback {
            self.release_after_success = true;
        }
        let here = match &self.pending {
            Some(pending) => pending.placement == desired,
            None => self.last_placement == Some(desired),
        };
        if here {
            if why == Why::Failback && matches!(self.state, RegistrationState::Registered { .. }) {
                // Already where the failback leads (the move happened by a refresh): release now.
                self.release_after_success = false;
                self.release_stale_bindings(now, context, sender, failover);
            }
            return;
        }
        if let Some(pending) = self.pending.take() {
            sender.abandon(context, pending.request);
        }
        self.send_register_when_allowed(now, context, sender, failover, desired);
    }

    /// Sends a REGISTER for `placement` now, or when its registrar's Retry-After runs out.
    fn send_register_when_allowed(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        failover: &Failover,
        placement: Placement,
    ) {
        if context.is_held_off(failover.registrar(placement), now) {
            self.schedule_retry(now, context, failover, Duration::ZERO);
        } else {
            self.send_register(now, context, sender, failover, placement);
        }
    }

    /// After a failure: send again at once if the active placement moved since, else retry later.
    pub fn resume(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        failover: &Failover,
        timed_out: bool,
    ) {
        if self.pending.is_some() {
            return;
        }
        if self.last_placement != Some(failover.active()) {
            self.send_register_when_allowed(now, context, sender, failover, failover.active());
        } else {
            self.retry_later(now, context, failover, timed_out);
        }
    }

    /// Its server is down and there is nowhere else to go: waits the vendor's retry timer (`sip
    /// registration timeout retry timer` after no answer, `sip registration retry timer`
    /// otherwise), or with RFC 5626 outbound the flow recovery backoff (every flow failed: 30 s
    /// base-time, doubling with each consecutive failure), before the next REGISTER.
    pub fn retry_later(&mut self, now: Instant, context: &mut Context, failover: &Failover, timed_out: bool) {
        if context.settings.outbound_support && context.quirk(Quirk::NoFlowRecovery) {
            tracing::info!("line {}: not re-establishing the failed flow (quirk no-flow-recovery)", self.line);
            self.state = RegistrationState::WaitingToRetry { registrar: failover.active().registrar, at: now };
            self.last_placement = Some(failover.active());
            return;
        }
        if std::mem::take(&mut self.replace_flow_at_once) {
            tracing::info!("line {}: replacing the failed flow at once (RFC 5626 §4.5)", self.line);
            return self.schedule_retry(now, context, failover, Duration::ZERO);
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let timers = &context.settings.timers;
        let delay = if context.settings.outbound_support {
            super::outbound::recovery_wait(context, self.consecutive_failures, false)
        } else if timed_out {
            timers.registration_timeout_retry
        } else {
            timers.registration_retry
        };
        self.schedule_retry(now, context, failover, delay);
    }

    /// `retry-storm`: the registrar and its backup are both down, and the next REGISTER goes
    /// after T1 instead of the retry timer.
    pub fn retry_after_t1(&mut self, now: Instant, context: &mut Context, failover: &Failover) {
        tracing::info!("line {}: both registrars down; REGISTER again after T1 (quirk retry-storm)", self.line);
        let t1 = context.settings.timers.t1;
        self.schedule_retry(now, context, failover, t1);
    }

    fn schedule_retry(&mut self, now: Instant, context: &mut Context, failover: &Failover, delay: Duration) {
        if self.account.is_none() {
            return;
        }
        // Never before the registrar's Retry-After (RFC 3261 §21.5.4).
        let at = context.not_before(failover.registrar(failover.active()), now + delay);
        self.state = RegistrationState::WaitingToRetry { registrar: failover.active().registrar, at };
        self.last_placement = Some(failover.active());
        context.set_timer(TimerId::RegistrationRetry(self.line), at);
        tracing::info!("line {}: next REGISTER in {:.3}s", self.line, (at - now).as_secs_f64());
    }

    /// A keep-alive on `flow` was answered: if it carries the registration, the flow succeeded.
    pub fn on_keepalive_answered(&mut self, flow: FlowId) {
        if !self.flow_confirmed && self.current.as_ref().is_some_and(|(_, _, f)| *f == flow) {
            tracing::debug!("line {}: flow {} confirmed by its first keep-alive", self.line, flow.0);
            self.flow_confirmed = true;
            self.consecutive_failures = 0;
        }
    }

    /// The flow the registration was made on failed: the registration is gone with it.
    pub fn on_flow_failed(&mut self, flow: FlowId, failure: &TransportFailure) -> Option<ServerDown> {
        let (key, placement, current_flow) = self.current.clone()?;
        if current_flow != flow || self.pending.is_some() {
            return None;
        }
        self.current = None;
        self.bindings.remove(&key);
        // The next REGISTER goes wherever the failover state machine says, even the same place.
        self.last_placement = None;
        // A flow that had succeeded is replaced at once; one that never did was a failed attempt.
        self.replace_flow_at_once = std::mem::take(&mut self.flow_confirmed);
        Some(ServerDown {
            target: Target::Registrar,
            used: placement,
            cause: format!("registration flow failed: {failure}"),
            timed_out: false,
            hop_failed: true,
            retry_after: None,
        })
    }

    pub fn on_request_event(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        failover: &Failover,
        event: RequestEvent,
    ) -> Option<ServerDown> {
        if let Some(key) = self.keeping.remove(&event.request()) {
            if let RequestEvent::Provisional { .. } = event {
                self.keeping.insert(event.request(), key);
            }
            return None;
        }
        if let Some(key) = self.releasing.remove(&event.request()) {
            match &event {
                RequestEvent::Final { response, .. } => {
                    tracing::info!(
                        "un-REGISTER of {} at {} registrar: {}",
                        key.aor,
                        key.registrar,
                        status_line(response)
                    )
                }
                RequestEvent::Failed { cause, .. } => {
                    tracing::info!("un-REGISTER of {} at {} registrar failed: {cause}", key.aor, key.registrar)
                }
                RequestEvent::Provisional { .. } => {
                    self.releasing.insert(event.request(), key);
                }
            }
            return None;
        }
        let pending = self.pending.clone().filter(|p| p.request == event.request())?;
        match event {
            RequestEvent::Provisional { .. } => None,
            RequestEvent::Final { response, flow, .. } => {
                self.pending = None;
                self.on_final_response(now, context, sender, failover, pending, &response, flow)
            }
            RequestEvent::Failed { cause, .. } => {
                self.pending = None;
                self.current = None;
                Some(ServerDown::no_response(
                    Target::Registrar,
                    pending.placement,
                    &cause,
                    &self.describe_request(failover, pending.placement),
                ))
            }
        }
    }

    fn describe_request(&self, failover: &Failover, placement: Placement) -> String {
        let registrar = failover.registrar(placement).map(|r| r.host.to_string()).unwrap_or_default();
        format!("REGISTER to {registrar}")
    }

    /// The AOR under `placement`: `sip:<user>@<active proxy host>`.
    fn aor(&self, failover: &Failover, placement: Placement) -> Option<SipUri> {
        let account = self.account.as_ref()?;
        let host: Host = failover.aor_host(placement)?.clone();
        Some(SipUri::new(Scheme::Sip, Some(&account.user), host, None))
    }

    /// Sends a REGISTER for the binding `placement` names.
    fn send_register(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        failover: &Failover,
        placement: Placement,
    ) {
        let (Some(registrar), Some(aor)) = (failover.registrar(placement).cloned(), self.aor(failover, placement))
        else {
            return;
        };
        let key = BindingKey {
            registrar: placement.registrar,
            aor: aor.to_string(),
            reg_id: Self::reg_id(context, failover, placement),
        };
        let min_expires = self.call_legs.get(&(key.registrar, key.aor.clone())).and_then(|leg| leg.min_expires);
        let configured_expires = whole_seconds(context.settings.line.registration_period);
        let requested_expires = configured_expires.max(min_expires.unwrap_or(0));
        let hop = failover.hop(placement, &registrar);
        let Some(register) = self.register_request(context, sender, failover, &key, &hop, requested_expires, None)
        else {
            return;
        };
        let request = sender.send(now, context, &hop.next_hop, register);
        self.replace_flow_at_once = false;
        self.pending = Some(PendingRegister { request, placement, key, requested_expires });
        self.last_placement = Some(placement);
        self.state = RegistrationState::Registering { registrar: placement.registrar };
        context.cancel_timer(TimerId::RegistrationRefresh(self.line));
        context.cancel_timer(TimerId::RegistrationRetry(self.line));
    }

    #[allow(clippy::too_many_arguments)]
    fn on_final_response(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        failover: &Failover,
        pending: PendingRegister,
        response: &Message,
        flow: FlowId,
    ) -> Option<ServerDown> {
        let status = response.status()?;
        match status {
            200..=299 => {
                self.on_registered(now, context, sender, failover, pending, response, flow);
                None
            }
            423 => {
                match response.min_expires() {
                    Ok(Some(min)) if min > pending.requested_expires => {
                        tracing::info!(
                            "line {}: registrar asks for expires of at least {min} (423); retrying",
                            self.line
                        );
                        if let Some(leg) = self.call_legs.get_mut(&(pending.key.registrar, pending.key.aor.clone())) {
                            leg.min_expires = Some(min);
                        }
                        self.send_register(now, context, sender, failover, pending.placement);
                    }
                    _ => {
                        let why = "423 without a usable Min-Expires above the requested expiry".to_owned();
                        self.on_refused(now, context, failover, RegisterFailure::Unusable(why));
                    }
                }
                None
            }
            401 | 407 => {
                let why = format!("{status} after the answered challenges: credentials refused");
                self.on_refused(now, context, failover, RegisterFailure::Unusable(why));
                None
            }
            status if response_means_server_failed(&Method::Register, status, &context.settings.quirks) => {
                self.current = None;
                let what = self.describe_request(failover, pending.placement);
                Some(ServerDown::by_response(Target::Registrar, pending.placement, response, &what))
            }
            _ => {
                self.on_refused(now, context, failover, RegisterFailure::Status(status));
                None
            }
        }
    }

    /// The registrar answered, but not with a registration, and is not down: retry the same place later.
    fn on_refused(&mut self, now: Instant, context: &mut Context, failover: &Failover, failure: RegisterFailure) {
        self.current = None;
        tracing::warn!("line {}: registration refused ({failure})", self.line);
        let delay = context.settings.timers.registration_retry;
        self.schedule_retry(now, context, failover, delay);
    }

    #[allow(clippy::too_many_arguments)]
    fn on_registered(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        failover: &Failover,
        pending: PendingRegister,
        response: &Message,
        flow: FlowId,
    ) {
        let ours = context.contact_uri_from(false, sender.flow_local(flow));
        let granted = granted_expiry(response, &ours).unwrap_or(pending.requested_expires);
        if granted == 0 {
            let why = "2xx granting expires=0".to_owned();
            return self.on_refused(now, context, failover, RegisterFailure::Unusable(why));
        }
        let granted_for = Duration::from_secs(u64::from(granted));
        let refresh_share = if context.quirk(Quirk::LateRefresh) { 1.25 } else { 0.5 };
        let refresh_at = now + granted_for.mul_f64(refresh_share);
        let registrar_host = failover.registrar(pending.placement).map(|r| r.host.to_string()).unwrap_or_default();
        let news = self.current.as_ref().map(|(key, placement, _)| (key, placement))
            != Some((&pending.key, &pending.placement));
        if news {
            tracing::info!(
                "registered {} at {registrar_host} expires={granted} (line {}, {})",
                pending.key.aor,
                self.line,
                pending.placement
            );
        } else {
            tracing::debug!("refreshed at {registrar_host} expires={granted}");
        }
        context.outbound_in_use =
            pending.key.reg_id.is_some() && response.has_option_tag(&HeaderName::Require, "outbound");
        let keepalive_request =
            pending.key.reg_id.and_then(|_| super::outbound::keepalive_request(context, flow, response));
        let keepalives_wanted = keepalive_request.is_some();
        let same_confirmed_flow = self.flow_confirmed && self.current.as_ref().is_some_and(|(_, _, f)| *f == flow);
        if !same_confirmed_flow {
            // RFC 5626 §4.5: with keep-alives, the flow succeeds only once the first is answered.
            self.flow_confirmed = !keepalives_wanted;
        }
        if self.flow_confirmed {
            self.consecutive_failures = 0;
        }
        self.bindings.retain(|_, held| held.expires_at > now);
        // Over TLS a new connection is a new Contact: the binding the old one named is released
        // by that Contact (with RFC 5626, `+sip.instance` and `reg-id` replace it at the registrar).
        let replaced = self
            .bindings
            .get(&pending.key)
            .filter(|held| pending.key.reg_id.is_none() && held.contact != ours)
            .map(|held| held.contact.clone());
        let held = HeldBinding { path: pending.placement, expires_at: now + granted_for, contact: ours };
        self.bindings.insert(pending.key.clone(), held);
        self.current = Some((pending.key.clone(), pending.placement, flow));
        self.state =
            RegistrationState::Registered { registrar: pending.placement.registrar, expires_at: now + granted_for };
        context.set_timer(TimerId::RegistrationRefresh(self.line), refresh_at);
        if self.release_after_success {
            self.release_after_success = false;
            self.release_stale_bindings(now, context, sender, failover);
        }
        if let Some(old_contact) = replaced {
            self.send_unregister(now, context, sender, failover, &pending.key, pending.placement, &old_contact);
        }
        if pending.key.reg_id.is_some() {
            self.keepalive_request = keepalive_request;
        }
    }

    /// The connection `flow` is gone. Over TLS the binding's Contact named it, so nothing reaches
    /// the phone through the binding any more: REGISTER again at once, over a new connection.
    pub fn on_connection_lost(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        failover: &Failover,
        flow: FlowId,
    ) {
        let names_flow = super::contact::names_connection(context.settings.transport);
        let on_flow = self.current.as_ref().is_some_and(|(_, _, f)| *f == flow);
        if !names_flow || !on_flow || self.pending.is_some() {
            return;
        }
        if !matches!(self.state, RegistrationState::Registered { .. }) {
            return;
        }
        tracing::info!("line {}: the connection the Contact names is gone; registering again on a new one", self.line);
        self.send_register_when_allowed(now, context, sender, failover, failover.active());
    }
}

fn status_line(response: &Message) -> String {
    match response.status() {
        Some(status) => format!("{status} {}", sip::reason_phrase(status)),
        None => "no status".into(),
    }
}
