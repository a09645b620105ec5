//! The I/O shell: runs the sans-IO core on tokio UDP sockets, the DNS resolver and timers, until told to stop.

pub mod dns;
pub mod udp;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sip::Message;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::core::{Arrival, CoreSettings, FlowId, Lookup, Output, PhoneCore, RequestId, TimerId, TransportFailure};
use crate::error::PhoneError;

/// The largest datagram the phone reads.
const MAX_DATAGRAM: usize = 65_535;
/// A DNS query never waits less than this, however small the transaction timer.
const MIN_DNS_TIMEOUT: Duration = Duration::from_millis(100);

/// What the shell's background tasks report to the loop that owns the core.
#[derive(Debug)]
enum ShellEvent {
    Datagram { arrival: Arrival, bytes: Vec<u8> },
    FlowFailed { flow: FlowId, failure: TransportFailure },
    Resolved { request: RequestId, answer: Result<Vec<SocketAddr>, String> },
}

/// Where the shell finds the lab's DNS and listens for the XML push.
#[derive(Debug, Clone, Default)]
pub struct ShellOptions {
    pub dns: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
}

/// Runs the phone until `shutdown` completes. Fails only when the listening socket or the
/// resolver cannot be set up; network trouble later is the core's to handle.
pub async fn run(settings: CoreSettings, options: ShellOptions, shutdown: impl Future<Output = ()>) -> Result<(), PhoneError> {
    let dns_server = options.dns;
    let resolver = match dns_server {
        Some(server) => {
            let timeout = settings.timers.transaction_timer.max(MIN_DNS_TIMEOUT);
            let ignore_ttl = settings.quirks.has(crate::quirks::Quirk::IgnoreDnsTtl);
            Some(dns::SipResolver::new(server, settings.bind_ip, timeout, ignore_ttl)?)
        }
        None => None,
    };
    let listener = Arc::new(udp::listen(settings.bind_ip, settings.listen_port)?);
    tracing::info!(
        "refphone listening on UDP {}; DNS {}",
        listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        dns_server.map(|d| d.to_string()).unwrap_or_else(|| "none".into())
    );
    let (events, mut incoming) = mpsc::unbounded_channel();
    let mut shell = Shell {
        bind_ip: settings.bind_ip,
        core: PhoneCore::new(settings),
        listener: listener.clone(),
        flows: HashMap::new(),
        timers: HashMap::new(),
        resolver,
        events: events.clone(),
        tasks: JoinSet::new(),
    };
    shell.tasks.spawn(receive(listener, None, events));

    shell.core.start(Instant::now());
    shell.carry_out_outputs().await;
    tokio::pin!(shutdown);
    loop {
        let next_deadline = shell.timers.values().min().copied();
        let sleep = async {
            match next_deadline {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut shutdown => break,
            Some(event) = incoming.recv() => shell.on_event(event),
            () = sleep => shell.fire_due_timers(),
        }
        shell.carry_out_outputs().await;
    }
    tracing::info!("refphone stopping");
    Ok(())
}

/// The core and every resource it acts through.
struct Shell {
    core: PhoneCore,
    bind_ip: std::net::IpAddr,
    listener: Arc<UdpSocket>,
    flows: HashMap<FlowId, Arc<UdpSocket>>,
    timers: HashMap<TimerId, Instant>,
    resolver: Option<dns::SipResolver>,
    events: mpsc::UnboundedSender<ShellEvent>,
    /// Receivers and lookups; aborted when the shell is dropped.
    tasks: JoinSet<()>,
}

impl Shell {
    fn on_event(&mut self, event: ShellEvent) {
        let now = Instant::now();
        match event {
            ShellEvent::Datagram { arrival, bytes } => {
                tracing::trace!(?arrival, "received {} bytes", bytes.len());
                self.core.on_datagram(now, arrival, &bytes);
            }
            ShellEvent::FlowFailed { flow, failure } => self.core.on_transport_error(now, flow, failure),
            ShellEvent::Resolved { request, answer } => self.core.on_resolved(now, request, answer),
        }
    }

    fn fire_due_timers(&mut self) {
        let now = Instant::now();
        let mut due: Vec<(Instant, TimerId)> =
            self.timers.iter().filter(|(_, at)| **at <= now).map(|(id, at)| (*at, *id)).collect();
        due.sort();
        for (at, id) in due {
            // A timer the core replaced or cancelled while an earlier one fired does not fire.
            if self.timers.get(&id) == Some(&at) {
                self.timers.remove(&id);
                self.core.on_timer(now.max(at), id);
            }
        }
    }

    /// Carries out everything the core asked for, including what it asks in reaction.
    async fn carry_out_outputs(&mut self) {
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::SetTimer { id, at } => {
                    self.timers.insert(id, at);
                }
                Output::CancelTimer { id } => {
                    self.timers.remove(&id);
                }
                Output::Resolve { request, lookup } => self.resolve(request, lookup),
                Output::OpenFlow { flow, remote, transport, .. } => {
                    if transport == crate::core::Transport::Udp {
                        self.open_flow(flow, remote)
                    } else {
                        let failure = TransportFailure::Other(format!("{transport} flows are not implemented yet"));
                        self.core.on_transport_error(Instant::now(), flow, failure);
                    }
                }
                Output::Send { flow, message } => self.send(flow, &message).await,
                Output::SendRaw { flow, bytes } => {
                    if let Some(socket) = self.flows.get(&flow) {
                        let _ = socket.send(&bytes).await;
                    }
                }
                Output::CloseFlow { flow } => {
                    self.flows.remove(&flow);
                }
                Output::Reply { to, message } => self.reply(to, &message).await,
            }
        }
    }

    fn resolve(&mut self, request: RequestId, lookup: Lookup) {
        let Some(resolver) = self.resolver.clone() else {
            let answer = Err("no DNS server given (--dns)".to_owned());
            self.core.on_resolved(Instant::now(), request, answer);
            return;
        };
        let events = self.events.clone();
        self.tasks.spawn(async move {
            let answer = resolver.resolve(&lookup).await;
            if let Err(error) = &answer {
                tracing::warn!("DNS lookup failed: {error}");
            }
            let _ = events.send(ShellEvent::Resolved { request, answer });
        });
    }

    fn open_flow(&mut self, flow: FlowId, remote: SocketAddr) {
        let now = Instant::now();
        let opened = udp::connect_flow(self.bind_ip, remote).and_then(|socket| Ok((socket.local_addr()?, socket)));
        match opened {
            Ok((local, socket)) => {
                let socket = Arc::new(socket);
                self.flows.insert(flow, socket.clone());
                self.tasks.spawn(receive(socket, Some(flow), self.events.clone()));
                self.core.on_flow_opened(now, flow, local);
            }
            Err(error) => {
                tracing::warn!("cannot open a UDP flow from {} to {remote}: {error}", self.bind_ip);
                self.core.on_transport_error(now, flow, udp::transport_failure(&error));
            }
        }
    }

    async fn send(&mut self, flow: FlowId, message: &Message) {
        let Some(socket) = self.flows.get(&flow) else {
            tracing::warn!("send on unknown flow {} dropped", flow.0);
            return;
        };
        tracing::debug!("sending on flow {} to {:?}: {}", flow.0, socket.peer_addr().ok(), first_line(message));
        if let Err(error) = socket.send(&message.to_bytes()).await {
            tracing::debug!("send on flow {} failed: {error}", flow.0);
            self.core.on_transport_error(Instant::now(), flow, udp::transport_failure(&error));
        }
    }

    async fn reply(&mut self, to: Arrival, message: &Message) {
        let bytes = message.to_bytes();
        let result = match to {
            Arrival::Listener { remote } => self.listener.send_to(&bytes, remote).await.map(|_| ()),
            Arrival::Flow(flow) => match self.flows.get(&flow) {
                Some(socket) => socket.send(&bytes).await.map(|_| ()),
                None => Ok(()),
            },
            Arrival::Inbound { .. } => Ok(()),
        };
        if let Err(error) = result {
            tracing::debug!("reply {} to {to:?} not sent: {error}", first_line(message));
        }
    }
}

