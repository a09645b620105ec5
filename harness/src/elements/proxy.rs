//! The mock proxy: SUBSCRIBE with 200 and NOTIFYs carrying proper bodies (RFC 6665, RFC 4235, RFC 3842), state per dialog; INVITE answered or rejected.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sip::{HeaderName, Host, Message, Method, NameAddr, Scheme, SipUri, Via};
use tokio::time::Instant;

use super::relay::Relay;
use super::{Behaviour, Capabilities, Destination, ElementCommand, FlowView, Outgoing, Peer};
use crate::topology::{Element, Topology};

/// Subscription expiry the proxy grants at most.
const MAX_SUBSCRIPTION_EXPIRES: u32 = 3600;

/// How the proxy answers an INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteAnswer {
    /// 180 Ringing, then 200 OK with an SDP answer.
    Accept,
    /// A final response with this code.
    Reject(u16),
}

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub invite: InviteAnswer,
    /// T1 and T2 (RFC 3261 §17.1.1.1) for the NOTIFYs it sends over UDP: sent again after T1,
    /// doubling up to T2, until answered or 64*T1.
    pub t1: Duration,
    pub t2: Duration,
}

impl Default for ProxyConfig {
    fn default() -> ProxyConfig {
        ProxyConfig { invite: InviteAnswer::Accept, t1: super::DEFAULT_T1, t2: super::DEFAULT_T2 }
    }
}

/// One subscription dialog, from the proxy's side (it is the notifier).
#[derive(Debug)]
struct Subscription {
    event: String,
    /// The subscriber (the SUBSCRIBE's From, with its tag).
    subscriber: NameAddr,
    /// The resource (the SUBSCRIBE's To, with our tag).
    resource: NameAddr,
    call_id: String,
    /// The subscriber's Contact: the NOTIFY's Request-URI.
    target: SipUri,
    /// The route set from Record-Route, used as Route on NOTIFYs.
    routes: Vec<String>,
    /// Where NOTIFYs go.
    destination: Destination,
    notify_cseq: u32,
    version: u32,
    expires_at: Instant,
}

/// Subscriptions per dialog (Call-ID, subscriber tag).
pub struct Proxy {
    element: Element,
    topology: Arc<Topology>,
    config: ProxyConfig,
    subscriptions: HashMap<(String, String), Subscription>,
    counter: u64,
    /// REGISTERs passed on to the registrar of our side.
    relay: Relay,
}

impl Proxy {
    pub fn new(element: Element, topology: Arc<Topology>, config: ProxyConfig) -> Proxy {
        let relay = Relay::new(element, topology.clone());
        Proxy { element, topology, config, subscriptions: HashMap::new(), counter: 0, relay }
    }

    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn reply(&mut self, request: &Message, status: u16) -> Outgoing {
        let tag = format!("{}-{}", self.element.name(), self.next());
        Outgoing::Reply(Message::response_to(request, status, Some(&tag)))
    }

    /// Where requests to the subscriber go: the first Record-Route hop, else the connection the
    /// SUBSCRIBE came on, else the Contact's address over UDP.
    fn destination(&self, request: &Message, peer: &Peer, target: &SipUri) -> Option<Destination> {
        if let Some(first) = request.record_routes().ok().and_then(|r| r.into_iter().next()) {
            let uri = first.uri.as_sip()?.clone();
            let ip = match uri.host.ip() {
                Some(ip) => ip,
                None => self.topology.ip(self.topology.element_named(&uri.host.to_string())?),
            };
            return Some(Destination::Udp(SocketAddr::new(ip, uri.port.unwrap_or(5060))));
        }
        if let Some(flow) = peer.flow {
            return Some(Destination::Flow(flow));
        }
        let ip = target.host.ip()?;
        Some(Destination::Udp(SocketAddr::new(ip, target.port.unwrap_or(5060))))
    }

