//! The phone's sans-IO core: every decision the phone takes, with time and network events as inputs and wanted actions as outputs.
//!
//! The I/O shell ([`crate::io`]) feeds the core what happened (`start`, a datagram or stream
//! frame, a DNS answer, a flow opened or failed, a timer, a pushed command) and carries out what
//! it asks, polled with [`PhoneCore::poll_output`]: look a name up, open a flow, send a message,
//! set a timer. The core never reads a clock, a socket or a resolver, so every transition is
//! unit-tested without them.
//!
//! Inside, the [`sender`] turns "send this request to that next hop" into resolution, flows,
//! client transactions and digest answers, and reports each request's outcome to its owner: the
//! line's [`registration`], the [`subscription`]s, the [`failback`] probes and the [`call`]s.
//! [`routing`] is the failover state machine of the seed's three rows: an owner whose request
//! failed reports it, [`routing::Failover`] decides what the failure means, and every owner then
//! moves to the placement the state machine names ([`PhoneCore::reconcile`]). [`outbound`] keeps
//! RFC 5626 flows alive.

pub mod call;
mod contact;
mod digest;
mod expiry;
pub mod failback;
mod ids;
mod incoming;
mod invite_transaction;
pub mod outbound;
pub mod registration;
pub mod routing;
pub mod sender;
mod server_down;
pub mod subscription;
pub mod transaction;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use sip::{Message, Method};

use crate::config::Destination;
use crate::config::{LineConfig, PhoneConfig, PhoneTimers, SipTimers, SubscriptionSetting, TransportProtocol};
use crate::quirks::{Quirk, Quirks};

pub use registration::RegistrationState;
pub use routing::{Dimension, FailoverScheme, Placement, Role};
pub use sender::FailureCause;
pub(crate) use server_down::ServerDown;
pub use subscription::SubscriptionState;

/// A flow: the phone's connection to one remote address (over UDP, one connected socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(pub u64);

/// One outgoing request, from its resolution to its final response or failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request#{}", self.0)
    }
}

/// The SIP transport of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    /// The transport as Via names it.
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// Whether the transport is a stream that delivers reliably (no retransmissions).
    pub fn is_reliable(self) -> bool {
        self != Transport::Udp
    }

    /// The port a server of this transport listens on by default (RFC 3261 §19.1.2).
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Tls => 5061,
            Transport::Udp | Transport::Tcp => 5060,
        }
    }

    /// The transport the vendor's `sip transport protocol` selects; 0 (UDP and TCP) sends over UDP.
    pub fn from_setting(protocol: TransportProtocol) -> Transport {
        match protocol {
            TransportProtocol::UdpAndTcp | TransportProtocol::Udp => Transport::Udp,
            TransportProtocol::Tcp => Transport::Tcp,
            TransportProtocol::Tls => Transport::Tls,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        })
    }
}

/// A timer the core asked for. Setting a timer with the same id again replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerId {
    /// Timer A or E of a request's current client transaction.
    Retransmit(RequestId),
    /// Timer B or F (the vendor's `sip transaction timer`) of a request's current client transaction.
    TransactionTimeout(RequestId),
    /// Timer D: an INVITE transaction of the request leaves Completed (RFC 3261 §17.1.1.2).
    InviteCompleted(RequestId),
    /// Timer E or F of the CANCEL of the request's INVITE transaction.
    Cancel(RequestId),
    /// Refresh the registration of a line.
    RegistrationRefresh(u8),
    /// Try again to register a line after a failure.
    RegistrationRetry(u8),
    /// `register-both`: refresh the bindings a line keeps at the other registrar after a failback.
    KeptBindingRefresh(u8),
    /// Refresh subscription number N.
    SubscriptionRefresh(usize),
    /// Try subscription number N again after a failure.
    SubscriptionRetry(usize),
    /// Probe the failed primary of a dimension (OPTIONS).
    FailbackProbe(Dimension),
    /// Hang up (or give up ringing) call number N.
    CallHangup(u64),
    /// Send the next RFC 5626 keep-alive on a flow.
    KeepAlive(FlowId),
    /// The keep-alive sent on a flow was not answered in time.
    PongTimeout(FlowId),
}

