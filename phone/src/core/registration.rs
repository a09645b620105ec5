//! A line's registration (RFC 3261 §10): where to REGISTER, answering challenges and 423, refreshing, and moving to the backup registrar when the primary fails (R1.2).
//!
//! Two dimensions decide a REGISTER: the active registrar (where it goes, named in the
//! Request-URI) and the active proxy (whose host makes the AOR in To and From). Only the registrar
//! dimension moves yet; the proxy dimension, failback probes and un-REGISTERs come later, and
//! keep one call leg (Call-ID, CSeq) per (registrar, AOR) pair as this code already does.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use sip::{CSeq, Contact, Credentials, HeaderName, Host, Message, Method, NameAddr, Scheme, SipUri};

use super::sender::{FailureCause, RequestEvent, RequestSender};
use super::{Context, CoreSettings, RequestId, TimerId};
use crate::config::{DEFAULT_SIP_PORT, Destination};
use crate::quirks::Quirk;

/// The Max-Forwards of every request (RFC 3261 §8.1.1.6).
const MAX_FORWARDS: u32 = 70;
/// Challenges answered in a row before the credentials count as refused.
const MAX_CHALLENGES_IN_A_ROW: u8 = 2;

/// Which of a line's two registrars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegistrarRole {
    Primary,
    Backup,
}

impl fmt::Display for RegistrarRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RegistrarRole::Primary => "primary",
            RegistrarRole::Backup => "backup",
        })
    }
}

/// Where a line's registration stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationState {
    /// The line has no user name or no registrar: it never registers.
    Disabled,
    /// Not started.
    Idle,
    /// A REGISTER is in flight (a first registration, a refresh or a retry).
    Registering { registrar: RegistrarRole },
    /// Bound at `registrar` until `expires_at`; a refresh is scheduled.
    Registered { registrar: RegistrarRole, expires_at: Instant },
    /// The last attempt failed; the next goes to `registrar` at `at`.
    WaitingToRetry { registrar: RegistrarRole, at: Instant },
}

/// Why a REGISTER did not register.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RegisterFailure {
    /// No final response: timeout, transport error or DNS failure.
    NoResponse(FailureCause),
    /// A final response that is not a success.
    Status(u16),
    /// A response the phone cannot act on (a challenge it cannot answer, 423 without Min-Expires, expires=0).
    Unusable(String),
}

impl RegisterFailure {
    /// Whether this failure means the registrar is down, so the backup takes over: timeouts,
    /// transport and DNS errors, 408 (the vendor treats it as a timeout), and every 5xx and 6xx.
    fn means_registrar_down(&self) -> bool {
        match self {
            RegisterFailure::NoResponse(_) => true,
            RegisterFailure::Status(status) => *status == 408 || *status >= 500,
            RegisterFailure::Unusable(_) => false,
        }
    }
}

impl fmt::Display for RegisterFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterFailure::NoResponse(cause) => write!(f, "{cause}"),
            RegisterFailure::Status(status) => write!(f, "{status} {}", sip::reason_phrase(*status)),
            RegisterFailure::Unusable(why) => f.write_str(why),
        }
    }
}

/// The account of a line that registers.
#[derive(Debug, Clone)]
struct Account {
    user: String,
    auth_name: String,
    password: String,
    display_name: Option<String>,
    primary_registrar: Destination,
    backup_registrar: Option<Destination>,
    /// The host of the primary AOR: `sip proxy ip` as written, else the registrar's host.
    primary_aor_host: Host,
    contact: SipUri,
}

impl Account {
    fn registrar(&self, role: RegistrarRole) -> &Destination {
        match (role, &self.backup_registrar) {
            (RegistrarRole::Backup, Some(backup)) => backup,
            _ => &self.primary_registrar,
        }
    }
}

/// The Call-ID, From tag and CSeq of the REGISTERs to one registrar for one AOR (RFC 3261 §10.2).
#[derive(Debug, Clone)]
struct RegisterCallLeg {
    call_id: String,
    from_tag: String,
    next_cseq: u32,
    /// The Min-Expires this registrar asked for with a 423.
    min_expires: Option<u32>,
}

