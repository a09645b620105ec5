//! The mock SIP elements: shared state per element (faults, flows, behaviour), the fault rules applied on the wire, and the behaviours behind them.

mod digest;
mod edge;
mod proxy;
mod registrar;
mod relay;
mod stream;
mod transaction;
mod udp;
mod wire;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sip::{HeaderName, Message, Method, StunClass, StunMessage};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

pub use edge::EdgeProxy;
pub use proxy::{InviteAnswer, Proxy, ProxyConfig};
pub use registrar::{DigestAuth, OutboundSupport, Registrar, RegistrarConfig};
pub use stream::FIRST_MESSAGE_DEADLINE;
pub(crate) use stream::{bind_tcp, run_tcp_listener, run_tls_listener};
pub use transaction::{DEFAULT_T1, DEFAULT_T2};
pub(crate) use udp::{read_udp, run_udp};
pub(crate) use wire::Capabilities;

use crate::faults::{Fault, FaultTarget};
use crate::topology::{Element, Topology};
use crate::trace::{Direction, Fate, Payload, Record, Trace, Transport};
use transaction::{ClientTransactions, ServerTransactions, ServerVerdict};

/// A TCP or TLS connection an element holds, numbered in order of arrival.
pub type FlowId = u64;

/// The largest UDP payload over IPv4 (65535 minus the IP and UDP headers).
const MAX_UDP_PAYLOAD: usize = 65_507;

/// Where a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub transport: Transport,
    /// The connection it came on; `None` for UDP.
    pub flow: Option<FlowId>,
    pub addr: SocketAddr,
}

/// Where an element sends a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    Flow(FlowId),
    Udp(SocketAddr),
}

/// What an element's behaviour wants sent.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A response, sent back the way the request came: its flow, or over UDP where its top Via
    /// says (RFC 3261 §18.2.2, RFC 3581 §4). Final ones get a To tag when they have none.
    Reply(Message),
    /// A request of the element's own, or a message it forwards.
    Send { to: Destination, message: Message },
}

/// Commands a case gives an element's behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElementCommand {
    /// The proxy sends a NOTIFY on every subscription (a state change).
    NotifyAll,
    /// The proxy ends every subscription with `terminated;reason=deactivated` (RFC 6665 §4.1.3).
    DeactivateAll,
    /// The proxy answers INVITEs so from now on (a callee that declines: `Reject(603)`).
    AnswerInvitesWith(InviteAnswer),
}

/// The part of an element that decides what to answer; the transports around it apply faults.
pub(crate) trait Behaviour: Send {
    fn on_request(&mut self, request: &Message, from: &Peer, view: &FlowView<'_>, now: Instant) -> Vec<Outgoing>;
    fn on_response(&mut self, _response: &Message, _from: &Peer, _view: &FlowView<'_>, _now: Instant) -> Vec<Outgoing> {
        Vec::new()
    }
    fn command(&mut self, _command: &ElementCommand, _now: Instant) -> Vec<Outgoing> {
        Vec::new()
    }
    /// Forget everything (the `restart` event).
    fn restart(&mut self);
    /// What it advertises in OPTIONS answers and 405s: what it serves.
    fn capabilities(&self) -> Capabilities;
    /// T1 and T2 (RFC 3261 §17.1.1.1) for its transactions.
    fn timers(&self) -> (Duration, Duration) {
        (DEFAULT_T1, DEFAULT_T2)
    }
    /// Whether the element keeps transactions (RFC 3261 §17): absorbs retransmitted requests and
    /// repeats its last response, retransmits its own requests over UDP. A transaction-stateless
    /// proxy (RFC 3261 §16.11) passes retransmissions on instead.
    fn keeps_transactions(&self) -> bool {
        true
    }
}

/// Which flows are open, as a behaviour may ask (an edge proxy answers 430 for a dead one).
pub(crate) struct FlowView<'a> {
    flows: &'a HashMap<FlowId, FlowHandle>,
}

impl FlowView<'_> {
    pub fn is_open(&self, flow: FlowId) -> bool {
        self.flows.contains_key(&flow)
    }
}

/// The faults in force on one element, per transport, with what `stall` froze.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FaultSet {
    pub udp: Option<Fault>,
    pub tcp: Option<Fault>,
    pub tls: Option<Fault>,
    /// Flows numbered below this existed when `stall` began.
    pub stall_boundary: FlowId,
    /// UDP sources seen before `stall` began.
    pub stalled_sources: HashSet<SocketAddr>,
}