/// What to look up in the DNS for a configured server (RFC 3263 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A/AAAA records of `host`; every address gets `port`.
    Address { host: String, port: u16 },
    /// RFC 3263 for a host without a port: NAPTR records for `transport`, then SRV
    /// (`_sip._udp`, `_sip._tcp`, `_sips._tcp`), then A/AAAA with the transport's default port.
    Service { host: String, transport: Transport },
}

/// Where a request or response came in, and so where a reply goes back out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// On the listening UDP socket (`--bind`:5060), from `remote`.
    Listener { remote: SocketAddr },
    /// On one of the phone's flows.
    Flow(FlowId),
    /// On a TCP connection a server opened to the phone's listening port (the shell's number).
    Inbound { connection: u64 },
}

/// How a flow failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportFailure {
    /// ICMP port unreachable (ECONNREFUSED on a connected UDP socket), or a TCP reset.
    Refused,
    /// The connection was closed by the other side.
    Closed,
    /// RFC 5626: a keep-alive went unanswered. (A 430 Flow Failed received is a 400, RFC 5626 §11.)
    FlowFailed(String),
    /// Any other error opening or using the flow.
    Other(String),
}

impl fmt::Display for TransportFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportFailure::Refused => f.write_str("connection refused"),
            TransportFailure::Closed => f.write_str("connection closed by the server"),
            TransportFailure::FlowFailed(why) => write!(f, "flow failed: {why}"),
            TransportFailure::Other(detail) => f.write_str(detail),
        }
    }
}

/// A command pushed to the phone over HTTP (the vendor's XML push).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushCommand {
    /// `Dial:<number>`: call `sip:<number>@<active proxy host>`.
    Dial(String),
    /// `Command: Reset`: restart the SIP stack (the shell re-creates the core).
    Reset,
    /// `Command: ClearLocal`: forget locally set values (refphone has none).
    ClearLocal,
}

/// An action the core wants the shell to carry out.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Look `lookup` up and answer with [`PhoneCore::on_resolved`].
    Resolve { request: RequestId, lookup: Lookup },
    /// Open a flow to `remote` from `--bind` (UDP: bind port 0 and connect; TCP/TLS: bind, then
    /// connect; TLS checks the certificate names `server_name`, else the address) and answer with
    /// [`PhoneCore::on_flow_opened`] or [`PhoneCore::on_transport_error`].
    OpenFlow { flow: FlowId, remote: SocketAddr, transport: Transport, server_name: Option<String> },
    /// Send `message` on an open flow.
    Send { flow: FlowId, message: Message },
    /// Send raw bytes on an open flow: an RFC 5626 keep-alive (CRLF ping, STUN binding request).
    SendRaw { flow: FlowId, bytes: Vec<u8> },
    /// Close a flow the core gave up on; no error comes back for it.
    CloseFlow { flow: FlowId },
    /// Send a response back the way its request came in.
    Reply { to: Arrival, message: Message },
    /// Call [`PhoneCore::on_timer`] with `id` at `at`, replacing any earlier setting of `id`.
    SetTimer { id: TimerId, at: Instant },
    /// Forget timer `id`.
    CancelTimer { id: TimerId },
}

/// Everything the core needs to know about the phone, fixed for a run.
#[derive(Debug, Clone)]
pub struct CoreSettings {
    /// The phone's own address (`--bind`): Contact, Call-IDs, and every socket.
    pub bind_ip: IpAddr,
    /// The port of the listening SIP sockets (UDP, and TCP when it is the transport), named in
    /// Contact over UDP and TCP; over TLS the Contact names the connection (see [`contact`]).
    pub listen_port: u16,
    pub user_agent: String,
    pub timers: SipTimers,
    pub phone_timers: PhoneTimers,
    pub quirks: Quirks,
    /// Line 1, the only line implemented.
    pub line: LineConfig,
    pub outbound_proxy: Option<Destination>,
    pub backup_outbound_proxy: Option<Destination>,
    /// The transport of every request (`udp-only` forces UDP).
    pub transport: Transport,
    /// `sip outbound support`: RFC 5626 registrations and keep-alives.
    pub outbound_support: bool,
    /// The phone's `+sip.instance` (`urn:uuid:...`), kept in `--state-dir`.
    pub instance_id: String,
    /// What to subscribe to.
    pub subscriptions: Vec<SubscriptionSetting>,
    /// Seeds branches, tags, Call-IDs and random delays; fixed in tests, random in a run.
    pub id_seed: u64,
}

