//! The phone's sans-IO core: every decision the phone takes, with time and network events as inputs and wanted actions as outputs.
//!
//! The I/O shell ([`crate::io`]) feeds the core what happened (`start`, a datagram, a DNS answer,
//! a flow opened or failed, a timer) and carries out what it asks, polled with
//! [`PhoneCore::poll_output`]: look a name up, open a flow, send a message, set a timer. The core
//! never reads a clock, a socket or a resolver, so every transition is unit-tested without them.
//!
//! Inside, the [`sender`] turns "send this request to that configured server" into resolution,
//! flows and client transactions, and reports each request's outcome (a final response or a
//! failure) to its owner; the [`registration`] of a line owns its REGISTER requests and decides
//! where to register next. Subscriptions, failback probes and outbound keep-alives will be further
//! owners of requests beside it.

mod ids;
mod incoming;
pub mod registration;
pub mod sender;
pub mod transaction;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use sip::Message;

use crate::config::{LineConfig, SipTimers};
use crate::quirks::Quirks;

pub use registration::{RegistrarRole, RegistrationState};
pub use sender::FailureCause;

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

/// A timer the core asked for. Setting a timer with the same id again replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerId {
    /// Timer E of a request's current client transaction.
    Retransmit(RequestId),
    /// Timer F (the vendor's `sip transaction timer`) of a request's current client transaction.
    TransactionTimeout(RequestId),
    /// Refresh the registration of a line.
    RegistrationRefresh(u8),
    /// Try again to register a line after a failure.
    RegistrationRetry(u8),
}

/// What to look up in the DNS for a configured server (RFC 3263 §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A/AAAA records of `host`; every address gets `port`.
    Address { host: String, port: u16 },
    /// SRV records of `service` (`_sip._udp.<host>`), each target then looked up; `host` (port
    /// 5060) when there are none.
    Service { service: String, host: String },
}

/// Where a datagram came in, and so where a reply goes back out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// On the listening socket (`--bind`:5060), from `remote`.
    Listener { remote: SocketAddr },
    /// On one of the phone's flows.
    Flow(FlowId),
}

/// How a flow failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportFailure {
    /// ICMP port unreachable (ECONNREFUSED on a connected UDP socket), or a TCP reset.
    Refused,
    /// Any other error opening or using the flow.
    Other(String),
}

impl fmt::Display for TransportFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportFailure::Refused => f.write_str("connection refused"),
            TransportFailure::Other(detail) => f.write_str(detail),
        }
    }
}

/// An action the core wants the shell to carry out.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Look `lookup` up and answer with [`PhoneCore::on_resolved`].
    Resolve { request: RequestId, lookup: Lookup },
    /// Open a flow to `remote` from `--bind` (UDP: bind port 0 and connect) and answer with
    /// [`PhoneCore::on_flow_opened`] or [`PhoneCore::on_transport_error`].
    OpenFlow { flow: FlowId, remote: SocketAddr },
    /// Send `message` on an open flow.
    Send { flow: FlowId, message: Message },
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
    /// The port of the listening SIP socket, named in Contact.
    pub listen_port: u16,
    pub user_agent: String,
    pub timers: SipTimers,
    pub quirks: Quirks,
    /// Line 1, the only line implemented yet.
    pub line: LineConfig,
    /// Seeds branches, tags and Call-IDs; fixed in tests, random in a run.
    pub id_seed: u64,
}

/// What every part of the core shares: the settings, the identifier source and the outputs queued so far.
#[derive(Debug)]
pub(crate) struct Context {
    pub settings: CoreSettings,
    pub ids: ids::IdGenerator,
    outputs: VecDeque<Output>,
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
}

/// The whole phone as a state machine.
#[derive(Debug)]
pub struct PhoneCore {
    context: Context,
    sender: sender::RequestSender,
    registration: registration::Registration,
}

impl PhoneCore {
    pub fn new(settings: CoreSettings) -> PhoneCore {
        let registration = registration::Registration::new(&settings);
        PhoneCore {
            context: Context { ids: ids::IdGenerator::seeded(settings.id_seed), settings, outputs: VecDeque::new() },
            sender: sender::RequestSender::default(),
            registration,
        }
    }

    /// The phone has booted: register.
    pub fn start(&mut self, now: Instant) {
        self.registration.start(now, &mut self.context, &mut self.sender);
    }

    /// A datagram arrived. Malformed ones are logged and dropped.
    pub fn on_datagram(&mut self, now: Instant, arrival: Arrival, bytes: &[u8]) {
        match sip::classify_datagram(bytes) {
            sip::DatagramKind::KeepAlive => tracing::trace!(?arrival, "keep-alive datagram ignored"),
            sip::DatagramKind::Stun => tracing::debug!(?arrival, "STUN datagram ignored"),
            sip::DatagramKind::Sip => match Message::parse(bytes) {
                Ok(message) => self.on_message(now, arrival, message),
                Err(malformed) => {
                    tracing::warn!(?arrival, "malformed datagram of {} bytes ignored: {malformed}", bytes.len())
                }
            },
        }
    }

    /// A parsed SIP message arrived.
    pub fn on_message(&mut self, now: Instant, arrival: Arrival, message: Message) {
        if message.is_request() {
            if let Some(reply) = incoming::answer(&message, &mut self.context) {
                self.context.push(Output::Reply { to: arrival, message: reply });
            }
            return;
        }
        if let Some(event) = self.sender.on_response(now, &mut self.context, message) {
            self.dispatch(now, vec![event]);
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

    /// A flow could not be opened, or reported an error (ICMP unreachable on UDP).
    pub fn on_transport_error(&mut self, now: Instant, flow: FlowId, failure: TransportFailure) {
        let events = self.sender.on_transport_error(now, &mut self.context, flow, failure);
        self.dispatch(now, events);
    }

    /// Timer `id` fired.
    pub fn on_timer(&mut self, now: Instant, id: TimerId) {
        match id {
            TimerId::Retransmit(_) | TimerId::TransactionTimeout(_) => {
                let events = self.sender.on_timer(now, &mut self.context, id);
                self.dispatch(now, events);
            }
            TimerId::RegistrationRefresh(_) | TimerId::RegistrationRetry(_) => {
                self.registration.on_timer(now, &mut self.context, &mut self.sender, id)
            }
        }
    }

    /// The next action for the shell, in the order the core decided them.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.context.outputs.pop_front()
    }

    /// Where line 1's registration stands.
    pub fn registration_state(&self) -> &RegistrationState {
        self.registration.state()
    }

    /// Hands finished requests to their owners.
    fn dispatch(&mut self, now: Instant, events: Vec<sender::RequestEvent>) {
        for event in events {
            if self.registration.owns(event.request()) {
                self.registration.on_request_event(now, &mut self.context, &mut self.sender, event);
            } else {
                tracing::debug!("outcome of {} has no owner any more", event.request());
            }
        }
    }
}
