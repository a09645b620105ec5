//! The outbound (edge) proxy of RFC 5626: forwards the phone's requests, adds Path/Record-Route with a flow token and `;ob`, and routes requests back over the phone's flow, or answers 430 when it is gone.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sip::{HeaderName, Host, Message, Method, NameAddr, Scheme, SipUri, Via};
use tokio::time::Instant;

use super::{Behaviour, Capabilities, Destination, FlowView, Outgoing, Peer};
use crate::topology::{Element, Party, Topology};

/// The flow token an edge proxy puts in Path and Record-Route: which connection leads to the phone.
fn flow_token(peer: &Peer) -> String {
    match peer.flow {
        Some(flow) => format!("f{flow}"),
        None => format!("u{}-{}", peer.addr.ip(), peer.addr.port()),
    }
}

fn parse_flow_token(token: &str) -> Option<Destination> {
    if let Some(flow) = token.strip_prefix('f') {
        return flow.parse().ok().map(Destination::Flow);
    }
    let (ip, port) = token.strip_prefix('u')?.rsplit_once('-')?;
    Some(Destination::Udp(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?)))
}

/// A forwarded request whose final response has not come back yet.
#[derive(Debug, Clone, Copy)]
struct Pending {
    back: Destination,
    since: Instant,
    invite: bool,
}

/// How long an INVITE may wait for its final response through the edge proxy (RFC 3261 §16.6
/// step 11, Timer C: more than 3 minutes); other requests are given up at 64*T1.
const INVITE_PATIENCE: Duration = Duration::from_secs(181);

/// Transaction-stateless forwarding (RFC 3261 §16.11): no retransmissions of its own, every
/// retransmission passed on under the branch its first copy got, so the element behind answers it
/// from its server transaction; with a memory of which way each forwarded request's response goes
/// back.
pub struct EdgeProxy {
    element: Element,
    topology: Arc<Topology>,
    /// Our Via branch -> where its responses go, since when, and whether it is an INVITE's.
    pending: HashMap<String, Pending>,
    counter: u64,
}

impl EdgeProxy {
    pub fn new(element: Element, topology: Arc<Topology>) -> EdgeProxy {
        EdgeProxy { element, topology, pending: HashMap::new(), counter: 0 }
    }

    /// The branch of the forwarded copy: a function of the incoming top Via's branch and sent-by
    /// (RFC 3261 §16.11), so a retransmission, and the CANCEL or non-2xx ACK of an INVITE, get the
    /// branch its first copy got; a request without an RFC 3261 branch gets a new one.
    fn branch_for(&mut self, request: &Message) -> String {
        let name = self.element.name().replace('-', "");
        let incoming = request.top_via().ok();
        match incoming.as_ref().and_then(|v| v.branch().filter(|b| b.starts_with("z9hG4bK")).map(|b| (v, b))) {
            Some((via, branch)) => {
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                (branch, via.host.to_string(), via.port).hash(&mut hasher);
                format!("z9hG4bK{name}s{:016x}", hasher.finish())
            }
            None => {
                self.counter += 1;
                format!("z9hG4bK{name}e{}", self.counter)
            }
        }
    }

    fn own_uri(&self, user: Option<&str>) -> SipUri {
        let mut uri = SipUri::new(Scheme::Sip, user, Host::Domain(self.topology.fqdn(self.element)), Some(5060));
        uri.params.set("lr", None);
        uri.params.set("ob", None);
        uri
    }

    fn names_us(&self, uri: &SipUri) -> bool {
        self.topology.element_named(&uri.host.to_string()) == Some(self.element)
    }

    /// The UDP address a URI names. Behind the edge proxy every hop is UDP to port 5060 of the
    /// element (a `:5061` in a TLS Request-URI names the phone's side, not ours); an address
    /// outside the topology keeps its port.
    fn address_of(&self, uri: &SipUri) -> Option<SocketAddr> {
        if let Some(element) = self.topology.element_named(&uri.host.to_string()) {
            return Some(self.topology.sip_addr(element));
        }
        Some(SocketAddr::new(uri.host.ip()?, uri.port.unwrap_or(5060)))
    }

    /// Forgets the forwarded requests whose transactions are over without a final response.
    fn forget_unanswered(&mut self, now: Instant) {
        let give_up = super::DEFAULT_T1 * 64;
        self.pending.retain(|_, p| now.duration_since(p.since) < if p.invite { INVITE_PATIENCE } else { give_up });
    }

    fn forward(&mut self, mut request: Message, to: Destination, back: Destination, now: Instant) -> Vec<Outgoing> {
        self.forget_unanswered(now);
        let branch = self.branch_for(&request);
        let max_forwards = request.max_forwards().ok().flatten().unwrap_or(70);
        if max_forwards == 0 {
            return vec![Outgoing::Reply(Message::response_to(&request, 483, None))];
        }
        request.set_header(HeaderName::MaxForwards, max_forwards - 1);
        let via = Via::new("UDP", Host::from(self.topology.ip(self.element)), Some(5060), &branch);
        request.headers.insert(0, sip::Header { name: HeaderName::Via, value: via.to_string() });
        let invite = request.method() == Some(&Method::Invite);
        self.pending.insert(branch, Pending { back, since: now, invite });
        vec![Outgoing::Send { to, message: request }]
    }