impl CoreSettings {
    /// The settings for line 1 of `config`, the phone bound to `bind_ip`.
    pub fn from_config(
        config: &PhoneConfig,
        bind_ip: IpAddr,
        quirks: Quirks,
        instance_id: String,
        id_seed: u64,
    ) -> CoreSettings {
        let transport = if quirks.has(Quirk::UdpOnly) {
            Transport::Udp
        } else {
            Transport::from_setting(config.transport_protocol.unwrap_or(TransportProtocol::Udp))
        };
        CoreSettings {
            bind_ip,
            listen_port: transport.default_port(),
            user_agent: crate::user_agent(),
            timers: config.timers(),
            phone_timers: config.phone_timers(),
            line: config.line(1),
            outbound_proxy: config.outbound_proxy.destination(),
            backup_outbound_proxy: config.backup_outbound_proxy.destination(),
            transport,
            outbound_support: config.outbound_support == Some(true),
            instance_id,
            subscriptions: config.subscriptions(),
            quirks,
            id_seed,
        }
    }
}

/// What every part of the core shares: the settings, the identifier source and the outputs queued so far.
#[derive(Debug)]
pub(crate) struct Context {
    pub settings: CoreSettings,
    pub ids: ids::IdGenerator,
    outputs: VecDeque<Output>,
    /// Servers that asked to be sent nothing before a time (Retry-After, RFC 3261 §21.5.4).
    held_off: HashMap<Destination, Instant>,
    /// Whether RFC 5626 outbound is in use: the current registration's 2xx carried `Require: outbound`.
    pub outbound_in_use: bool,
}

impl Context {
    pub fn push(&mut self, output: Output) {
        self.outputs.push_back(output);
    }

    pub fn set_timer(&mut self, id: TimerId, at: Instant) {
        self.push(Output::SetTimer { id, at });
    }

    pub fn cancel_timer(&mut self, id: TimerId) {
        self.push(Output::CancelTimer { id });
    }

    pub fn quirk(&self, quirk: Quirk) -> bool {
        self.settings.quirks.has(quirk)
    }

    /// `server` asked to be sent nothing before `until` (Retry-After).
    pub fn hold_off(&mut self, server: &Destination, until: Instant) {
        let held = self.held_off.entry(server.clone()).or_insert(until);
        *held = (*held).max(until);
        tracing::info!("sending {} nothing before its Retry-After runs out", server.host);
    }

    /// The earliest time from `at` on that a request may go to `server` (none: any time).
    pub fn not_before(&self, server: Option<&Destination>, at: Instant) -> Instant {
        match server.and_then(|server| self.held_off.get(server)) {
            Some(until) => at.max(*until),
            None => at,
        }
    }

    /// Whether `server` asked to be sent nothing at `now`.
    pub fn is_held_off(&self, server: Option<&Destination>, now: Instant) -> bool {
        self.not_before(server, now) > now
    }
}

/// Why owners are asked to move to the active placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// A primary failed: move to the backup; the old place is down, so nothing is released there.
    Failover,
    /// A primary is back: move back, and release (un-REGISTER, un-SUBSCRIBE) what is held at the backup.
    Failback,
}

/// Who owns a request that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Registration,
    Subscription(usize),
    Call,
    /// A connection lost with no request on it (`failover-on-reset`): nothing to send again.
    Connection,
}

/// The whole phone as a state machine.
#[derive(Debug)]
pub struct PhoneCore {
    context: Context,
    sender: sender::RequestSender,
    failover: routing::Failover,
    registration: registration::Registration,
    subscriptions: subscription::Subscriptions,
    probes: failback::FailbackProbes,
    calls: call::Calls,
    keepalives: outbound::KeepAlives,
    /// Whether the subscriptions were started (after the first REGISTER's answer).
    subscriptions_started: bool,
}