/// The REGISTER in flight.
#[derive(Debug, Clone, Copy)]
struct PendingRegister {
    request: RequestId,
    registrar: RegistrarRole,
    /// Challenges answered in a row for this registration.
    challenges_answered: u8,
    requested_expires: u32,
}

#[derive(Debug)]
pub(crate) struct Registration {
    line: u8,
    account: Option<Account>,
    /// Set while the primary registrar is marked failed: registrations go to the backup.
    primary_registrar_failed_since: Option<Instant>,
    call_legs: HashMap<(RegistrarRole, String), RegisterCallLeg>,
    pending: Option<PendingRegister>,
    state: RegistrationState,
    /// The registrar the last REGISTER succeeded at, until one fails: a refresh there is no news.
    bound_at: Option<RegistrarRole>,
}

impl Registration {
    pub fn new(settings: &CoreSettings) -> Registration {
        let line = &settings.line;
        let account = match (&line.user_name, &line.registrar) {
            (Some(user), Some(registrar)) => Some(Account {
                user: user.clone(),
                auth_name: line.auth_name.clone().unwrap_or_else(|| user.clone()),
                password: line.password.clone(),
                display_name: line.display_name.clone(),
                primary_registrar: registrar.clone(),
                backup_registrar: line.backup_registrar.clone(),
                primary_aor_host: line.proxy.as_ref().unwrap_or(registrar).host.clone(),
                contact: SipUri::new(Scheme::Sip, Some(user), Host::from(settings.bind_ip), Some(settings.listen_port)),
            }),
            _ => None,
        };
        Registration {
            line: line.line,
            state: if account.is_some() { RegistrationState::Idle } else { RegistrationState::Disabled },
            account,
            primary_registrar_failed_since: None,
            call_legs: HashMap::new(),
            pending: None,
            bound_at: None,
        }
    }

    pub fn state(&self) -> &RegistrationState {
        &self.state
    }

    /// Whether `request` is this registration's REGISTER in flight.
    pub fn owns(&self, request: RequestId) -> bool {
        self.pending.is_some_and(|p| p.request == request)
    }

    pub fn start(&mut self, now: Instant, context: &mut Context, sender: &mut RequestSender) {
        let Some(account) = &self.account else {
            tracing::warn!("line {}: no user name or no registrar configured; not registering", self.line);
            return;
        };
        tracing::info!(
            "line {}: registering {} at {} registrar {}",
            self.line,
            self.aor(account),
            RegistrarRole::Primary,
            account.primary_registrar.host
        );
        self.send_register(now, context, sender, None, 0);
    }

    pub fn on_timer(&mut self, now: Instant, context: &mut Context, sender: &mut RequestSender, id: TimerId) {
        if self.pending.is_some() {
            return;
        }
        match (id, &self.state) {
            (TimerId::RegistrationRefresh(_), RegistrationState::Registered { registrar, .. }) => {
                if let Some(account) = &self.account {
                    tracing::debug!(
                        "line {}: refreshing registration at {}",
                        self.line,
                        account.registrar(*registrar).host
                    );
                }
                self.send_register(now, context, sender, None, 0);
            }
            (TimerId::RegistrationRetry(_), RegistrationState::WaitingToRetry { .. }) => {
                self.send_register(now, context, sender, None, 0);
            }
            _ => {}
        }
    }

    pub fn on_request_event(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        event: RequestEvent,
    ) {
        let Some(pending) = self.pending.take_if(|p| p.request == event.request()) else { return };
        match event {
            RequestEvent::Final { response, .. } => self.on_final_response(now, context, sender, pending, &response),
            RequestEvent::Failed { cause, .. } => {
                self.on_failure(now, context, sender, pending.registrar, RegisterFailure::NoResponse(cause))
            }
        }
    }