/// Reads datagrams off `socket` into the loop; on a flow, reports errors (ECONNREFUSED from ICMP) as flow failures.
async fn receive(socket: Arc<UdpSocket>, flow: Option<FlowId>, events: mpsc::UnboundedSender<ShellEvent>) {
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        let event = match (flow, socket.recv_from(&mut buffer).await) {
            (Some(flow), Ok((length, _))) => {
                ShellEvent::Datagram { arrival: Arrival::Flow(flow), bytes: buffer[..length].to_vec() }
            }
            (None, Ok((length, remote))) => {
                ShellEvent::Datagram { arrival: Arrival::Listener { remote }, bytes: buffer[..length].to_vec() }
            }
            (Some(flow), Err(error)) => {
                tracing::debug!("flow {} receive error: {error}", flow.0);
                let failure = udp::transport_failure(&error);
                if !matches!(failure, TransportFailure::Refused) {
                    // Not an ICMP report: do not spin on a socket that keeps failing.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                ShellEvent::FlowFailed { flow, failure }
            }
            (None, Err(error)) => {
                tracing::debug!("listening socket receive error: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if events.send(event).is_err() {
            return;
        }
    }
}

fn first_line(message: &Message) -> String {
    match &message.start {
        sip::StartLine::Request { method, uri } => {
            let cseq = message.cseq().map(|c| c.to_string()).unwrap_or_default();
            format!("{method} {uri} ({cseq})")
        }
        sip::StartLine::Response { status, reason } => format!("{status} {reason}"),
    }
}
