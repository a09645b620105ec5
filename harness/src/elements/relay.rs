//! Passing a request on and its responses back (RFC 3261 §16.11, transaction-stateless): the edge proxy's forwarding, and a proxy's or registrar's hand-off of what the other element serves.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use sip::{HeaderName, Host, Message, Method, NameAddr, Scheme, SipUri, Via};
use tokio::time::Instant;

use super::{Destination, Outgoing, Peer};
use crate::topology::{Element, Topology};

/// How long an INVITE may wait for its final response through a relay (RFC 3261 §16.6 step 11,
/// Timer C: more than 3 minutes); other requests are given up at 64*T1.
const INVITE_PATIENCE: Duration = Duration::from_secs(181);

/// A forwarded request whose final response has not come back yet.
#[derive(Debug, Clone, Copy)]
struct Pending {
    back: Destination,
    since: Instant,
    invite: bool,
}

/// Forwards requests under a branch derived from the incoming one (so a retransmission, and an
/// INVITE's CANCEL or non-2xx ACK, reach the next hop under the branch its first copy got and
/// are absorbed there), and remembers which way each one's responses go back.
pub(crate) struct Relay {
    element: Element,
    topology: Arc<Topology>,
    /// Our Via branch -> where its responses go, since when, and whether it is an INVITE's.
    pending: HashMap<String, Pending>,
    counter: u64,
}

impl Relay {
    pub fn new(element: Element, topology: Arc<Topology>) -> Relay {
        Relay { element, topology, pending: HashMap::new(), counter: 0 }
    }

    /// The branch of the forwarded copy: a function of the incoming top Via's branch and sent-by;
    /// a request without an RFC 3261 branch gets a new one.
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

    /// Forgets the forwarded requests whose transactions are over without a final response.
    fn forget_unanswered(&mut self, now: Instant) {
        let give_up = super::DEFAULT_T1 * 64;
        self.pending.retain(|_, p| now.duration_since(p.since) < if p.invite { INVITE_PATIENCE } else { give_up });
    }

    /// Sends `request` on to `to` with our Via on top and Max-Forwards decremented (483 at 0);
    /// its responses will go to `back`.
    pub fn forward(&mut self, mut request: Message, to: Destination, back: Destination, now: Instant) -> Vec<Outgoing> {
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

    /// A response to a request we forwarded: our Via off, on its way back. `None` when it answers
    /// nothing we forwarded (the element's own requests' responses).
    pub fn on_response(&mut self, response: &Message) -> Option<Vec<Outgoing>> {
        let top = response.top_via().ok()?;
        let branch = top.branch()?;
        let back = self.pending.get(branch)?.back;
        if response.status().is_some_and(|s| s >= 200) {
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
        Some(vec![Outgoing::Send { to: back, message: response }])
    }

    /// Passes a request this element does not serve on to the one of its side that does (a
    /// proxy's REGISTER to its registrar, a registrar's SUBSCRIBE or INVITE to its proxy), so a
    /// phone with one server can register and subscribe there. A REGISTER gets our Path when the
    /// phone supports it (RFC 3327 §5.1); without a counterpart, 405.
    pub fn pass_to_counterpart(&mut self, request: &Message, peer: &Peer, now: Instant) -> Vec<Outgoing> {
        let Some(next) = self.element.counterpart() else {
            return vec![Outgoing::Reply(Message::response_to(request, 405, None))];
        };
        let mut request = request.clone();
        if request.method() == Some(&Method::Register) && request.has_option_tag(&HeaderName::Supported, "path") {
            let mut uri = SipUri::new(Scheme::Sip, None, Host::Domain(self.topology.fqdn(self.element)), Some(5060));
            uri.params.set("lr", None);
            request.headers.insert(0, sip::Header { name: HeaderName::Path, value: NameAddr::new(uri).to_string() });
        }
        let back = super::wire::response_destination(&request, peer, &self.topology);
        self.forward(request, Destination::Udp(self.topology.sip_addr(next)), back, now)
    }

    pub fn clear(&mut self) {
        self.pending.clear();
    }
}