    /// The registrar REGISTERs go to now: the backup while the primary is marked failed.
    fn active_registrar(&self) -> RegistrarRole {
        let has_backup = self.account.as_ref().is_some_and(|a| a.backup_registrar.is_some());
        if self.primary_registrar_failed_since.is_some() && has_backup {
            RegistrarRole::Backup
        } else {
            RegistrarRole::Primary
        }
    }

    /// The host of the AOR registered now (the proxy dimension will switch it to the backup proxy's).
    fn aor_host<'a>(&self, account: &'a Account) -> &'a Host {
        &account.primary_aor_host
    }

    fn aor(&self, account: &Account) -> SipUri {
        SipUri::new(Scheme::Sip, Some(&account.user), self.aor_host(account).clone(), None)
    }

    /// Sends a REGISTER to the active registrar, with `authorization` answering a challenge.
    fn send_register(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        authorization: Option<(HeaderName, Credentials)>,
        challenges_answered: u8,
    ) {
        let Some(account) = &self.account else { return };
        let registrar = self.active_registrar();
        let destination = account.registrar(registrar).clone();
        let aor = self.aor(account);
        let bind_ip = context.settings.bind_ip;
        let leg = self.call_legs.entry((registrar, aor.to_string())).or_insert_with(|| RegisterCallLeg {
            call_id: context.ids.call_id(bind_ip),
            from_tag: context.ids.tag(),
            next_cseq: 1,
            min_expires: None,
        });
        let seq = leg.next_cseq;
        leg.next_cseq += 1;
        let configured_expires = whole_seconds(context.settings.line.registration_period);
        let requested_expires = configured_expires.max(leg.min_expires.unwrap_or(0));

        let mut register = Message::request(Method::Register, registrar_uri(&destination));
        register.push_header(HeaderName::MaxForwards, MAX_FORWARDS);
        let mut from = NameAddr::new(aor.clone());
        from.display_name = account.display_name.clone();
        from.params.set("tag", Some(&leg.from_tag));
        register.push_header(HeaderName::From, from);
        register.push_header(HeaderName::To, NameAddr::new(aor));
        register.push_header(HeaderName::CallId, &leg.call_id);
        register.push_header(HeaderName::CSeq, CSeq { seq, method: Method::Register });
        register.push_header(HeaderName::Contact, NameAddr::new(account.contact.clone()));
        register.push_header(HeaderName::Expires, requested_expires);
        if let Some((header, credentials)) = authorization {
            register.push_header(header, credentials);
        }
        register.push_header(HeaderName::UserAgent, &context.settings.user_agent);

        let request = sender.send(now, context, &destination, register);
        self.pending = Some(PendingRegister { request, registrar, challenges_answered, requested_expires });
        self.state = RegistrationState::Registering { registrar };
        context.cancel_timer(TimerId::RegistrationRefresh(self.line));
        context.cancel_timer(TimerId::RegistrationRetry(self.line));
    }

    fn on_final_response(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        pending: PendingRegister,
        response: &Message,
    ) {
        let Some(status) = response.status() else { return };
        match status {
            200..=299 => self.on_registered(now, context, sender, pending, response),
            401 | 407 => match self.answer_challenge(context, pending, response) {
                Ok(authorization) => {
                    self.send_register(now, context, sender, Some(authorization), pending.challenges_answered + 1)
                }
                Err(why) => self.on_failure(now, context, sender, pending.registrar, RegisterFailure::Unusable(why)),
            },
            423 => match response.min_expires() {
                Ok(Some(min)) if min > pending.requested_expires => {
                    tracing::info!("line {}: registrar asks for expires of at least {min} (423); retrying", self.line);
                    if let Some(leg) = self.current_leg_mut(pending.registrar) {
                        leg.min_expires = Some(min);
                    }
                    self.send_register(now, context, sender, None, 0);
                }
                _ => {
                    let why = "423 without a usable Min-Expires above the requested expiry".to_owned();
                    self.on_failure(now, context, sender, pending.registrar, RegisterFailure::Unusable(why))
                }
            },
            _ => self.on_failure(now, context, sender, pending.registrar, RegisterFailure::Status(status)),
        }
    }

    /// The credentials answering a 401 or 407 for the next REGISTER.
    fn answer_challenge(
        &self,
        context: &mut Context,
        pending: PendingRegister,
        response: &Message,
    ) -> Result<(HeaderName, Credentials), String> {
        let status = response.status().unwrap_or(401);
        if pending.challenges_answered >= MAX_CHALLENGES_IN_A_ROW {
            return Err(format!(
                "{status} again after {} answered challenges: credentials refused",
                pending.challenges_answered
            ));
        }
        let account = self.account.as_ref().ok_or("no account")?;
        let challenges = response.challenges().map_err(|e| format!("{status} with an unreadable challenge: {e}"))?;
        let challenge =
            challenges.iter().find(|c| c.is_digest()).ok_or_else(|| format!("{status} without a Digest challenge"))?;
        let uri = registrar_uri(account.registrar(pending.registrar)).to_string();
        let cnonce = context.ids.cnonce();
        let credentials =
            Credentials::answer(challenge, &account.auth_name, &account.password, "REGISTER", &uri, &cnonce, 1);
        let header = if status == 407 { HeaderName::ProxyAuthorization } else { HeaderName::Authorization };
        tracing::debug!("line {}: answering {status} challenge of realm {:?}", self.line, challenge.realm());
        Ok((header, credentials))
    }

    fn on_registered(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        pending: PendingRegister,
        response: &Message,
    ) {
        let Some(account) = &self.account else { return };
        let granted = granted_expiry(response, &account.contact).unwrap_or(pending.requested_expires);
        if granted == 0 {
            let why = "2xx granting expires=0".to_owned();
            return self.on_failure(now, context, sender, pending.registrar, RegisterFailure::Unusable(why));
        }
        let granted_for = Duration::from_secs(u64::from(granted));
        let refresh_share = if context.settings.quirks.has(Quirk::LateRefresh) { 1.25 } else { 0.5 };
        let refresh_at = now + granted_for.mul_f64(refresh_share);
        let registrar_host = &account.registrar(pending.registrar).host;
        if self.bound_at == Some(pending.registrar) {
            tracing::debug!("refreshed at {registrar_host} expires={granted}");
        } else {
            tracing::info!(
                "registered at {registrar_host} expires={granted} (line {}, {} registrar, aor {})",
                self.line,
                pending.registrar,
                self.aor(account)
            );
        }
        self.bound_at = Some(pending.registrar);
        self.state = RegistrationState::Registered { registrar: pending.registrar, expires_at: now + granted_for };
        context.set_timer(TimerId::RegistrationRefresh(self.line), refresh_at);
    }

    /// A REGISTER to `registrar` failed: move to the backup registrar, or retry later.
    fn on_failure(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        registrar: RegistrarRole,
        failure: RegisterFailure,
    ) {
        self.bound_at = None;
        let Some(account) = &self.account else { return };
        let failed_host = account.registrar(registrar).host.clone();
        let primary_host = account.primary_registrar.host.clone();
        let usable_backup = account
            .backup_registrar
            .as_ref()
            .filter(|_| !context.settings.quirks.has(Quirk::NoBackupRegistrar))
            .map(|backup| backup.host.clone());
        match (registrar, usable_backup) {
            (RegistrarRole::Primary, Some(backup_host)) if failure.means_registrar_down() => {
                tracing::warn!(
                    "registration at {failed_host} failed ({failure}); primary registrar marked failed, registering at backup registrar {backup_host}"
                );
                self.primary_registrar_failed_since = Some(now);
                self.send_register(now, context, sender, None, 0);
            }
            (RegistrarRole::Backup, _) if failure.means_registrar_down() => {
                // Both registrars failed in turn: start over with the primary after the retry timer.
                self.primary_registrar_failed_since = None;
                let delay = self.schedule_retry(now, context);
                tracing::warn!(
                    "registration at backup registrar {failed_host} failed ({failure}); retrying primary registrar {primary_host} in {:.3}s",
                    delay.as_secs_f64()
                );
            }
            _ => {
                let delay = self.schedule_retry(now, context);
                tracing::warn!(
                    "registration at {failed_host} failed ({failure}); retrying in {:.3}s",
                    delay.as_secs_f64()
                );
            }
        }
    }

    /// Waits `sip registration retry timer` before the next REGISTER to the active registrar.
    fn schedule_retry(&mut self, now: Instant, context: &mut Context) -> Duration {
        let delay = context.settings.timers.registration_retry;
        let at = now + delay;
        self.state = RegistrationState::WaitingToRetry { registrar: self.active_registrar(), at };
        context.set_timer(TimerId::RegistrationRetry(self.line), at);
        delay
    }

    fn current_leg_mut(&mut self, registrar: RegistrarRole) -> Option<&mut RegisterCallLeg> {
        let account = self.account.as_ref()?;
        let aor = self.aor(account).to_string();
        self.call_legs.get_mut(&(registrar, aor))
    }
}