impl FaultSet {
    pub fn on(&self, transport: Transport) -> Option<Fault> {
        match transport {
            Transport::Udp => self.udp,
            Transport::Tcp => self.tcp,
            Transport::Tls => self.tls,
        }
    }

    fn slot(&mut self, transport: Transport) -> &mut Option<Fault> {
        match transport {
            Transport::Udp => &mut self.udp,
            Transport::Tcp => &mut self.tcp,
            Transport::Tls => &mut self.tls,
        }
    }

    /// Whether a message from `peer` is swallowed, and by which fault.
    fn swallows(&self, peer: &Peer) -> Option<Fault> {
        match self.on(peer.transport)? {
            Fault::Silent => Some(Fault::Silent),
            // The port is closing: what slipped in before it closed is not answered.
            Fault::Refuse => Some(Fault::Refuse),
            Fault::Stall => {
                let frozen = match peer.flow {
                    Some(flow) => flow < self.stall_boundary,
                    None => self.stalled_sources.contains(&peer.addr),
                };
                frozen.then_some(Fault::Stall)
            }
            _ => None,
        }
    }
}

/// Commands to a flow's task.
#[derive(Debug)]
pub(crate) enum FlowCommand {
    Write(Vec<u8>),
    /// Close with RST (SO_LINGER 0).
    Reset,
}

#[derive(Debug)]
pub(crate) struct FlowHandle {
    pub transport: Transport,
    pub peer: SocketAddr,
    pub commands: mpsc::UnboundedSender<FlowCommand>,
}

/// How many UDP source addresses an element remembers for `stall` (about 3 MB at most).
const MAX_UDP_SOURCES_SEEN: usize = 65_536;

