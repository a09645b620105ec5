//! The mock proxy: SUBSCRIBE answered with 200 and an initial NOTIFY carrying a proper body (RFC 6665, RFC 4235, RFC 3842).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use sip::{HeaderName, Host, Message, Method, NameAddr, SipUri, Via, Scheme};
use tokio::time::Instant;

use super::{Behaviour, Outgoing};
use crate::topology::{Element, Topology};

/// Subscription expiry the proxy grants at most.
const MAX_SUBSCRIPTION_EXPIRES: u32 = 3600;

#[derive(Debug)]
struct Subscription {
    notify_cseq: u32,
}

/// Subscriptions per dialog (Call-ID, subscriber tag).
pub struct Proxy {
    element: Element,
    topology: Arc<Topology>,
    subscriptions: HashMap<(String, String), Subscription>,
    counter: u64,
}

impl Proxy {
    pub fn new(element: Element, topology: Arc<Topology>) -> Proxy {
        Proxy { element, topology, subscriptions: HashMap::new(), counter: 0 }
    }

    fn tag(&mut self) -> String {
        self.counter += 1;
        format!("{}-{}", self.element.name(), self.counter)
    }

    fn subscribe(&mut self, request: &Message) -> Vec<Outgoing> {
        let (Ok(from), Ok(to), Ok(call_id), Ok(Some((event, _))), Ok(contacts), Ok(expires)) =
            (request.from(), request.to(), request.call_id(), request.event(), request.contacts(), request.expires())
        else {
            return vec![Outgoing::Reply(Message::response_to(request, 400, None))];
        };
        if event != "dialog" && event != "message-summary" {
            return vec![Outgoing::Reply(Message::response_to(request, 489, None))];
        }
        let Some(from_tag) = from.tag() else {
            return vec![Outgoing::Reply(Message::response_to(request, 400, None))];
        };
        let key = (call_id.to_owned(), from_tag.to_owned());
        // A request inside a dialog the proxy does not know gets 481 (RFC 6665 §4.2.1.2).
        let our_tag = match to.tag() {
            Some(tag) => {
                if !self.subscriptions.contains_key(&key) {
                    return vec![Outgoing::Reply(Message::response_to(request, 481, None))];
                }
                tag.to_owned()
            }
            None => self.tag(),
        };
        let granted = expires.unwrap_or(MAX_SUBSCRIPTION_EXPIRES).min(MAX_SUBSCRIPTION_EXPIRES);
        let mut ok = Message::response_to(request, 200, Some(&our_tag));
        ok.push_header(HeaderName::Expires, granted);
        ok.push_header(HeaderName::Contact, format!("<sip:{}:5060>", self.topology.fqdn(self.element)));
        let mut out = vec![Outgoing::Reply(ok)];

        let subscription = self
            .subscriptions
            .entry(key.clone())
            .or_insert(Subscription { notify_cseq: 0 });
        subscription.notify_cseq += 1;
        let cseq = subscription.notify_cseq;
        let state = if granted == 0 {
            self.subscriptions.remove(&key);
            "terminated;reason=timeout".to_owned()
        } else {
            format!("active;expires={granted}")
        };
        let target = contacts.first().and_then(|c| c.address()).and_then(|a| a.uri.as_sip()).cloned();
        if let Some(target) = target {
            if let Some(to_addr) = target.host.ip().map(|ip| SocketAddr::new(ip, target.port.unwrap_or(5060))) {
                let mut notify = Message::request(Method::Notify, &target);
                let branch = format!("z9hG4bK{}n{}", self.element.name().replace('-', ""), self.counter);
                self.counter += 1;
                let via = Via::new("UDP", Host::from(self.topology.ip(self.element)), Some(5060), &branch);
                notify.push_header(HeaderName::Via, via);
                notify.push_header(HeaderName::MaxForwards, 70);
                let mut notify_from = to.clone();
                notify_from.params.set("tag", Some(&our_tag));
                notify.push_header(HeaderName::From, notify_from);
                notify.push_header(HeaderName::To, from.clone());
                notify.push_header(HeaderName::CallId, call_id);
                notify.push_header(HeaderName::CSeq, format!("{cseq} NOTIFY"));
                notify.push_header(HeaderName::Event, &event);
                notify.push_header(HeaderName::SubscriptionState, state);
                let contact = NameAddr::new(SipUri::new(
                    Scheme::Sip,
                    None,
                    Host::Domain(self.topology.fqdn(self.element)),
                    Some(5060),
                ));
                notify.push_header(HeaderName::Contact, contact);
                let (content_type, body) = notify_body(&event, &to);
                notify.set_body(content_type, body);
                out.push(Outgoing::Request { to: to_addr, message: notify });
            }
        }
        out
    }
}

/// The NOTIFY body for an event package: an empty dialog-info document (RFC 4235 §4) or a
/// message summary with no waiting messages (RFC 3842 §5).
fn notify_body(event: &str, resource: &NameAddr) -> (&'static str, String) {
    if event == "dialog" {
        let body = format!(
            "<?xml version=\"1.0\"?>\r\n<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"0\" state=\"full\" entity=\"{}\"/>\r\n",
            resource.uri
        );
        ("application/dialog-info+xml", body)
    } else {
        ("application/simple-message-summary", format!("Messages-Waiting: no\r\nMessage-Account: {}\r\n", resource.uri))
    }
}

impl Behaviour for Proxy {
    fn on_request(&mut self, request: &Message, _source: SocketAddr, _now: Instant) -> Vec<Outgoing> {
        match request.method() {
            Some(Method::Subscribe) => self.subscribe(request),
            // NOTIFYs the phone answers arrive as responses; a stray NOTIFY to the proxy is refused.
            _ => {
                let mut response = Message::response_to(request, 405, None);
                response.push_header(HeaderName::Allow, "SUBSCRIBE, OPTIONS");
                vec![Outgoing::Reply(response)]
            }
        }
    }
}