impl PhoneCore {
    pub fn new(settings: CoreSettings) -> PhoneCore {
        let failover = routing::Failover::new(&settings);
        let registration = registration::Registration::new(&settings);
        let subscriptions = subscription::Subscriptions::new(&settings);
        PhoneCore {
            context: Context {
                ids: ids::IdGenerator::seeded(settings.id_seed),
                settings,
                outputs: VecDeque::new(),
                held_off: HashMap::new(),
                outbound_in_use: false,
            },
            sender: sender::RequestSender::default(),
            failover,
            registration,
            subscriptions,
            probes: failback::FailbackProbes::default(),
            calls: call::Calls::default(),
            keepalives: outbound::KeepAlives::default(),
            subscriptions_started: false,
        }
    }

    /// The phone has booted: register, then subscribe.
    pub fn start(&mut self, now: Instant) {
        tracing::info!(
            "failover scheme {:?}; transport {}; RFC 5626 outbound {}",
            self.failover.scheme(),
            self.context.settings.transport,
            if self.context.settings.outbound_support { "on" } else { "off" }
        );
        self.registration.start(now, &mut self.context, &mut self.sender, &self.failover);
        if *self.registration.state() == RegistrationState::Disabled {
            self.subscriptions.start(now, &mut self.context, &mut self.sender, &self.failover);
        }
    }

    /// A datagram arrived. Malformed ones are logged and dropped.
    pub fn on_datagram(&mut self, now: Instant, arrival: Arrival, bytes: &[u8]) {
        match sip::classify_datagram(bytes) {
            sip::DatagramKind::KeepAlive => tracing::trace!(?arrival, "keep-alive datagram ignored"),
            sip::DatagramKind::Stun => match (arrival, sip::StunMessage::decode(bytes)) {
                (Arrival::Flow(flow), Some(stun)) => self.on_stun(now, flow, &stun),
                _ => tracing::debug!(?arrival, "STUN datagram ignored"),
            },
            sip::DatagramKind::Sip => match Message::parse(bytes) {
                Ok(message) => self.on_message(now, arrival, message),
                Err(malformed) => {
                    tracing::warn!(?arrival, "malformed datagram of {} bytes ignored: {malformed}", bytes.len())
                }
            },
        }
    }

    /// A parsed SIP message arrived (a datagram, or a frame off a stream).
    pub fn on_message(&mut self, now: Instant, arrival: Arrival, message: Message) {
        if message.is_request() {
            self.on_request(now, arrival, &message);
            return;
        }
        if let Arrival::Flow(flow) = arrival
            && message.status() == Some(430)
            && self.context.quirk(Quirk::FailoverOn430)
        {
            tracing::info!("430 taken for a failed flow (quirk failover-on-430)");
            self.on_flow_failed(now, flow, TransportFailure::FlowFailed("430 Flow Failed".into()));
        }
        match self.sender.on_response(now, &mut self.context, message) {
            sender::ResponseOutcome::Event(event) => self.dispatch(now, vec![event]),
            sender::ResponseOutcome::StrayInviteSuccess(response) => {
                self.calls.on_stray_success(&mut self.context, &mut self.sender, &response)
            }
            sender::ResponseOutcome::Ignored => {}
        }
    }

    /// A CRLF pong arrived on a TCP/TLS flow (RFC 5626 §4.4.1).
    pub fn on_pong(&mut self, now: Instant, flow: FlowId) {
        if self.keepalives.on_pong(now, &mut self.context, flow) {
            self.registration.on_keepalive_answered(flow);
        }
    }

    /// A STUN message arrived on a UDP flow (RFC 5626 §4.4.2); a changed mapping fails the flow.
    pub fn on_stun(&mut self, now: Instant, flow: FlowId, stun: &sip::StunMessage) {
        match self.keepalives.on_stun(now, &mut self.context, flow, stun) {
            outbound::StunAnswer::Answered => self.registration.on_keepalive_answered(flow),
            outbound::StunAnswer::MappingChanged { was, now: mapped } => {
                let why = format!("the STUN mapping changed from {was} to {mapped}");
                tracing::warn!("flow {}: {why}", flow.0);
                self.on_flow_failed(now, flow, TransportFailure::FlowFailed(why));
            }
            outbound::StunAnswer::Ignored => {}
        }
    }

