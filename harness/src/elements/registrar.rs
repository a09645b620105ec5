//! The mock registrar (RFC 3261 §10.3): bindings per AOR with expiry, 423 below a floor, optional digest challenge with expiring nonces.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sip::{Challenge, Contact, Credentials, HeaderName, Message, Method, NameAddr};
use tokio::time::Instant;

use super::digest::{NonceCheck, Nonces};
use super::relay::Relay;
use super::{Behaviour, Capabilities, FlowId, FlowView, Outgoing, Peer};
use crate::topology::{Element, Topology};

/// How often expired bindings are swept out of every AOR.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

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
    /// How long a digest nonce is good for; then it is challenged again with `stale=true`.
    pub nonce_lifetime: Duration,
    /// T1 (RFC 3261 §17.1.1.1): its server transactions are kept 64*T1.
    pub t1: Duration,
}

/// What the registrar says in a 2xx to an outbound registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundSupport {
    pub flow_timer: Option<u32>,
}

impl OutboundSupport {
    /// `Require: outbound` with `Flow-Timer` of `flow_timer` in whole seconds (at least 1).
    pub fn granting(flow_timer: std::time::Duration) -> OutboundSupport {
        OutboundSupport { flow_timer: Some(flow_timer.as_secs().max(1) as u32) }
    }
}