    fn subscribe(&mut self, request: &Message, peer: &Peer, now: Instant) -> Vec<Outgoing> {
        let (Ok(from), Ok(to), Ok(call_id), Ok(Some((event, _))), Ok(contacts), Ok(expires)) =
            (request.from(), request.to(), request.call_id(), request.event(), request.contacts(), request.expires())
        else {
            return vec![self.reply(request, 400)];
        };
        if event != "dialog" && event != "message-summary" {
            let mut response = Message::response_to(request, 489, None);
            response.push_header(HeaderName::AllowEvents, "dialog, message-summary");
            return vec![Outgoing::Reply(response)];
        }
        let Some(from_tag) = from.tag().map(str::to_owned) else { return vec![self.reply(request, 400)] };
        let key = (call_id.to_owned(), from_tag);
        let granted = expires.unwrap_or(MAX_SUBSCRIPTION_EXPIRES).min(MAX_SUBSCRIPTION_EXPIRES);
        let our_tag = match to.tag() {
            // A request inside a dialog the proxy does not know gets 481 (RFC 6665 §4.2.1.2).
            Some(tag) if !self.subscriptions.contains_key(&key) => {
                let _ = tag;
                return vec![Outgoing::Reply(Message::response_to(request, 481, None))];
            }
            Some(tag) => tag.to_owned(),
            None => format!("{}-{}", self.element.name(), self.next()),
        };
        let target = contacts.first().and_then(|c| c.address()).and_then(|a| a.uri.as_sip()).cloned();
        let Some(target) = target else { return vec![self.reply(request, 400)] };
        let Some(destination) = self.destination(request, peer, &target) else { return vec![self.reply(request, 400)] };

        let mut ok = Message::response_to(request, 200, Some(&our_tag));
        ok.push_header(HeaderName::Expires, granted);
        // Echoed so a trace of responses alone tells which package was accepted.
        ok.push_header(HeaderName::Event, &event);
        ok.push_header(HeaderName::Contact, self.contact());
        for route in request.header_values(&HeaderName::RecordRoute) {
            ok.push_header(HeaderName::RecordRoute, route);
        }
        let mut out = vec![Outgoing::Reply(ok)];

        let mut resource = to.clone();
        resource.params.set("tag", Some(&our_tag));
        let routes = request.header_values(&HeaderName::RecordRoute).into_iter().map(str::to_owned).collect();
        let subscription = self.subscriptions.entry(key.clone()).or_insert(Subscription {
            event: event.clone(),
            subscriber: from.clone(),
            resource,
            call_id: call_id.to_owned(),
            target: target.clone(),
            routes,
            destination,
            notify_cseq: 0,
            version: 0,
            expires_at: now,
        });
        subscription.expires_at = now + std::time::Duration::from_secs(u64::from(granted));
        subscription.target = target;
        let state =
            if granted == 0 { "terminated;reason=timeout".to_owned() } else { format!("active;expires={granted}") };
        let notify = self.notify(&key, &state);
        if granted == 0 {
            self.subscriptions.remove(&key);
        }
        out.extend(notify);
        out
    }

    fn contact(&self) -> NameAddr {
        NameAddr::new(SipUri::new(Scheme::Sip, None, Host::Domain(self.topology.fqdn(self.element)), Some(5060)))
    }

    /// A NOTIFY on the subscription `key` with `Subscription-State: state`.
    fn notify(&mut self, key: &(String, String), state: &str) -> Option<Outgoing> {
        let n = self.next();
        let element = self.element;
        let via_host = Host::from(self.topology.ip(element));
        let contact = self.contact();
        let subscription = self.subscriptions.get_mut(key)?;
        subscription.notify_cseq += 1;
        let mut notify = Message::request(Method::Notify, &subscription.target);
        let branch = format!("z9hG4bK{}n{n}", element.name().replace('-', ""));
        notify.push_header(HeaderName::Via, Via::new("UDP", via_host, Some(5060), &branch));
        notify.push_header(HeaderName::MaxForwards, 70);
        for route in &subscription.routes {
            notify.push_header(HeaderName::Route, route);
        }
        notify.push_header(HeaderName::From, &subscription.resource);
        notify.push_header(HeaderName::To, &subscription.subscriber);
        notify.push_header(HeaderName::CallId, &subscription.call_id);
        notify.push_header(HeaderName::CSeq, format!("{} NOTIFY", subscription.notify_cseq));
        notify.push_header(HeaderName::Event, &subscription.event);
        notify.push_header(HeaderName::SubscriptionState, state);
        notify.push_header(HeaderName::Contact, contact);
        let (content_type, body) = notify_body(&subscription.event, &subscription.resource, subscription.version);
        subscription.version += 1;
        notify.set_body(content_type, body);
        Some(Outgoing::Send { to: subscription.destination, message: notify })
    }