    /// The answer to an [`Output::Resolve`]: addresses in the order to try, or why there are none.
    pub fn on_resolved(&mut self, now: Instant, request: RequestId, answer: Result<Vec<SocketAddr>, String>) {
        let events = self.sender.on_resolved(now, &mut self.context, request, answer);
        self.dispatch(now, events);
    }

    /// An [`Output::OpenFlow`] succeeded; `local` is the flow's own address (the Via sent-by).
    pub fn on_flow_opened(&mut self, now: Instant, flow: FlowId, local: SocketAddr) {
        let events = self.sender.on_flow_opened(now, &mut self.context, flow, local);
        self.dispatch(now, events);
    }

    /// A flow could not be opened, or failed (ICMP unreachable on UDP, reset or close on TCP/TLS).
    pub fn on_transport_error(&mut self, now: Instant, flow: FlowId, failure: TransportFailure) {
        if self.context.quirk(Quirk::IgnoreIcmp)
            && matches!(failure, TransportFailure::Refused | TransportFailure::Closed)
        {
            tracing::debug!("flow {}: {failure} ignored (quirk ignore-icmp)", flow.0);
            return;
        }
        // Asked before the sender forgets the connection.
        let lost_hop = self.sender.stream_hop_of(flow);
        let was_keepalive_flow = self.keepalives.forget(&mut self.context, flow);
        let events = self.sender.on_transport_error(now, &mut self.context, flow, failure.clone());
        let idle = events.is_empty();
        self.dispatch(now, events);
        if was_keepalive_flow {
            self.registration_flow_failed(now, flow, failure);
            return;
        }
        // A connection reset or closed with no request on it is no failed server (it may still
        // listen): the next request connects again. `failover-on-reset` fails its primary over.
        let reset = idle && matches!(failure, TransportFailure::Refused | TransportFailure::Closed);
        if let Some(hop) = lost_hop.filter(|_| reset && self.context.quirk(Quirk::FailoverOnReset))
            && self.failover_on_reset(now, &hop, &failure)
        {
            return;
        }
        self.registration.on_connection_lost(now, &mut self.context, &mut self.sender, &self.failover, flow);
    }

    /// Timer `id` fired.
    pub fn on_timer(&mut self, now: Instant, id: TimerId) {
        match id {
            TimerId::Retransmit(_)
            | TimerId::TransactionTimeout(_)
            | TimerId::InviteCompleted(_)
            | TimerId::Cancel(_) => {
                let events = self.sender.on_timer(now, &mut self.context, id);
                self.dispatch(now, events);
            }
            TimerId::RegistrationRefresh(_) | TimerId::RegistrationRetry(_) | TimerId::KeptBindingRefresh(_) => {
                self.registration.on_timer(now, &mut self.context, &mut self.sender, &self.failover, id)
            }
            TimerId::SubscriptionRefresh(_) | TimerId::SubscriptionRetry(_) => {
                self.subscriptions.on_timer(now, &mut self.context, &mut self.sender, &self.failover, id)
            }
            TimerId::FailbackProbe(dimension) => {
                self.probes.on_timer(now, &mut self.context, &mut self.sender, &self.failover, dimension)
            }
            TimerId::CallHangup(call) => self.calls.on_hangup_timer(now, &mut self.context, &mut self.sender, call),
            TimerId::KeepAlive(flow) => self.keepalives.on_keepalive_timer(now, &mut self.context, flow),
            TimerId::PongTimeout(flow) => {
                if self.keepalives.on_pong_timeout(now, &mut self.context, flow) {
                    self.on_flow_failed(now, flow, TransportFailure::FlowFailed("no answer to a keep-alive".into()));
                }
            }
        }
    }

    /// A command pushed over HTTP. `Reset` is the shell's to carry out (it re-creates the core).
    pub fn on_push(&mut self, now: Instant, command: PushCommand) {
        match command {
            PushCommand::Dial(number) => {
                self.calls.dial(now, &mut self.context, &mut self.sender, &self.failover, &number)
            }
            PushCommand::ClearLocal => tracing::info!("Command: ClearLocal: refphone keeps no local settings"),
            PushCommand::Reset => tracing::warn!("Command: Reset reached the core; the shell restarts the stack"),
        }
    }

