//! An element's TCP and TLS ports: persistent connections (flows) framed by Content-Length, RFC 5626 pings answered, faults applied per flow.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sip::{Frame, FramerRole, StreamFramer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use super::{ElementShared, FlowCommand, Inbound, Peer};
use crate::faults::{Fault, FaultTarget};
use crate::trace::Transport;

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(5);

/// How long a new connection may take to bring its first complete frame (a SIP message or a
/// keep-alive) before it is dropped: a phone sends its request as soon as it connects, and a
/// connection that never completes one would otherwise be held for ever. Once a frame came, the
/// flow has no idle timeout (a phone without keep-alives must not be cut off by the harness).
pub const FIRST_MESSAGE_DEADLINE: Duration = Duration::from_secs(5);

/// Binds a TCP listener on exactly `addr` (SO_REUSEADDR, so `restore` can bind again at once).
pub(crate) fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket =
        socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(128)?;
    TcpListener::from_std(socket.into())
}

/// Runs a TCP listener until aborted.
pub(crate) async fn run_tcp_listener(shared: Arc<ElementShared>, listener: TcpListener) {
    run_listener(shared, listener, Transport::Tcp, None).await
}

/// Runs a TLS listener until aborted.
pub(crate) async fn run_tls_listener(shared: Arc<ElementShared>, listener: TcpListener, acceptor: TlsAcceptor) {
    run_listener(shared, listener, Transport::Tls, Some(acceptor)).await
}

async fn run_listener(
    shared: Arc<ElementShared>,
    listener: TcpListener,
    transport: Transport,
    acceptor: Option<TlsAcceptor>,
) {
    let addr = shared.local_addr(transport);
    let mut faults = shared.faults.subscribe();
    let mut listener = Some(listener);
    let mut backoff = crate::net::AcceptBackoff::default();
    loop {
        let refused = faults.borrow_and_update().on(transport) == Some(Fault::Refuse);
        if refused {
            if listener.take().is_some() {
                // `refuse`: the port is closed (RST on connect) and existing flows are reset.
                shared.reset_flows(&FaultTarget { element: shared.element, transport: Some(transport) });
                tracing::info!(element = %shared.element, %transport, "listener closed (refuse)");
            }
            if faults.changed().await.is_err() {
                return;
            }
            continue;
        }
        let accepting = match &listener {
            Some(l) => l,
            None => match bind_tcp(addr) {
                Ok(l) => listener.insert(l),
                Err(e) => {
                    tracing::error!(element = %shared.element, "cannot rebind {addr}: {e}");
                    if faults.changed().await.is_err() {
                        return;
                    }
                    continue;
                }
            },
        };
        tokio::select! {
            accepted = accepting.accept() => match accepted {
                Ok((stream, peer)) => {
                    backoff.accepted();
                    // Every close of ours is a reset: SO_LINGER 0.
                    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                    let shared = shared.clone();
                    let acceptor = acceptor.clone();
                    let owner = shared.clone();
                    owner.connections.spawn(async move { serve_connection(shared, stream, peer, transport, acceptor).await });
                }
                Err(e) => {
                    // Out of descriptors, accept fails again at once: pause, do not spin.
                    let pause = backoff.failed();
                    tracing::warn!(element = %shared.element, "accept: {e}; next try in {pause:?}");
                    tokio::time::sleep(pause).await;
                }
            },
            changed = faults.changed() => if changed.is_err() { return },
        }
    }
}

async fn serve_connection(
    shared: Arc<ElementShared>,
    stream: TcpStream,
    peer: SocketAddr,
    transport: Transport,
    acceptor: Option<TlsAcceptor>,
) {
    let Some(acceptor) = acceptor else {
        return run_flow(shared, stream, peer, transport).await;
    };
    if shared.faults.borrow().on(transport) == Some(Fault::Silent) {
        // `silent`: the connection is accepted but nothing is answered, not even the handshake.
        return hold_silently(shared, stream, transport).await;
    }
    match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => run_flow(shared, tls, peer, transport).await,
        Ok(Err(e)) => tracing::info!(element = %shared.element, "TLS handshake with {peer} failed: {e}"),
        Err(_) => tracing::info!(element = %shared.element, "TLS handshake with {peer} timed out"),
    }
}

/// Reads and discards until the fault changes, then closes.
async fn hold_silently(shared: Arc<ElementShared>, mut stream: TcpStream, transport: Transport) {
    let mut faults = shared.faults.subscribe();
    let mut buf = vec![0u8; 4096];
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => if matches!(read, Ok(0) | Err(_)) { return },
            changed = faults.changed() => {
                if changed.is_err() || faults.borrow().on(transport) != Some(Fault::Silent) {
                    return;
                }
            }
        }
    }
}

/// One persistent connection: frames in, commands (writes, reset) out.
async fn run_flow<S>(shared: Arc<ElementShared>, stream: S, addr: SocketAddr, transport: Transport)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (commands, mut command_rx) = mpsc::unbounded_channel();
    let flow = shared.register_flow(transport, addr, commands);
    let peer = Peer { transport, flow: Some(flow), addr };
    tracing::debug!(element = %shared.element, flow, %transport, "flow from {addr}");
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut framer = StreamFramer::new(FramerRole::Server);
    let mut buf = vec![0u8; 16 * 1024];
    let first_deadline = tokio::time::sleep(FIRST_MESSAGE_DEADLINE);
    tokio::pin!(first_deadline);
    let mut framed = false;
    'flow: loop {
        tokio::select! {
            () = &mut first_deadline, if !framed => {
                tracing::info!(element = %shared.element, flow, "no complete frame from {addr} within {FIRST_MESSAGE_DEADLINE:?}: closed");
                break 'flow;
            }
            read = reader.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => break 'flow,
                    Ok(n) => n,
                };
                framer.push(&buf[..n]);
                while let Some(frame) = framer.next_frame() {
                    framed = true;
                    match frame {
                        Frame::Message(m) => shared.inbound(peer, Inbound::Sip(Box::new(m))).await,
                        Frame::Ping => shared.inbound(peer, Inbound::Ping).await,
                        Frame::Pong => {}
                        Frame::Broken(diagnostic) => {
                            let malformed = sip::Malformed { raw: Vec::new(), diagnostics: vec![diagnostic] };
                            shared.inbound(peer, Inbound::Malformed(malformed)).await;
                            break 'flow;
                        }
                    }
                }
            }
            command = command_rx.recv() => match command {
                Some(FlowCommand::Write(bytes)) => {
                    if writer.write_all(&bytes).await.is_err() {
                        break 'flow;
                    }
                }
                Some(FlowCommand::Reset) | None => break 'flow,
            },
        }
    }
    shared.forget_flow(flow);
    tracing::debug!(element = %shared.element, flow, "flow closed");
}
