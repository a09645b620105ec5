//! The I/O shell: runs the sans-IO core on tokio sockets (UDP, TCP, TLS), the DNS resolver, timers and the XML push listener, until told to stop.
//!
//! One loop owns the core. Background tasks (a receiver per UDP flow, a task per TCP/TLS
//! connection, DNS lookups, the HTTP listener) report [`ShellEvent`]s to it. `Command: Reset`
//! replaces the core with a fresh one (same settings, same `+sip.instance`); events of the old
//! stack's tasks carry an older epoch and are dropped.

pub mod dns;
pub mod http;
pub mod stream;
pub mod tls;
pub mod udp;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sip::{Frame, Message};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use tokio_rustls::TlsConnector;

use crate::core::{
    Arrival, CoreSettings, FlowId, Lookup, Output, PhoneCore, PushCommand, RequestId, TimerId, Transport,
    TransportFailure,
};
use crate::error::PhoneError;

/// The largest datagram the phone reads.
const MAX_DATAGRAM: usize = 65_535;
/// A DNS query or a connection attempt never waits less than this, however small the transaction timer.
const MIN_NETWORK_TIMEOUT: Duration = Duration::from_millis(100);

/// What the shell's background tasks report to the loop that owns the core.
#[derive(Debug)]
pub enum ShellEvent {
    Datagram {
        epoch: u64,
        arrival: Arrival,
        bytes: Vec<u8>,
    },
    /// A message or pong framed off a TCP/TLS connection.
    Frame {
        epoch: u64,
        arrival: Arrival,
        frame: Frame,
    },
    /// A flow opened; a stream flow brings the channel its bytes are written through.
    FlowOpened {
        epoch: u64,
        flow: FlowId,
        local: SocketAddr,
        writer: Option<stream::Writer>,
    },
    FlowFailed {
        epoch: u64,
        flow: FlowId,
        failure: TransportFailure,
    },
    Resolved {
        epoch: u64,
        request: RequestId,
        answer: Result<Vec<SocketAddr>, String>,
    },
    InboundOpened {
        epoch: u64,
        connection: u64,
        writer: stream::Writer,
    },
    InboundClosed {
        epoch: u64,
        connection: u64,
    },
    Push(PushCommand),
}

/// Where the shell finds the lab's DNS, listens for the XML push, and which CA it trusts.
#[derive(Debug, Clone, Default)]
pub struct ShellOptions {
    pub dns: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub ca: Option<PathBuf>,
    /// `xml application post list`: who may push; `None`: anyone.
    pub push_allowed: Option<Vec<IpAddr>>,
}

/// A flow's socket: a connected UDP socket, or the writer of a TCP/TLS connection's task.
enum FlowHandle {
    Udp(Arc<UdpSocket>),
    Stream(stream::Writer),
}

/// Runs the phone until `shutdown` completes. Fails only when a listening socket, the TLS trust
/// anchors or the resolver cannot be set up; network trouble later is the core's to handle.
pub async fn run(
    settings: CoreSettings,
    options: ShellOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), PhoneError> {
    let network_timeout = settings.timers.transaction_timer.max(MIN_NETWORK_TIMEOUT);
    let resolver = match options.dns {
        Some(server) => Some(dns::SipResolver::new(server, settings.bind_ip, network_timeout, &settings.quirks)?),
        None => None,
    };
    let tls = match (&options.ca, settings.transport) {
        (Some(ca), _) => Some(tls::connector(ca)?),
        (None, _) => None,
    };
    let listener = Arc::new(udp::listen(settings.bind_ip, settings.listen_port)?);
    let (events, mut incoming) = mpsc::unbounded_channel();
    let mut tasks = JoinSet::new();
    tasks.spawn(receive(listener.clone(), None, 0, events.clone()));
    if settings.transport == Transport::Tcp {
        let local = SocketAddr::new(settings.bind_ip, settings.listen_port);
        let tcp = tokio::net::TcpListener::bind(local)
            .await
            .map_err(|cause| PhoneError::Socket { context: format!("listening on TCP {local}"), cause })?;
        tasks.spawn(stream::accept_inbound(tcp, 0, events.clone()));
    }
    if let Some(address) = options.http {
        let http = http::listen(address).await?;
        tracing::info!("XML push on http://{address}/");
        tasks.spawn(http::serve(http, options.push_allowed.clone(), events.clone()));
    }
    tracing::info!(
        "refphone listening on UDP {}; transport {}; DNS {}",
        listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        settings.transport,
        options.dns.map(|d| d.to_string()).unwrap_or_else(|| "none".into())
    );
    let mut shell = Shell {
        core: PhoneCore::new(settings.clone()),
        settings,
        epoch: 0,
        listener,
        flows: HashMap::new(),
        flow_tasks: HashMap::new(),
        inbound: HashMap::new(),
        timers: HashMap::new(),
        resolver,
        tls,
        network_timeout,
        events: events.clone(),
        tasks,
    };
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
    /// Kept to build a fresh core on `Command: Reset`.
    settings: CoreSettings,
    /// Bumped at every reset; events of older tasks are dropped.
    epoch: u64,
    listener: Arc<UdpSocket>,
    flows: HashMap<FlowId, FlowHandle>,
    flow_tasks: HashMap<FlowId, AbortHandle>,
    inbound: HashMap<u64, stream::Writer>,
    timers: HashMap<TimerId, Instant>,
    resolver: Option<dns::SipResolver>,
    tls: Option<TlsConnector>,
    network_timeout: Duration,
    events: mpsc::UnboundedSender<ShellEvent>,
    /// Receivers, connections and lookups; aborted when the shell is dropped.
    tasks: JoinSet<()>,
}