    /// Closes every flow before the core is dropped (a `Command: Reset`).
    pub fn shut_down(&mut self) {
        self.sender.reset(&mut self.context);
    }

    /// The next action for the shell, in the order the core decided them.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.context.outputs.pop_front()
    }

    /// Where line 1's registration stands.
    pub fn registration_state(&self) -> &RegistrationState {
        self.registration.state()
    }

    /// Where each subscription stands, in cfg order.
    pub fn subscription_states(&self) -> Vec<SubscriptionState> {
        self.subscriptions.states()
    }

    /// The placement requests go to now.
    pub fn active_placement(&self) -> Placement {
        self.failover.active()
    }

    /// How the configured servers fail over.
    pub fn failover_scheme(&self) -> FailoverScheme {
        self.failover.scheme()
    }

    fn on_request(&mut self, now: Instant, arrival: Arrival, request: &Message) {
        let Some(method) = request.method().cloned() else { return };
        if let Err(error) = incoming::check_answerable(request) {
            tracing::warn!("{method} request dropped: {error}");
            return;
        }
        let status = match method {
            Method::Ack => {
                return;
            }
            Method::Options => 200,
            Method::Notify => {
                self.subscriptions.on_notify(now, &mut self.context, &mut self.sender, &self.failover, request)
            }
            Method::Bye => self.calls.on_bye(&mut self.context, &mut self.sender, request),
            _ => 501,
        };
        let reply = incoming::reply(request, status, &mut self.context);
        self.context.push(Output::Reply { to: arrival, message: reply });
    }

    /// Hands request outcomes to their owners, and failures that mean a server is down to the failover state machine.
    fn dispatch(&mut self, now: Instant, events: Vec<sender::RequestEvent>) {
        for event in events {
            let request = event.request();
            let (owner, down) = if self.registration.owns(request) {
                let down =
                    self.registration.on_request_event(now, &mut self.context, &mut self.sender, &self.failover, event);
                if let Some(request) = self.registration.take_keepalive_request()
                    && let Some((_, transport)) = self.sender.flow_remote(request.flow)
                {
                    self.keepalives.start(now, &mut self.context, request, transport);
                }
                // Subscriptions start once the first REGISTER has its answer, whatever it is.
                if !self.subscriptions_started
                    && !matches!(self.registration.state(), RegistrationState::Registering { .. })
                {
                    self.subscriptions_started = true;
                    self.subscriptions.start(now, &mut self.context, &mut self.sender, &self.failover);
                }
                (Owner::Registration, down)
            } else if let Some(index) = self.subscriptions.owner_of(request) {
                let down = self.subscriptions.on_request_event(
                    now,
                    &mut self.context,
                    &mut self.sender,
                    &self.failover,
                    index,
                    event,
                );
                (Owner::Subscription(index), down)
            } else if self.probes.owns(request) {
                if let Some((dimension, alive)) =
                    self.probes.on_request_event(now, &mut self.context, &self.failover, event)
                    && alive
                {
                    self.on_primary_back(now, dimension);
                }
                continue;
            } else if self.calls.owns(request) {
                let down = self.calls.on_request_event(now, &mut self.context, &mut self.sender, event);
                (Owner::Call, down)
            } else {
                tracing::debug!("outcome of {request} has no owner any more");
                continue;
            };
            if let Some(down) = down {
                self.on_server_down(now, owner, down);
            }
        }
    }

    /// A request of `owner` found its server down: ask the failover state machine, then move.
    fn on_server_down(&mut self, now: Instant, owner: Owner, down: ServerDown) {
        if let Some(wait) = down.retry_after.filter(|_| !self.context.quirk(Quirk::IgnoreRetryAfter)) {
            let element = self.failover.element_of(down.target, down.used, down.hop_failed);
            if let Some(server) = self.failover.server_of(element, down.used).cloned() {
                self.context.hold_off(&server, now + wait);
            }
        }
        let verdict = self.failover.on_server_down(now, down.target, down.used, down.hop_failed);
        match verdict {
            routing::Verdict::FailedOver(dimension) => {
                let active = self.failover.active();
                tracing::warn!("primary {dimension} failed ({}); moving to the backup: {active}", down.cause);
                // With outbound, the backup's flow carries the registration meanwhile: RFC 5626's
                // base-time for "some flows still work" applies to re-establishing the primary's.
                self.probes.start(now, &mut self.context, &self.failover, dimension, true);
                self.resume(now, owner, down.timed_out);
                self.reconcile(now, Why::Failover);
            }
            routing::Verdict::AlreadyMoved => self.resume(now, owner, down.timed_out),
            routing::Verdict::BackupFailedToo(dimension) => {
                tracing::warn!(
                    "backup {dimension} failed too ({}); the primary is tried first again after the retry timer",
                    down.cause
                );
                self.probes.stop(&mut self.context, dimension);
                if owner == Owner::Registration && self.context.quirk(Quirk::RetryStorm) {
                    self.registration.retry_after_t1(now, &mut self.context, &self.failover);
                } else {
                    self.retry_later(now, owner, down.timed_out);
                }
            }
            routing::Verdict::NoBackup(dimension) => {
                tracing::warn!("{dimension} failed ({}) and there is no backup to move to; retrying later", down.cause);
                self.retry_later(now, owner, down.timed_out);
            }
        }
    }

    /// The owner sends again at once if its place moved since its request left, else after its retry timer.
    fn resume(&mut self, now: Instant, owner: Owner, timed_out: bool) {
        match owner {
            Owner::Registration => {
                self.registration.resume(now, &mut self.context, &mut self.sender, &self.failover, timed_out)
            }
            Owner::Subscription(index) => {
                self.subscriptions.resume(now, &mut self.context, &mut self.sender, &self.failover, index, timed_out)
            }
            Owner::Call | Owner::Connection => {}
        }
    }

    fn retry_later(&mut self, now: Instant, owner: Owner, timed_out: bool) {
        match owner {
            Owner::Registration => self.registration.retry_later(now, &mut self.context, &self.failover, timed_out),
            Owner::Subscription(index) => {
                self.subscriptions.retry_later(now, &mut self.context, &self.failover, index, timed_out)
            }
            Owner::Call | Owner::Connection => {}
        }
    }

    /// A probe found the failed primary of `dimension` answering again: move back.
    fn on_primary_back(&mut self, now: Instant, dimension: Dimension) {
        if self.failover.on_primary_back(dimension) {
            tracing::info!("primary {dimension} answers again; moving back: {}", self.failover.active());
            self.reconcile(now, Why::Failback);
        }
    }

    /// Every owner moves to the active placement.
    fn reconcile(&mut self, now: Instant, why: Why) {
        self.registration.reconcile(now, &mut self.context, &mut self.sender, &self.failover, why);
        self.subscriptions.reconcile(now, &mut self.context, &mut self.sender, &self.failover, why);
    }

    /// A flow failed by RFC 5626's rules (no pong): close it; what ran on it fails over.
    fn on_flow_failed(&mut self, now: Instant, flow: FlowId, failure: TransportFailure) {
        let was_keepalive_flow = self.keepalives.forget(&mut self.context, flow);
        let events = self.sender.close_flow(now, &mut self.context, flow, failure.clone());
        self.dispatch(now, events);
        if was_keepalive_flow {
            self.registration_flow_failed(now, flow, failure);
        }
    }

    /// `failover-on-reset`: the connection to `next_hop` was lost with no request on it; every
    /// active primary reached through it counts as failed. Whether any did.
    fn failover_on_reset(&mut self, now: Instant, next_hop: &Destination, failure: &TransportFailure) -> bool {
        let used = self.failover.active();
        let targets = self.failover.primaries_reached_through(next_hop);
        for &target in &targets {
            tracing::info!("connection to {next_hop} lost: its primary taken for failed (quirk failover-on-reset)");
            let down = ServerDown::connection_lost(target, used, &next_hop.to_string(), failure);
            self.on_server_down(now, Owner::Connection, down);
        }
        !targets.is_empty()
    }

    /// The flow the registration keeps alive failed with no request on it: the registration's
    /// server counts as down, so the failover state machine decides where to register now.
    fn registration_flow_failed(&mut self, now: Instant, flow: FlowId, failure: TransportFailure) {
        if let Some(down) = self.registration.on_flow_failed(flow, &failure) {
            self.on_server_down(now, Owner::Registration, down);
        }
    }
}