/// `sip:<host as configured>`, with the port only when it is neither 5060 nor 0 (SRV).
fn registrar_uri(registrar: &Destination) -> SipUri {
    let port = Some(registrar.port).filter(|p| *p != DEFAULT_SIP_PORT && *p != 0);
    SipUri::new(Scheme::Sip, None, registrar.host.clone(), port)
}

/// Whole seconds of a period, at least 1: Expires holds an integer.
fn whole_seconds(period: Duration) -> u32 {
    let seconds = period.as_secs_f64().ceil();
    if seconds >= f64::from(u32::MAX) { u32::MAX } else { (seconds as u32).max(1) }
}

/// The expiry a 2xx grants our Contact: its `expires` parameter, else the Expires header.
fn granted_expiry(response: &Message, ours: &SipUri) -> Option<u32> {
    let contacts = response.contacts().unwrap_or_default();
    let our_contact = contacts.iter().filter_map(Contact::address).find(|address| {
        address.uri.as_sip().is_some_and(|uri| {
            uri.user == ours.user
                && uri.host.matches(&ours.host)
                && uri.port.unwrap_or(DEFAULT_SIP_PORT) == ours.port.unwrap_or(DEFAULT_SIP_PORT)
        })
    });
    if let Some(expires) = our_contact.and_then(|a| a.params.value("expires")).and_then(|e| e.parse().ok()) {
        return Some(expires);
    }
    response.expires().ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registrar_uri_names_the_port_only_when_it_is_not_5060_or_srv() {
        let host = Host::Domain("registrar-a.lab.test".into());
        let uri = |port| registrar_uri(&Destination { host: host.clone(), port }).to_string();
        assert_eq!(uri(5060), "sip:registrar-a.lab.test");
        assert_eq!(uri(0), "sip:registrar-a.lab.test");
        assert_eq!(uri(5070), "sip:registrar-a.lab.test:5070");
    }

    #[test]
    fn expires_is_whole_seconds_and_at_least_one() {
        assert_eq!(whole_seconds(Duration::from_millis(100)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(2500)), 3);
        assert_eq!(whole_seconds(Duration::from_secs(3600)), 3600);
    }

    #[test]
    fn the_granted_expiry_prefers_our_contacts_parameter() {
        let ours = SipUri::new(Scheme::Sip, Some("1001"), Host::V4("127.66.0.20".parse().unwrap()), Some(5060));
        let mut ok = Message::response(200);
        ok.push_header(HeaderName::Contact, "<sip:1001@127.66.0.99:5060>;expires=99, <sip:1001@127.66.0.20>;expires=7");
        ok.push_header(HeaderName::Expires, "30");
        assert_eq!(granted_expiry(&ok, &ours), Some(7));

        let mut other_only = Message::response(200);
        other_only.push_header(HeaderName::Contact, "<sip:1001@127.66.0.99:5060>;expires=99");
        other_only.push_header(HeaderName::Expires, "30");
        assert_eq!(granted_expiry(&other_only, &ours), Some(30));

        assert_eq!(granted_expiry(&Message::response(200), &ours), None);
    }
}