impl Shell {
    fn on_event(&mut self, event: ShellEvent) {
        let now = Instant::now();
        let current = self.epoch;
        match event {
            ShellEvent::Datagram { epoch, arrival, bytes }
                if epoch == current || matches!(arrival, Arrival::Listener { .. }) =>
            {
                tracing::trace!(?arrival, "received {} bytes", bytes.len());
                self.core.on_datagram(now, arrival, &bytes);
            }
            ShellEvent::Frame { epoch, arrival, frame }
                if epoch == current || matches!(arrival, Arrival::Inbound { .. }) =>
            {
                match (frame, arrival) {
                    (Frame::Message(message), arrival) => self.core.on_message(now, arrival, message),
                    (Frame::Pong, Arrival::Flow(flow)) => self.core.on_pong(now, flow),
                    _ => {}
                }
            }
            ShellEvent::FlowOpened { epoch, flow, local, writer } if epoch == current => {
                if let Some(writer) = writer {
                    self.flows.insert(flow, FlowHandle::Stream(writer));
                }
                self.core.on_flow_opened(now, flow, local);
            }
            ShellEvent::FlowFailed { epoch, flow, failure } if epoch == current => {
                if let Some(FlowHandle::Stream(_)) = self.flows.get(&flow) {
                    self.flows.remove(&flow);
                    self.flow_tasks.remove(&flow);
                }
                self.core.on_transport_error(now, flow, failure);
            }
            ShellEvent::Resolved { epoch, request, answer } if epoch == current => {
                self.core.on_resolved(now, request, answer)
            }
            ShellEvent::InboundOpened { connection, writer, .. } => {
                self.inbound.insert(connection, writer);
            }
            ShellEvent::InboundClosed { connection, .. } => {
                self.inbound.remove(&connection);
            }
            ShellEvent::Push(PushCommand::Reset) => self.reset(now),
            ShellEvent::Push(command) => self.core.on_push(now, command),
            stale => tracing::trace!("event of an earlier stack dropped: {stale:?}"),
        }
    }

    /// `Command: Reset`: the SIP stack starts over, as after a reboot; the state dir is kept.
    fn reset(&mut self, now: Instant) {
        tracing::warn!("Command: Reset: restarting the SIP stack");
        self.core.shut_down();
        while let Some(output) = self.core.poll_output() {
            if let Output::CloseFlow { flow } = output {
                self.close_flow(flow);
            }
        }
        for (_, task) in self.flow_tasks.drain() {
            task.abort();
        }
        self.flows.clear();
        self.timers.clear();
        self.epoch += 1;
        let mut settings = self.settings.clone();
        settings.id_seed = rand::random();
        // A reset is a reboot: the instance is the one kept in --state-dir, unless the quirk makes
        // a new one at every start.
        if settings.quirks.has(crate::quirks::Quirk::NewInstanceEachBoot) {
            settings.instance_id = crate::state::new_instance();
            tracing::info!("Command: Reset: a new +sip.instance (quirk new-instance-each-boot)");
        }
        self.core = PhoneCore::new(settings);
        self.core.start(now);
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
                Output::OpenFlow { flow, remote, transport, server_name } => {
                    self.open_flow(flow, remote, transport, server_name)
                }
                Output::Send { flow, message } => {
                    tracing::debug!("sending on flow {}: {}", flow.0, first_line(&message));
                    self.send(flow, message.to_bytes()).await
                }
                Output::SendRaw { flow, bytes } => self.send(flow, bytes).await,
                Output::CloseFlow { flow } => self.close_flow(flow),
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
        let epoch = self.epoch;
        self.tasks.spawn(async move {
            let answer = resolver.resolve(&lookup).await;
            if let Err(error) = &answer {
                tracing::warn!("DNS lookup failed: {error}");
            }
            let _ = events.send(ShellEvent::Resolved { epoch, request, answer });
        });
    }

