//! The mock SIP elements: one socket loop per element and transport, faults applied on the wire, behaviours (registrar, proxy) behind it.

mod proxy;
mod registrar;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use sip::{DatagramKind, HeaderName, Message, Method, StunClass, StunMessage};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;

pub use proxy::Proxy;
pub use registrar::{DigestAuth, Registrar, RegistrarConfig};

use crate::faults::Fault;
use crate::topology::{Element, Topology};
use crate::trace::{Direction, Fate, Payload, Record, Trace, Transport};

/// What an element's behaviour wants sent.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A response, sent back where the request came from (RFC 3581 symmetric response).
    Reply(Message),
    /// A request of the element's own (a NOTIFY), sent to `to`.
    Request { to: SocketAddr, message: Message },
}

/// The part of an element that decides what to answer; the socket loop around it handles faults.
pub(crate) trait Behaviour: Send {
    fn on_request(&mut self, request: &Message, source: SocketAddr, now: Instant) -> Vec<Outgoing>;
}

/// Everything an element's socket loop shares with the lab that controls it.
#[derive(Clone)]
pub(crate) struct ElementContext {
    pub element: Element,
    pub topology: Arc<Topology>,
    pub trace: Trace,
    pub fault: watch::Receiver<Option<Fault>>,
    pub behaviour: Arc<Mutex<dyn Behaviour>>,
}

/// A response every element gives to OPTIONS (RFC 3261 §11.2), whatever its behaviour.
fn options_reply(request: &Message, element: Element) -> Message {
    let mut response = Message::response_to(request, 200, Some(&format!("{}-opt", element.name())));
    response.push_header(HeaderName::Allow, "INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, SUBSCRIBE, NOTIFY");
    response.push_header(HeaderName::Accept, "application/sdp");
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

/// Runs one element's UDP port until the task is aborted. `refuse` closes the socket, so the
/// kernel answers ICMP port unreachable; `restore` binds it again.
pub(crate) async fn run_udp(ctx: ElementContext, socket: UdpSocket) {
    let addr = ctx.topology.sip_addr(ctx.element);
    let mut socket = Some(socket);
    let mut fault_rx = ctx.fault.clone();
    let mut buf = vec![0u8; 65_536];
    loop {
        let fault = *fault_rx.borrow_and_update();
        if fault == Some(Fault::Refuse) {
            if socket.take().is_some() {
                tracing::info!(element = %ctx.element, "udp port closed (refuse)");
            }
            if fault_rx.changed().await.is_err() {
                return;
            }
            continue;
        }
        let sock = match &socket {
            Some(s) => s,
            None => match crate::net::bind_udp(addr) {
                Ok(s) => {
                    tracing::info!(element = %ctx.element, "udp port open again");
                    socket.insert(s)
                }
                Err(e) => {
                    tracing::error!(element = %ctx.element, "cannot rebind {addr}: {e}");
                    if fault_rx.changed().await.is_err() {
                        return;
                    }
                    continue;
                }
            },
        };
        tokio::select! {
            received = sock.recv_from(&mut buf) => match received {
                Ok((n, source)) => handle_datagram(&ctx, sock, fault, &buf[..n], source).await,
                // ICMP errors from earlier sends surface here on Linux; they are not ours to act on.
                Err(e) => tracing::debug!(element = %ctx.element, "udp recv: {e}"),
            },
            changed = fault_rx.changed() => if changed.is_err() { return },
        }
    }
}

async fn handle_datagram(ctx: &ElementContext, socket: &UdpSocket, fault: Option<Fault>, bytes: &[u8], source: SocketAddr) {
    let local = ctx.topology.sip_addr(ctx.element);
    let record = |direction, remote, payload, fate| Record {
        element: ctx.element,
        direction,
        transport: Transport::Udp,
        local,
        remote,
        payload,
        fate,
    };
    let fate = match fault {
        Some(Fault::Silent) => Fate::Dropped("silent".into()),
        _ => Fate::Delivered,
    };
    match sip::classify_datagram(bytes) {
        DatagramKind::KeepAlive => {
            ctx.trace.record(record(Direction::Received, source, Payload::KeepAlive, fate));
        }
        DatagramKind::Stun => {
            let Some(request) = StunMessage::decode(bytes) else { return };
            let is_binding = request.class == StunClass::BindingRequest;
            ctx.trace.record(record(Direction::Received, source, Payload::Stun(request.clone()), fate.clone()));
            if fate == Fate::Delivered && is_binding {
                let answer = StunMessage::binding_success(&request, source);
                send(socket, &answer.encode(), source, ctx).await;
                ctx.trace.record(record(Direction::Sent, source, Payload::Stun(answer), Fate::Delivered));
            }
        }
        DatagramKind::Sip => {
            let message = match Message::parse(bytes) {
                Ok(m) => m,
                Err(malformed) => {
                    tracing::warn!(element = %ctx.element, "malformed datagram from {source}: {malformed}");
                    ctx.trace.record(record(Direction::Received, source, Payload::Malformed(malformed), fate));
                    return;
                }
            };
            ctx.trace.record(record(Direction::Received, source, Payload::Sip(Box::new(message.clone())), fate.clone()));
            if fate != Fate::Delivered || !message.is_request() {
                return;
            }
            let outgoing = answer(ctx, fault, &message, source);
            for out in outgoing {
                let (to, message) = match out {
                    Outgoing::Reply(m) => (source, m),
                    Outgoing::Request { to, message } => (to, message),
                };
                send(socket, &message.to_bytes(), to, ctx).await;
                ctx.trace.record(record(Direction::Sent, to, Payload::Sip(Box::new(message)), Fate::Delivered));
            }
        }
    }
}

fn answer(ctx: &ElementContext, fault: Option<Fault>, request: &Message, source: SocketAddr) -> Vec<Outgoing> {
    if request.method() == Some(&Method::Ack) {
        return Vec::new();
    }
    if let Some(Fault::Reject { code, retry_after }) = fault {
        return vec![Outgoing::Reply(rejection(request, code, retry_after, ctx.element))];
    }
    if request.method() == Some(&Method::Options) {
        return vec![Outgoing::Reply(options_reply(request, ctx.element))];
    }
    let mut behaviour = ctx.behaviour.lock().unwrap_or_else(|e| e.into_inner());
    behaviour.on_request(request, source, Instant::now())
}

async fn send(socket: &UdpSocket, bytes: &[u8], to: SocketAddr, ctx: &ElementContext) {
    if let Err(e) = socket.send_to(bytes, to).await {
        tracing::debug!(element = %ctx.element, "send to {to}: {e}");
    }
}

/// A behaviour for elements that only answer OPTIONS (outbound proxies, until they forward).
pub(crate) struct NotImplemented;

impl Behaviour for NotImplemented {
    fn on_request(&mut self, request: &Message, _source: SocketAddr, _now: Instant) -> Vec<Outgoing> {
        vec![Outgoing::Reply(Message::response_to(request, 501, Some("ni")))]
    }
}