/// Everything about one element that its transports, the lab and its behaviour share.
pub(crate) struct ElementShared {
    pub element: Element,
    pub topology: Arc<Topology>,
    pub trace: Trace,
    behaviour: Mutex<Box<dyn Behaviour>>,
    pub faults: watch::Sender<FaultSet>,
    flows: Mutex<HashMap<FlowId, FlowHandle>>,
    /// The open UDP socket (`None` while `refuse` keeps the port closed); the extra readers
    /// follow it, so a closed port is closed for all of them.
    udp: watch::Sender<Option<Arc<tokio::net::UdpSocket>>>,
    udp_seen: Mutex<HashSet<SocketAddr>>,
    next_flow: AtomicU64,
    capabilities: Capabilities,
    keeps_transactions: bool,
    servers: Mutex<ServerTransactions>,
    clients: Mutex<ClientTransactions>,
    /// Wakes the UDP task when a client transaction starts, so it re-arms its retransmission timer.
    pub client_started: Notify,
    /// Its connections' tasks and its delayed answers: they end with the lab.
    pub connections: crate::net::ConnectionTasks,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ElementShared {
    pub fn new(
        element: Element,
        topology: Arc<Topology>,
        trace: Trace,
        behaviour: Box<dyn Behaviour>,
    ) -> Arc<ElementShared> {
        let (faults, _) = watch::channel(FaultSet::default());
        let (t1, t2) = behaviour.timers();
        let capabilities = behaviour.capabilities();
        let keeps_transactions = behaviour.keeps_transactions();
        Arc::new(ElementShared {
            element,
            topology,
            trace,
            behaviour: Mutex::new(behaviour),
            faults,
            flows: Mutex::new(HashMap::new()),
            connections: crate::net::ConnectionTasks::default(),
            udp: watch::channel(None).0,
            udp_seen: Mutex::new(HashSet::new()),
            next_flow: AtomicU64::new(1),
            capabilities,
            keeps_transactions,
            servers: Mutex::new(ServerTransactions::new(t1)),
            clients: Mutex::new(ClientTransactions::new(t1, t2)),
            client_started: Notify::new(),
        })
    }

    pub fn local_addr(&self, transport: Transport) -> SocketAddr {
        let port = if transport == Transport::Tls { 5061 } else { 5060 };
        SocketAddr::new(self.topology.ip(self.element), port)
    }

    /// Puts `fault` (or none) on the transports `target` covers.
    pub fn set_fault(&self, target: &FaultTarget, fault: Option<Fault>) {
        self.faults.send_modify(|set| {
            for transport in [Transport::Udp, Transport::Tcp, Transport::Tls] {
                if target.covers(transport) {
                    *set.slot(transport) = fault;
                }
            }
            if fault == Some(Fault::Stall) {
                set.stall_boundary = self.next_flow.load(Ordering::SeqCst);
                set.stalled_sources = lock(&self.udp_seen).clone();
            }
        });
    }

    pub fn register_flow(
        &self,
        transport: Transport,
        peer: SocketAddr,
        commands: mpsc::UnboundedSender<FlowCommand>,
    ) -> FlowId {
        let id = self.next_flow.fetch_add(1, Ordering::SeqCst);
        lock(&self.flows).insert(id, FlowHandle { transport, peer, commands });
        id
    }

    pub fn forget_flow(&self, id: FlowId) {
        lock(&self.flows).remove(&id);
    }

    /// Resets every flow on the transports `target` covers (the `reset` event, and `refuse`).
    pub fn reset_flows(&self, target: &FaultTarget) {
        let flows = lock(&self.flows);
        for handle in flows.values().filter(|h| target.covers(h.transport)) {
            let _ = handle.commands.send(FlowCommand::Reset);
        }
    }

    /// The `restart` event: state forgotten, flows reset.
    pub fn restart(&self) {
        lock(&self.behaviour).restart();
        lock(&self.udp_seen).clear();
        lock(&self.servers).clear();
        lock(&self.clients).clear();
        self.reset_flows(&FaultTarget::from(self.element));
    }

    pub fn set_udp_socket(&self, socket: Option<Arc<tokio::net::UdpSocket>>) {
        self.udp.send_replace(socket);
    }

    /// Follows the UDP socket as `refuse` closes and reopens it (the extra readers).
    pub fn udp_socket(&self) -> watch::Receiver<Option<Arc<tokio::net::UdpSocket>>> {
        self.udp.subscribe()
    }

    pub fn open_flows(&self) -> usize {
        lock(&self.flows).len()
    }

    fn record(&self, direction: Direction, peer: Peer, payload: Payload, fate: Fate) {
        self.trace.record(Record {
            element: self.element,
            direction,
            transport: peer.transport,
            local: self.local_addr(peer.transport),
            remote: peer.addr,
            flow: peer.flow,
            payload,
            fate,
        });
    }

    /// Sends bytes to a destination; returns false if it is gone.
    async fn send_bytes(&self, to: Destination, bytes: Vec<u8>) -> bool {
        match to {
            Destination::Flow(id) => {
                let flows = lock(&self.flows);
                match flows.get(&id) {
                    Some(handle) => handle.commands.send(FlowCommand::Write(bytes)).is_ok(),
                    None => false,
                }
            }
            Destination::Udp(addr) => {
                let socket = self.udp.borrow().clone();
                match socket {
                    Some(socket) => socket.send_to(&bytes, addr).await.is_ok(),
                    None => false,
                }
            }
        }
    }

    fn destination_info(&self, to: Destination) -> (Transport, SocketAddr) {
        match to {
            Destination::Udp(addr) => (Transport::Udp, addr),
            Destination::Flow(id) => {
                let flows = lock(&self.flows);
                flows
                    .get(&id)
                    .map(|h| (h.transport, h.peer))
                    .unwrap_or((Transport::Tcp, SocketAddr::new(self.topology.ip(self.element), 0)))
            }
        }
    }

    /// Sends a SIP message and records it; a response becomes the one its server transaction
    /// repeats, a request over UDP starts a client transaction that retransmits it.
    pub async fn send_message(&self, to: Destination, message: Message) {
        let bytes = message.to_bytes();
        match (self.keeps_transactions, message.is_request(), to) {
            (false, _, _) => {}
            (true, true, Destination::Udp(_)) => {
                lock(&self.clients).start(to, &message, Instant::now());
                self.client_started.notify_one();
            }
            (true, true, Destination::Flow(_)) => {}
            (true, false, _) => lock(&self.servers).on_response_sent(&message, &bytes),
        }
        self.transmit_encoded(to, message, bytes).await;
    }

    /// When the next retransmission of a client transaction is due.
    pub fn next_retransmission(&self) -> Option<Instant> {
        lock(&self.clients).next_due()
    }

    /// Sends the requests whose retransmission is due, unless a fault swallows what the element
    /// sends (a silent or refusing element sends nothing; a stalled one nothing to stalled peers).
    pub async fn retransmit_due(&self) {
        let due = lock(&self.clients).due(Instant::now());
        for (to, request) in due {
            if self.swallows_outbound(to) {
                continue;
            }
            tracing::debug!(element = %self.element, "retransmitting to {to:?}");
            self.transmit(to, request).await;
        }
    }

    fn swallows_outbound(&self, to: Destination) -> bool {
        let faults = self.faults.borrow();
        match (faults.udp, to) {
            (Some(Fault::Silent | Fault::Refuse), _) => true,
            (Some(Fault::Stall), Destination::Udp(addr)) => faults.stalled_sources.contains(&addr),
            _ => false,
        }
    }

    /// Records a SIP message and puts it on the wire.
    async fn transmit(&self, to: Destination, message: Message) {
        let bytes = message.to_bytes();
        self.transmit_encoded(to, message, bytes).await;
    }

    /// `transmit` of a message already printed as `bytes`.
    async fn transmit_encoded(&self, to: Destination, message: Message, bytes: Vec<u8>) {
        let (transport, remote) = self.destination_info(to);
        // Recorded before it leaves, so the receiver's record always comes after it in the trace.
        let flow = match to {
            Destination::Flow(id) => Some(id),
            _ => None,
        };
        let peer = Peer { transport, flow, addr: remote };
        if transport == Transport::Udp && bytes.len() > MAX_UDP_PAYLOAD {
            // No datagram carries it (RFC 3261 §18.1.1 would move a request to TCP; a response
            // to a UDP request has nowhere else to go): not sent, and the trace says so.
            let why = format!("{} octets: too large for a UDP datagram", bytes.len());
            tracing::warn!(element = %self.element, "not sent to {remote}: {why}");
            self.record(Direction::Sent, peer, Payload::Sip(Box::new(message)), Fate::Dropped(why));
            return;
        }
        self.record(Direction::Sent, peer, Payload::Sip(Box::new(message)), Fate::Delivered);
        if !self.send_bytes(to, bytes).await {
            tracing::debug!(element = %self.element, "cannot send to {to:?}: gone");
        }
    }

    /// Runs a case's command on the behaviour and sends what it produces.
    pub async fn command(&self, command: &ElementCommand) {
        let outgoing = lock(&self.behaviour).command(command, Instant::now());
        // Commands make requests only; nothing here is a reply.
        for out in outgoing {
            if let Outgoing::Send { to, message } = out {
                self.send_message(to, message).await;
            }
        }
    }

    /// Handles one thing read off the wire: records it, applies the faults, asks the behaviour,
    /// sends the answers.
    pub async fn inbound(self: &Arc<Self>, peer: Peer, unit: Inbound) {
        let faults = self.faults.borrow().clone();
        let swallowed = faults.swallows(&peer);
        let fate = match swallowed {
            Some(fault) => Fate::Dropped(fault.to_string()),
            None => Fate::Delivered,
        };
        if peer.transport == Transport::Udp && swallowed.is_none() {
            let mut seen = lock(&self.udp_seen);
            // Bounded for a load test's many sources: past the cap a new source is not
            // remembered, so a later `stall` serves it as new.
            if seen.len() < MAX_UDP_SOURCES_SEEN {
                seen.insert(peer.addr);
            }
        }
        let keep_alive_to = match peer.flow {
            Some(flow) => Destination::Flow(flow),
            None => Destination::Udp(peer.addr),
        };
        match unit {
            Inbound::Ping => {
                self.record(Direction::Received, peer, Payload::KeepAlive, fate.clone());
                if fate == Fate::Delivered {
                    self.record(Direction::Sent, peer, Payload::KeepAlive, Fate::Delivered);
                    self.send_bytes(keep_alive_to, b"\r\n".to_vec()).await;
                }
            }
            Inbound::KeepAlive => {
                self.record(Direction::Received, peer, Payload::KeepAlive, fate);
            }
            Inbound::Stun(request) => {
                let is_binding = request.class == StunClass::BindingRequest;
                self.record(Direction::Received, peer, Payload::Stun(request.clone()), fate.clone());
                if fate == Fate::Delivered && is_binding {
                    let answer = StunMessage::binding_success(&request, peer.addr);
                    let bytes = answer.encode();
                    self.record(Direction::Sent, peer, Payload::Stun(answer), Fate::Delivered);
                    self.send_bytes(keep_alive_to, bytes).await;
                }
            }
            Inbound::Malformed(malformed) => {
                tracing::warn!(element = %self.element, "malformed message from {}: {malformed}", peer.addr);
                self.record(Direction::Received, peer, Payload::Malformed(malformed), fate);
            }
            Inbound::Sip(message) => {
                self.record(Direction::Received, peer, Payload::Sip(message.clone()), fate.clone());
                if fate != Fate::Delivered {
                    return;
                }
                let mut message = message;
                let now = Instant::now();
                if message.is_request() {
                    wire::stamp_via(&mut message, peer.addr);
                } else {
                    lock(&self.clients).on_response(&message, now);
                }
                let reply_to = wire::response_destination(&message, &peer, &self.topology);
                if message.is_request() && self.keeps_transactions {
                    let verdict = lock(&self.servers).on_request(&message, now);
                    match verdict {
                        ServerVerdict::New => {}
                        ServerVerdict::Absorbed => {
                            tracing::debug!(element = %self.element, "retransmission absorbed, not answered yet");
                            return;
                        }
                        ServerVerdict::Repeat(bytes) => {
                            // The element's own printing parses back; the trace shows it again.
                            match Message::parse(&bytes) {
                                Ok(response) => self.transmit_encoded(reply_to, response, bytes.to_vec()).await,
                                Err(e) => {
                                    tracing::error!(element = %self.element, "a kept response does not parse: {e}")
                                }
                            }
                            return;
                        }
                    }
                }
                let fault = faults.on(peer.transport);
                let outgoing = self.answer(&peer, fault, &message);
                if let (Some(Fault::Delay { ms }), true) = (fault, message.is_request()) {
                    // A slow server: its answer to a request (or an edge proxy's forwarding of
                    // it) leaves late, and the element reads on meanwhile; responses it relays
                    // pass at once, so a request through it is late by `ms`, not twice.
                    let this = self.clone();
                    self.connections.spawn(async move {
                        tokio::time::sleep(Duration::from_millis(ms.into())).await;
                        this.send_all(reply_to, outgoing).await;
                    });
                    return;
                }
                self.send_all(reply_to, outgoing).await;
            }
        }
    }

    async fn send_all(&self, reply_to: Destination, outgoing: Vec<Outgoing>) {
        for out in outgoing {
            let (to, message) = match out {
                Outgoing::Reply(m) => (reply_to, m),
                Outgoing::Send { to, message } => (to, message),
            };
            self.send_message(to, message).await;
        }
    }

    fn answer(&self, peer: &Peer, fault: Option<Fault>, message: &Message) -> Vec<Outgoing> {
        let mut outgoing = self.decide(peer, fault, message);
        if message.is_request() {
            let tag = wire::local_tag(self.element, message);
            for out in &mut outgoing {
                if let Outgoing::Reply(response) = out {
                    wire::ensure_to_tag(response, &tag);
                }
            }
        }
        outgoing
    }

    fn decide(&self, peer: &Peer, fault: Option<Fault>, message: &Message) -> Vec<Outgoing> {
        let now = Instant::now();
        if !message.is_request() {
            let flows = lock(&self.flows);
            let view = FlowView { flows: &flows };
            return lock(&self.behaviour).on_response(message, peer, &view, now);
        }
        if let Some(Fault::Reject { code, retry_after }) = fault {
            if message.method() == Some(&Method::Ack) {
                return Vec::new();
            }
            return vec![Outgoing::Reply(rejection(message, code, retry_after, self.element))];
        }
        if message.method() == Some(&Method::Options) && self.answers_options_itself(message) {
            return vec![Outgoing::Reply(options_reply(message, self.element, &self.capabilities))];
        }
        let flows = lock(&self.flows);
        let view = FlowView { flows: &flows };
        lock(&self.behaviour).on_request(message, peer, &view, now)
    }

    /// Every element answers OPTIONS addressed to itself; an edge proxy forwards other OPTIONS.
    fn answers_options_itself(&self, message: &Message) -> bool {
        if !matches!(self.element, Element::OutboundA | Element::OutboundB) {
            return true;
        }
        let target = message.request_uri().and_then(Result::ok);
        let host = target.as_ref().and_then(|u| u.as_sip()).map(|u| u.host.to_string());
        host.is_none_or(|h| self.topology.element_named(&h).is_none_or(|e| e == self.element))
    }
}

/// One unit read off a transport.
#[derive(Debug)]
pub(crate) enum Inbound {
    Sip(Box<Message>),
    Malformed(sip::Malformed),
    /// RFC 5626 CRLF ping (stream).
    Ping,
    /// CRLF keep-alive on UDP (answered with nothing).
    KeepAlive,
    Stun(StunMessage),
}

/// A response every element gives to OPTIONS (RFC 3261 §11.2): what its behaviour serves.
fn options_reply(request: &Message, element: Element, capabilities: &Capabilities) -> Message {
    let mut response = Message::response_to(request, 200, Some(&format!("{}-opt", element.name())));
    capabilities.advertise(&mut response, true);
    response
}

/// The answer a `reject CODE` fault gives to every request.
fn rejection(request: &Message, code: u16, retry_after: Option<u32>, element: Element) -> Message {
    let mut response = Message::response_to(request, code, Some(&format!("{}-rej", element.name())));
    if let Some(seconds) = retry_after {
        response.push_header(HeaderName::RetryAfter, seconds);
    }
    response
}