    fn open_flow(&mut self, flow: FlowId, remote: SocketAddr, transport: Transport, server_name: Option<String>) {
        let now = Instant::now();
        if transport == Transport::Udp {
            let opened =
                udp::connect_flow(self.settings.bind_ip, remote).and_then(|socket| Ok((socket.local_addr()?, socket)));
            match opened {
                Ok((local, socket)) => {
                    let socket = Arc::new(socket);
                    self.flows.insert(flow, FlowHandle::Udp(socket.clone()));
                    let task = self.tasks.spawn(receive(socket, Some(flow), self.epoch, self.events.clone()));
                    self.flow_tasks.insert(flow, task);
                    self.core.on_flow_opened(now, flow, local);
                }
                Err(error) => {
                    tracing::warn!("cannot open a UDP flow from {} to {remote}: {error}", self.settings.bind_ip);
                    self.core.on_transport_error(now, flow, udp::transport_failure(&error));
                }
            }
            return;
        }
        let tls = match (transport, &self.tls) {
            (Transport::Tls, Some(connector)) => Some((connector.clone(), server_name)),
            (Transport::Tls, None) => {
                let failure = TransportFailure::Other("TLS needs --ca".into());
                self.core.on_transport_error(now, flow, failure);
                return;
            }
            _ => None,
        };
        tracing::debug!("connecting flow {} to {remote} over {transport}", flow.0);
        let target = stream::StreamTarget {
            epoch: self.epoch,
            flow,
            remote,
            bind_ip: self.settings.bind_ip,
            tls,
            connect_timeout: self.network_timeout,
        };
        let task = self.tasks.spawn(stream::run_flow(target, self.events.clone()));
        self.flow_tasks.insert(flow, task);
    }

    fn close_flow(&mut self, flow: FlowId) {
        // Dropping a stream's writer ends its task; a UDP receiver is aborted.
        self.flows.remove(&flow);
        if let Some(task) = self.flow_tasks.remove(&flow) {
            task.abort();
        }
    }

    async fn send(&mut self, flow: FlowId, bytes: Vec<u8>) {
        let failure = match self.flows.get(&flow) {
            None => {
                tracing::warn!("send on unknown flow {} dropped", flow.0);
                return;
            }
            Some(FlowHandle::Udp(socket)) => match socket.send(&bytes).await {
                Ok(_) => return,
                Err(error) => {
                    tracing::debug!("send on flow {} failed: {error}", flow.0);
                    udp::transport_failure(&error)
                }
            },
            Some(FlowHandle::Stream(writer)) => match writer.send(bytes) {
                Ok(()) => return,
                Err(_) => TransportFailure::Closed,
            },
        };
        self.core.on_transport_error(Instant::now(), flow, failure);
    }

    async fn reply(&mut self, to: Arrival, message: &Message) {
        let bytes = message.to_bytes();
        let result = match to {
            Arrival::Listener { remote } => self.listener.send_to(&bytes, remote).await.map(|_| ()),
            Arrival::Flow(flow) => match self.flows.get(&flow) {
                Some(FlowHandle::Udp(socket)) => socket.send(&bytes).await.map(|_| ()),
                Some(FlowHandle::Stream(writer)) => {
                    writer.send(bytes).map_err(|_| std::io::ErrorKind::BrokenPipe.into())
                }
                None => Ok(()),
            },
            Arrival::Inbound { connection } => match self.inbound.get(&connection) {
                Some(writer) => writer.send(bytes).map_err(|_| std::io::ErrorKind::BrokenPipe.into()),
                None => Ok(()),
            },
        };
        if let Err(error) = result {
            tracing::debug!("reply {} to {to:?} not sent: {error}", first_line(message));
        }
    }
}

/// Reads datagrams off `socket` into the loop; on a flow, reports errors (ECONNREFUSED from ICMP) as flow failures.
async fn receive(socket: Arc<UdpSocket>, flow: Option<FlowId>, epoch: u64, events: mpsc::UnboundedSender<ShellEvent>) {
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        let event = match (flow, socket.recv_from(&mut buffer).await) {
            (Some(flow), Ok((length, _))) => {
                ShellEvent::Datagram { epoch, arrival: Arrival::Flow(flow), bytes: buffer[..length].to_vec() }
            }
            (None, Ok((length, remote))) => {
                ShellEvent::Datagram { epoch, arrival: Arrival::Listener { remote }, bytes: buffer[..length].to_vec() }
            }
            (Some(flow), Err(error)) => {
                tracing::debug!("flow {} receive error: {error}", flow.0);
                let failure = udp::transport_failure(&error);
                if !matches!(failure, TransportFailure::Refused) {
                    // Not an ICMP report: do not spin on a socket that keeps failing.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                ShellEvent::FlowFailed { epoch, flow, failure }
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
