//! The mock registrar (RFC 3261 §10.3): bindings per AOR with expiry, 423 below a floor, optional digest challenge.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sip::{Challenge, Contact, HeaderName, Message, Method, NameAddr};
use tokio::time::Instant;

use super::{Behaviour, Capabilities, FlowId, FlowView, Outgoing, Peer};
use crate::topology::{Element, Topology};

/// Digest credentials the registrar demands (RFC 3261 §22.4).
#[derive(Debug, Clone)]
pub struct DigestAuth {
    pub realm: String,
    /// user name -> password
    pub users: HashMap<String, String>,
}

/// How a registrar behaves when no fault is in force.
#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    /// Requests for less are answered 423 with this Min-Expires.
    pub min_expires: u32,
    /// Requests for more are granted this.
    pub max_expires: u32,
    /// Granted when a REGISTER names no expiry.
    pub default_expires: u32,
    pub auth: Option<DigestAuth>,
    /// RFC 5626 on the server side: when set, a REGISTER with `+sip.instance`, `reg-id` and
    /// `Supported: outbound` gets `Require: outbound` and, if given, `Flow-Timer`.
    pub outbound: Option<OutboundSupport>,
    /// T1 (RFC 3261 §17.1.1.1): its server transactions are kept 64*T1.
    pub t1: Duration,
}

/// What the registrar says in a 2xx to an outbound registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundSupport {
    pub flow_timer: Option<u32>,
}

impl Default for RegistrarConfig {
    fn default() -> RegistrarConfig {
        RegistrarConfig {
            min_expires: 1,
            max_expires: 7200,
            default_expires: 3600,
            auth: None,
            outbound: None,
            t1: super::DEFAULT_T1,
        }
    }
}

#[derive(Debug, Clone)]
struct Binding {
    contact: NameAddr,
    /// `(+sip.instance, reg-id)` for an RFC 5626 binding: it replaces any binding with the same pair.
    flow_key: Option<(String, u32)>,
    call_id: String,
    cseq: u32,
    expires_at: Instant,
    /// The Path the REGISTER carried (RFC 3327), and the connection it came on.
    path: Vec<String>,
    flow: Option<FlowId>,
}

/// Bindings per AOR; time comes in with each request.
pub struct Registrar {
    element: Element,
    topology: Arc<Topology>,
    config: RegistrarConfig,
    bindings: HashMap<String, Vec<Binding>>,
    nonces: HashSet<String>,
    nonce_counter: u64,
}

impl Registrar {
    pub fn new(element: Element, topology: Arc<Topology>, config: RegistrarConfig) -> Registrar {
        Registrar { element, topology, config, bindings: HashMap::new(), nonces: HashSet::new(), nonce_counter: 0 }
    }

    fn to_tag(&self) -> String {
        format!("{}-reg", self.element.name())
    }

    fn reply(&self, request: &Message, status: u16) -> Outgoing {
        Outgoing::Reply(Message::response_to(request, status, Some(&self.to_tag())))
    }

    /// Whether the AOR's domain is one the topology serves (any element name, the zone, or an element address).
    fn serves_domain(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        host.eq_ignore_ascii_case(&self.topology.zone) || self.topology.element_named(host).is_some()
    }

    fn challenge(&mut self, request: &Message, auth: &DigestAuth) -> Outgoing {
        self.nonce_counter += 1;
        let nonce =
            format!("{}{:08x}{:08x}", self.element.name().replace('-', ""), self.nonce_counter, rand::random::<u32>());
        self.nonces.insert(nonce.clone());
        let mut response = Message::response_to(request, 401, Some(&self.to_tag()));
        response.push_header(HeaderName::WwwAuthenticate, Challenge::digest(&auth.realm, &nonce, None, true));
        Outgoing::Reply(response)
    }

    fn authorized(&self, request: &Message, auth: &DigestAuth) -> bool {
        let Ok(Some(credentials)) = request.credentials(false) else { return false };
        let (Some(user), Some(nonce)) = (credentials.params.value("username"), credentials.params.value("nonce"))
        else {
            return false;
        };
        let Some(password) = auth.users.get(user) else { return false };
        self.nonces.contains(nonce) && credentials.verify("REGISTER", password)
    }

