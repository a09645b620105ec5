//! The outbound (edge) proxy of RFC 5626: forwards the phone's requests, adds Path/Record-Route with a flow token and `;ob`, and routes requests back over the phone's flow, or answers 430 when it is gone.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use sip::{HeaderName, Host, Message, Method, NameAddr, Scheme, SipUri};
use tokio::time::Instant;

use super::relay::Relay;
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

/// How many phone addresses an edge proxy remembers (a bound on what a flood of sources costs).
const MAX_PHONES_SEEN: usize = 1024;

/// Transaction-stateless forwarding (RFC 3261 §16.11, [`Relay`]): no retransmissions of its own,
/// every retransmission passed on under the branch its first copy got, so the element behind
/// answers it from its server transaction.
pub struct EdgeProxy {
    element: Element,
    topology: Arc<Topology>,
    relay: Relay,
    /// Addresses phones sent us requests from: besides the lab's elements and its phone, the only
    /// places we relay to (never an open relay to whatever a Request-URI names).
    phones_seen: HashSet<IpAddr>,
}

impl EdgeProxy {
    pub fn new(element: Element, topology: Arc<Topology>) -> EdgeProxy {
        EdgeProxy {
            element,
            topology: topology.clone(),
            relay: Relay::new(element, topology),
            phones_seen: HashSet::new(),
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
    /// element (a `:5061` in a TLS Request-URI names the phone's side, not ours); the lab's phone,
    /// or a phone that sent us requests, keeps its port; anywhere else is `None`.
    fn address_of(&self, uri: &SipUri) -> Option<SocketAddr> {
        if let Some(element) = self.topology.element_named(&uri.host.to_string()) {
            return Some(self.topology.sip_addr(element));
        }
        let ip = uri.host.ip()?;
        let ours = ip == self.topology.phone_ip() || self.phones_seen.contains(&ip);
        ours.then(|| SocketAddr::new(ip, uri.port.unwrap_or(5060)))
    }

    /// A request from the phone: on to the element its Route or Request-URI names.
    fn forward_from_phone(&mut self, request: &Message, peer: &Peer, now: Instant) -> Vec<Outgoing> {
        if self.phones_seen.len() < MAX_PHONES_SEEN {
            self.phones_seen.insert(peer.addr.ip());
        }
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
        let names_outside = next.as_ref().is_some_and(|u| u.host.ip().is_some() && self.address_of(u).is_none());
        let next = next.and_then(|u| self.address_of(&u)).filter(|a| a.ip() != self.topology.ip(self.element));
        let Some(next) = next else {
            // Nowhere to go but ourselves (an edge proxy is no registrar), or outside the lab (no
            // open relay): refused.
            let status = if names_outside { 403 } else { 404 };
            return vec![Outgoing::Reply(Message::response_to(&request, status, None))];
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
        self.relay.forward(request, Destination::Udp(next), back, now)
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
            Some(to) if alive => self.relay.forward(request, to, Destination::Udp(peer.addr), now),
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
        self.relay.on_response(response).unwrap_or_default()
    }

    fn restart(&mut self) {
        self.relay.clear();
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