    fn invite(&mut self, request: &Message) -> Vec<Outgoing> {
        match self.config.invite {
            InviteAnswer::Reject(code) => vec![self.reply(request, code)],
            InviteAnswer::Accept => {
                let tag = format!("{}-{}", self.element.name(), self.next());
                let ringing = Message::response_to(request, 180, Some(&tag));
                let mut ok = Message::response_to(request, 200, Some(&tag));
                ok.push_header(HeaderName::Contact, self.contact());
                for route in request.header_values(&HeaderName::RecordRoute) {
                    ok.push_header(HeaderName::RecordRoute, route);
                }
                let ip = self.topology.ip(self.element);
                let sdp = format!(
                    "v=0\r\no=sipharness 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
                );
                ok.set_body("application/sdp", sdp);
                vec![Outgoing::Reply(ringing), Outgoing::Reply(ok)]
            }
        }
    }
}

/// The NOTIFY body: a dialog-info document (RFC 4235 §4) or a message summary (RFC 3842 §5).
fn notify_body(event: &str, resource: &NameAddr, version: u32) -> (&'static str, String) {
    if event == "dialog" {
        let body = format!(
            "<?xml version=\"1.0\"?>\r\n<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"{version}\" state=\"full\" entity=\"{}\"/>\r\n",
            resource.uri
        );
        ("application/dialog-info+xml", body)
    } else {
        ("application/simple-message-summary", format!("Messages-Waiting: no\r\nMessage-Account: {}\r\n", resource.uri))
    }
}

impl Behaviour for Proxy {
    fn on_request(&mut self, request: &Message, peer: &Peer, _view: &FlowView<'_>, now: Instant) -> Vec<Outgoing> {
        match request.method() {
            Some(Method::Subscribe) => self.subscribe(request, peer, now),
            Some(Method::Invite) => self.invite(request),
            // A phone with one server registers here too: on to our registrar.
            Some(Method::Register) => self.relay.pass_to_counterpart(request, peer, now),
            Some(Method::Ack) => Vec::new(),
            Some(Method::Bye) | Some(Method::Cancel) => vec![self.reply(request, 200)],
            _ => {
                let mut response = Message::response_to(request, 405, None);
                self.capabilities().advertise(&mut response, false);
                vec![Outgoing::Reply(response)]
            }
        }
    }

    fn command(&mut self, command: &ElementCommand, _now: Instant) -> Vec<Outgoing> {
        if let ElementCommand::AnswerInvitesWith(answer) = command {
            self.config.invite = *answer;
            return Vec::new();
        }
        let keys: Vec<(String, String)> = self.subscriptions.keys().cloned().collect();
        let mut out = Vec::new();
        for key in keys {
            match command {
                ElementCommand::NotifyAll => {
                    let state = "active".to_owned();
                    out.extend(self.notify(&key, &state));
                }
                ElementCommand::DeactivateAll => {
                    out.extend(self.notify(&key, "terminated;reason=deactivated"));
                    self.subscriptions.remove(&key);
                }
                ElementCommand::AnswerInvitesWith(_) => {}
            }
        }
        out
    }

    fn on_response(&mut self, response: &Message, _from: &Peer, _view: &FlowView<'_>, _now: Instant) -> Vec<Outgoing> {
        self.relay.on_response(response).unwrap_or_default()
    }

    fn restart(&mut self) {
        self.subscriptions.clear();
        self.relay.clear();
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // REGISTER is passed on to the registrar of our side, with our Path.
            allow: vec!["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "SUBSCRIBE", "REGISTER"],
            supported: vec!["path"],
            accept: Some("application/sdp"),
            events: vec!["dialog", "message-summary"],
        }
    }

    fn timers(&self) -> (Duration, Duration) {
        (self.config.t1, self.config.t2)
    }
}