    fn register(&mut self, request: &Message, peer: &Peer, now: Instant) -> Outgoing {
        if let Some(auth) = self.config.auth.clone() {
            if !self.authorized(request, &auth) {
                return self.challenge(request, &auth);
            }
        }
        let (Ok(to), Ok(call_id), Ok(cseq), Ok(contacts), Ok(expires)) =
            (request.to(), request.call_id(), request.cseq(), request.contacts(), request.expires())
        else {
            return self.reply(request, 400);
        };
        let Some(aor_uri) = to.uri.as_sip() else { return self.reply(request, 416) };
        if !self.serves_domain(&aor_uri.host.to_string()) {
            return self.reply(request, 404);
        }
        let aor = aor_uri.address_of_record().to_ascii_lowercase();
        let bindings = self.bindings.entry(aor.clone()).or_default();
        bindings.retain(|b| b.expires_at > now);

        if contacts.iter().any(|c| matches!(c, Contact::Star)) {
            // RFC 3261 §10.3 step 6: `*` only with Expires: 0 and alone.
            if expires != Some(0) || contacts.len() != 1 {
                return self.reply(request, 400);
            }
            bindings.clear();
        } else {
            for contact in &contacts {
                let Contact::Address(address) = contact else { continue };
                let requested = contact.expires().or(expires).unwrap_or(self.config.default_expires);
                if requested != 0 && requested < self.config.min_expires {
                    let mut response = Message::response_to(request, 423, Some(&self.to_tag()));
                    response.push_header(HeaderName::MinExpires, self.config.min_expires);
                    return Outgoing::Reply(response);
                }
                let granted = requested.min(self.config.max_expires);
                let flow_key = match (contact.instance(), contact.reg_id()) {
                    (Some(instance), Some(reg_id)) => Some((instance.to_owned(), reg_id)),
                    _ => None,
                };
                let existing = bindings.iter().position(|b| match (&flow_key, &b.flow_key) {
                    (Some(a), Some(b)) => a == b,
                    _ => same_contact(&b.contact, address),
                });
                if let Some(i) = existing {
                    let b = &bindings[i];
                    if b.call_id == call_id && cseq.seq <= b.cseq {
                        return self.reply(request, 500); // Out-of-order request (§10.3 step 7).
                    }
                    bindings.remove(i);
                }
                if granted > 0 {
                    bindings.push(Binding {
                        contact: address.clone(),
                        flow_key,
                        call_id: call_id.to_owned(),
                        cseq: cseq.seq,
                        expires_at: now + Duration::from_secs(u64::from(granted)),
                        path: request.header_values(&HeaderName::Path).into_iter().map(str::to_owned).collect(),
                        flow: peer.flow,
                    });
                }
            }
        }
        let mut response = Message::response_to(request, 200, Some(&self.to_tag()));
        if request.has_option_tag(&HeaderName::Supported, "path") {
            for path in request.header_values(&HeaderName::Path) {
                response.push_header(HeaderName::Path, path);
            }
        }
        let outbound_registration = request.has_option_tag(&HeaderName::Supported, "outbound")
            && contacts.iter().any(|c| c.instance().is_some() && c.reg_id().is_some());
        if let (Some(outbound), true) = (self.config.outbound, outbound_registration) {
            response.push_header(HeaderName::Require, "outbound");
            if let Some(seconds) = outbound.flow_timer {
                response.push_header(HeaderName::FlowTimer, seconds);
            }
        }
        for b in self.bindings.get(&aor).into_iter().flatten() {
            // Rounded up: a live binding never shows 0, which means removed (RFC 3261 §10.3).
            let remaining = b.expires_at.saturating_duration_since(now).as_secs_f64().ceil() as u64;
            let mut contact = b.contact.clone();
            contact.params.set("expires", Some(&remaining.to_string()));
            response.push_header(HeaderName::Contact, contact);
        }
        // RFC 3261 §10.3 step 8: a Date, so a phone without a clock can set one.
        response.push_header(HeaderName::from("Date"), super::wire::http_date(SystemTime::now()));
        for b in self.bindings.get(&aor).into_iter().flatten() {
            tracing::debug!(registrar = %self.element, %aor, contact = %b.contact, path = ?b.path, flow = ?b.flow, "binding");
        }
        tracing::info!(registrar = %self.element, %aor, bindings = self.bindings.get(&aor).map_or(0, Vec::len), "REGISTER accepted");
        Outgoing::Reply(response)
    }
}

/// Contacts are the same binding when their URIs compare equal (RFC 3261 §10.3 step 7, simplified to the URI text).
fn same_contact(a: &NameAddr, b: &NameAddr) -> bool {
    a.uri == b.uri
}

impl Behaviour for Registrar {
    fn on_request(&mut self, request: &Message, peer: &Peer, _view: &FlowView<'_>, now: Instant) -> Vec<Outgoing> {
        match request.method() {
            Some(Method::Register) => vec![self.register(request, peer, now)],
            _ => {
                let mut response = Message::response_to(request, 405, Some(&self.to_tag()));
                self.capabilities().advertise(&mut response, false);
                vec![Outgoing::Reply(response)]
            }
        }
    }

    fn restart(&mut self) {
        self.bindings.clear();
        self.nonces.clear();
    }

    fn capabilities(&self) -> Capabilities {
        let mut supported = vec!["path"];
        if self.config.outbound.is_some() {
            supported.push("outbound");
        }
        // It takes no bodies: an empty Accept says so (RFC 3261 §20.1; none would mean SDP).
        Capabilities { allow: vec!["REGISTER", "OPTIONS"], supported, accept: Some(""), events: Vec::new() }
    }

    fn timers(&self) -> (Duration, Duration) {
        (self.config.t1, super::DEFAULT_T2)
    }
}