    /// A request from the phone: on to the element its Route or Request-URI names.
    fn forward_from_phone(&mut self, request: &Message, peer: &Peer, now: Instant) -> Vec<Outgoing> {
        let mut request = request.clone();
        let mut routes = request.routes().unwrap_or_default();
        // RFC 3261 §16.4: the Route entries naming us go (a phone in a dialog we record-routed
        // names us twice: its outbound proxy, then the route set).
        while routes.first().and_then(|r| r.uri.as_sip()).is_some_and(|u| self.names_us(u)) {
            routes.remove(0);
        }
        request.remove_header(&HeaderName::Route);
        for route in &routes {
            request.push_header(HeaderName::Route, route);
        }
        let next = match routes.first() {
            Some(route) => route.uri.as_sip().cloned(),
            None => request.request_uri().and_then(Result::ok).and_then(|u| u.as_sip().cloned()),
        };
        let next = next.and_then(|u| self.address_of(&u)).filter(|a| a.ip() != self.topology.ip(self.element));
        let Some(next) = next else {
            // Nowhere to go but ourselves: an edge proxy is no registrar.
            return vec![Outgoing::Reply(Message::response_to(&request, 404, None))];
        };
        let token = flow_token(peer);
        let stamp = NameAddr::new(self.own_uri(Some(&token)));
        match request.method() {
            Some(Method::Register) => {
                // RFC 5626 §5.1: the edge proxy's Path carries `ob` and the flow token.
                request.headers.insert(1, sip::Header { name: HeaderName::Path, value: stamp.to_string() });
                if !request.has_option_tag(&HeaderName::Supported, "path") {
                    request.push_header(HeaderName::Supported, "path");
                }
            }
            Some(Method::Subscribe) | Some(Method::Invite) => {
                request.headers.insert(1, sip::Header { name: HeaderName::RecordRoute, value: stamp.to_string() });
            }
            _ => {}
        }
        // Responses go back the way a server's would (RFC 3261 §18.2.2): the flow, or the top Via
        // as the transaction layer stamped it (`received`, `rport`).
        let back = super::wire::response_destination(&request, peer, &self.topology);
        self.forward(request, Destination::Udp(next), back, now)
    }

    /// A request from an element: over the phone's flow named by the Route's flow token, or 430.
    fn forward_to_phone(&mut self, request: &Message, peer: &Peer, view: &FlowView<'_>, now: Instant) -> Vec<Outgoing> {
        let mut request = request.clone();
        let mut routes = request.routes().unwrap_or_default();
        let ours = routes.first().and_then(|r| r.uri.as_sip()).filter(|u| self.names_us(u)).cloned();
        let destination = match &ours {
            Some(uri) => uri.user.as_deref().and_then(parse_flow_token),
            None => None,
        };
        if ours.is_some() {
            routes.remove(0);
        }
        request.remove_header(&HeaderName::Route);
        for route in &routes {
            request.push_header(HeaderName::Route, route);
        }
        let alive = match destination {
            Some(Destination::Flow(flow)) => view.is_open(flow),
            Some(Destination::Udp(_)) => true,
            None => false,
        };
        match destination {
            Some(to) if alive => self.forward(request, to, Destination::Udp(peer.addr), now),
            // RFC 5626 §5.3: the flow to the phone is gone.
            _ => vec![Outgoing::Reply(Message::response_to(&request, 430, None))],
        }
    }
}

impl Behaviour for EdgeProxy {
    fn on_request(&mut self, request: &Message, peer: &Peer, view: &FlowView<'_>, now: Instant) -> Vec<Outgoing> {
        match self.topology.party(peer.addr.ip()) {
            Party::Element(_) => self.forward_to_phone(request, peer, view, now),
            _ => self.forward_from_phone(request, peer, now),
        }
    }

    fn on_response(&mut self, response: &Message, _from: &Peer, _view: &FlowView<'_>, _now: Instant) -> Vec<Outgoing> {
        let Ok(top) = response.top_via() else { return Vec::new() };
        let Some(back) = top.branch().and_then(|b| self.pending.get(b)).map(|p| p.back) else { return Vec::new() };
        if let (true, Some(branch)) = (response.status().is_some_and(|s| s >= 200), top.branch()) {
            self.pending.remove(branch);
        }
        let mut response = response.clone();
        if let Some(i) = response.headers.iter().position(|h| h.name == HeaderName::Via) {
            let vias = sip::split_list(&response.headers[i].value).into_iter().map(str::to_owned).collect::<Vec<_>>();
            if vias.len() > 1 {
                response.headers[i].value = vias[1..].join(", ");
            } else {
                response.headers.remove(i);
            }
        }
        vec![Outgoing::Send { to: back, message: response }]
    }

    fn restart(&mut self) {
        self.pending.clear();
    }

    /// What it relays; it takes no bodies of its own (no Accept).
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            allow: vec!["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "SUBSCRIBE", "NOTIFY"],
            supported: vec!["outbound", "path"],
            accept: None,
            events: Vec::new(),
        }
    }

    fn keeps_transactions(&self) -> bool {
        false
    }
}