impl Default for RegistrarConfig {
    fn default() -> RegistrarConfig {
        RegistrarConfig {
            min_expires: 1,
            max_expires: 7200,
            default_expires: 3600,
            auth: None,
            outbound: None,
            nonce_lifetime: Duration::from_secs(300),
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
    nonces: Nonces,
    nonce_counter: u64,
    /// When expired bindings (and AORs left with none) are next swept out of every AOR.
    next_sweep: Instant,
    /// What the proxy of our side serves (SUBSCRIBE, INVITE, ...), passed on there.
    relay: Relay,
}

impl Registrar {
    pub fn new(element: Element, topology: Arc<Topology>, config: RegistrarConfig) -> Registrar {
        let nonces = Nonces::new(config.nonce_lifetime);
        let relay = Relay::new(element, topology.clone());
        let next_sweep = Instant::now();
        Registrar { element, topology, config, bindings: HashMap::new(), nonces, nonce_counter: 0, next_sweep, relay }
    }

    /// Drops every expired binding, and every AOR left without one, at most once per
    /// `SWEEP_INTERVAL`: a registrar that many phones (or a load test's distinct AORs) pass
    /// through holds what is live, not all it ever saw. Amortised: one pass over the bindings
    /// per interval, whatever the request rate.
    fn sweep(&mut self, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + SWEEP_INTERVAL;
        self.bindings.retain(|_, bindings| {
            bindings.retain(|b| b.expires_at > now);
            !bindings.is_empty()
        });
        if self.bindings.capacity() > 4 * self.bindings.len().max(64) {
            self.bindings.shrink_to_fit();
        }
    }

    /// How many AORs hold a live or not yet swept binding.
    #[cfg(test)]
    fn aors(&self) -> usize {
        self.bindings.len()
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

    /// A 401 with a new nonce; `stale` when the credentials were right but their nonce was not
    /// (RFC 7616 §3.3: the phone answers again without asking its user).
    fn challenge(&mut self, request: &Message, auth: &DigestAuth, stale: bool, now: Instant) -> Outgoing {
        self.nonce_counter += 1;
        let nonce =
            format!("{}{:08x}{:08x}", self.element.name().replace('-', ""), self.nonce_counter, rand::random::<u32>());
        self.nonces.issue(nonce.clone(), now);
        let mut challenge = Challenge::digest(&auth.realm, &nonce, None, true);
        if stale {
            challenge.params.set("stale", Some("true"));
        }
        let mut response = Message::response_to(request, 401, Some(&self.to_tag()));
        response.push_header(HeaderName::WwwAuthenticate, challenge);
        Outgoing::Reply(response)
    }

    /// Whether the request carries right credentials for a known user: `None` if not, else what
    /// their nonce is worth.
    fn check_credentials(&mut self, request: &Message, auth: &DigestAuth, now: Instant) -> Option<NonceCheck> {
        let credentials: Credentials = request.credentials(false).ok().flatten()?;
        let password = auth.users.get(credentials.params.value("username")?)?;
        if !credentials.verify("REGISTER", password) {
            return None;
        }
        Some(self.nonces.check(&credentials, now))
    }

    fn register(&mut self, request: &Message, peer: &Peer, now: Instant) -> Outgoing {
        self.sweep(now);
        // Taken out and put back rather than cloned: a user table per REGISTER is a cost at load.
        if let Some(auth) = self.config.auth.take() {
            let challenge = match self.check_credentials(request, &auth, now) {
                Some(NonceCheck::Fresh) => None,
                Some(NonceCheck::Stale) => Some(self.challenge(request, &auth, true, now)),
                Some(NonceCheck::Replayed) => {
                    tracing::info!(registrar = %self.element, "nonce count not above the last one: a replay");
                    Some(self.challenge(request, &auth, false, now))
                }
                None => Some(self.challenge(request, &auth, false, now)),
            };
            self.config.auth = Some(auth);
            if let Some(challenge) = challenge {
                return challenge;
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
        if bindings.is_empty() {
            self.bindings.remove(&aor);
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
            // A phone with one server subscribes and calls here too: on to our proxy.
            Some(Method::Subscribe | Method::Invite | Method::Ack | Method::Bye | Method::Cancel) => {
                self.relay.pass_to_counterpart(request, peer, now)
            }
            _ => {
                let mut response = Message::response_to(request, 405, Some(&self.to_tag()));
                self.capabilities().advertise(&mut response, false);
                vec![Outgoing::Reply(response)]
            }
        }
    }

    fn on_response(&mut self, response: &Message, _from: &Peer, _view: &FlowView<'_>, _now: Instant) -> Vec<Outgoing> {
        self.relay.on_response(response).unwrap_or_default()
    }

    fn restart(&mut self) {
        self.bindings.clear();
        self.nonces.clear();
        self.relay.clear();
    }

    fn capabilities(&self) -> Capabilities {
        let mut supported = vec!["path"];
        if self.config.outbound.is_some() {
            supported.push("outbound");
        }
        // It takes no bodies: an empty Accept says so (RFC 3261 §20.1; none would mean SDP).
        // SUBSCRIBE, INVITE and their kin are passed on to the proxy of our side.
        let allow = vec!["REGISTER", "OPTIONS", "SUBSCRIBE", "INVITE", "ACK", "BYE", "CANCEL"];
        Capabilities { allow, supported, accept: Some(""), events: Vec::new() }
    }

    fn timers(&self) -> (Duration, Duration) {
        (self.config.t1, super::DEFAULT_T2)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    use sip::Credentials;

    use super::*;
    use crate::trace::Transport;

    fn registrar() -> (Registrar, Arc<Topology>) {
        let topology = Arc::new(Topology::new(Ipv4Addr::new(127, 100, 0, 0), "lab.test"));
        let auth = DigestAuth { realm: "lab.test".into(), users: HashMap::from([("1001".into(), "secret".into())]) };
        let config = RegistrarConfig { auth: Some(auth), ..RegistrarConfig::default() };
        (Registrar::new(Element::RegistrarA, topology.clone(), config), topology)
    }

    fn register(topology: &Topology, branch: &str, cseq: u32) -> Message {
        let mut m = Message::request(Method::Register, format!("sip:{}", topology.fqdn(Element::RegistrarA)));
        m.push_header(HeaderName::Via, format!("SIP/2.0/UDP 127.100.0.10:5060;branch=z9hG4bK{branch}"));
        m.push_header(HeaderName::From, format!("<sip:1001@{}>;tag=a", topology.fqdn(Element::ProxyA)));
        m.push_header(HeaderName::To, format!("<sip:1001@{}>", topology.fqdn(Element::ProxyA)));
        m.push_header(HeaderName::CallId, "reg-1");
        m.push_header(HeaderName::CSeq, format!("{cseq} REGISTER"));
        m.push_header(HeaderName::Contact, "<sip:1001@127.100.0.10:5060>");
        m.push_header(HeaderName::Expires, 60);
        m
    }

    fn answer(registrar: &mut Registrar, request: &Message, now: Instant) -> Message {
        let peer = Peer { transport: Transport::Udp, flow: None, addr: "127.100.0.10:5060".parse().unwrap() };
        let flows = HashMap::new();
        let view = FlowView { flows: &flows };
        match registrar.on_request(request, &peer, &view, now).remove(0) {
            Outgoing::Reply(response) => response,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    /// RFC 7616 §3.3: an expired nonce with a right digest is challenged again with `stale=true`.
    #[test]
    fn an_expired_nonce_is_challenged_with_stale() {
        let (mut registrar, topology) = registrar();
        let t0 = Instant::now();
        let challenge = answer(&mut registrar, &register(&topology, "1", 1), t0).challenges().unwrap().remove(0);
        let uri = format!("sip:{}", topology.fqdn(Element::RegistrarA));
        let authorized = |branch: &str, cseq: u32, nc: u32| {
            let mut request = register(&topology, branch, cseq);
            let credentials = Credentials::answer(&challenge, "1001", "secret", "REGISTER", &uri, "c0ffee", nc);
            request.set_header(HeaderName::Authorization, credentials);
            request
        };
        assert_eq!(answer(&mut registrar, &authorized("2", 2, 1), t0 + Duration::from_secs(299)).status(), Some(200));
        let late = answer(&mut registrar, &authorized("3", 3, 2), t0 + Duration::from_secs(300));
        assert_eq!(late.status(), Some(401));
        assert_eq!(late.challenges().unwrap()[0].params.value("stale"), Some("true"), "{late:?}");
        assert_ne!(late.challenges().unwrap()[0].nonce(), challenge.nonce(), "a new nonce");
    }

    /// Issue 13: expired bindings of AORs never heard from again were kept for ever; now a sweep
    /// drops them, and an AOR whose last binding was removed goes at once.
    #[test]
    fn expired_bindings_of_silent_aors_are_swept() {
        let (mut registrar, topology) = registrar();
        registrar.config.auth = None;
        let t0 = Instant::now();
        for n in 0..100 {
            let mut request = register(&topology, &format!("b{n}"), 1);
            request.set_header(HeaderName::To, format!("<sip:u{n}@{}>", topology.fqdn(Element::ProxyA)));
            request.set_header(HeaderName::CallId, format!("reg-{n}"));
            request.set_header(HeaderName::Expires, 10);
            assert_eq!(answer(&mut registrar, &request, t0).status(), Some(200));
        }
        assert_eq!(registrar.aors(), 100);
        let later = t0 + Duration::from_secs(11);
        assert_eq!(answer(&mut registrar, &register(&topology, "x", 1), later).status(), Some(200));
        assert_eq!(registrar.aors(), 1, "only the AOR registered after the expiry is left");
        let mut release = register(&topology, "y", 2);
        release.set_header(HeaderName::Expires, 0);
        assert_eq!(answer(&mut registrar, &release, later).status(), Some(200));
        assert_eq!(registrar.aors(), 0, "an AOR without bindings is not kept");
    }
}
