//! An element's UDP port: one task owns the socket (`refuse` closes it) and retransmits, readers hand the datagrams, classified (SIP, STUN, CRLF keep-alive), to the element.

use std::sync::Arc;

use sip::{DatagramKind, Message, StunMessage};
use tokio::net::UdpSocket;

use super::{ElementShared, Inbound, Peer};
use crate::faults::Fault;
use crate::trace::Transport;

/// The owner of the element's UDP port, run until aborted: it opens the socket (`read_udp`s
/// read it) and retransmits the element's client transactions. `refuse` drops the socket so the
/// kernel answers ICMP port unreachable; lifting it binds the port again.
pub(crate) async fn run_udp(shared: Arc<ElementShared>, socket: UdpSocket) {
    let addr = shared.local_addr(Transport::Udp);
    widen_receive_buffer(&shared, &socket);
    let mut faults = shared.faults.subscribe();
    shared.set_udp_socket(Some(Arc::new(socket)));
    let mut open = true;
    loop {
        let refused = faults.borrow_and_update().udp == Some(Fault::Refuse);
        if refused {
            if open {
                shared.set_udp_socket(None);
                open = false;
                tracing::info!(element = %shared.element, "udp port closed (refuse)");
            }
            if faults.changed().await.is_err() {
                return;
            }
            continue;
        }
        if !open {
            match crate::net::bind_udp(addr) {
                Ok(socket) => {
                    widen_receive_buffer(&shared, &socket);
                    shared.set_udp_socket(Some(Arc::new(socket)));
                    open = true;
                    tracing::info!(element = %shared.element, "udp port open again");
                }
                Err(e) => {
                    tracing::error!(element = %shared.element, "cannot rebind {addr}: {e}");
                    if faults.changed().await.is_err() {
                        return;
                    }
                    continue;
                }
            }
        }
        tokio::select! {
            changed = faults.changed() => if changed.is_err() { return },
            () = retransmission_due(shared.next_retransmission()) => shared.retransmit_due().await,
            () = shared.client_started.notified() => {}
        }
    }
}

/// A reader of the element's UDP socket (`LabSpec::udp_readers` of them: one in a case, so the
/// trace is in arrival order; one per core under `serve`). It follows the socket `run_udp`
/// opens and closes, so `refuse` closes the port for every reader. Runs until aborted.
pub(crate) async fn read_udp(shared: Arc<ElementShared>) {
    let mut socket = shared.udp_socket();
    let mut buf = vec![0u8; 65_536];
    loop {
        let Some(sock) = socket.borrow_and_update().clone() else {
            if socket.changed().await.is_err() {
                return;
            }
            continue;
        };
        tokio::select! {
            // Received in the select, handled in its arm: the other branch firing mid-answer
            // must not cancel the answer.
            received = sock.recv_from(&mut buf) => take_datagram(&shared, received, &buf).await,
            // Closed (refuse) or opened again: the clone is dropped and the new one taken.
            changed = socket.changed() => if changed.is_err() { return },
        }
    }
}

/// Hands what one `recv_from` read to the element.
async fn take_datagram(
    shared: &Arc<ElementShared>,
    received: std::io::Result<(usize, std::net::SocketAddr)>,
    buf: &[u8],
) {
    match received {
        Ok((n, source)) => {
            let peer = Peer { transport: Transport::Udp, flow: None, addr: source };
            if let Some(unit) = classify(&buf[..n]) {
                shared.inbound(peer, unit).await;
            }
        }
        // ICMP errors from earlier sends surface here on Linux; they are not ours to act on.
        Err(e) => tracing::debug!(element = %shared.element, "udp recv: {e}"),
    }
}

/// What an element asks of the kernel for its UDP receive buffer (the kernel caps it at
/// `net.core.rmem_max`). The default (about 200 KB, some 400 REGISTERs) overflows when a load
/// test's burst meets a moment without CPU, and every datagram dropped there comes back as a
/// retransmission half a second later; Kamailio widens its buffer the same way.
const UDP_RECEIVE_BUFFER: usize = 4 << 20;

fn widen_receive_buffer(shared: &ElementShared, socket: &UdpSocket) {
    if let Err(e) = socket2::SockRef::from(socket).set_recv_buffer_size(UDP_RECEIVE_BUFFER) {
        tracing::debug!(element = %shared.element, "cannot widen the udp receive buffer: {e}");
    }
}

/// Waits until `at`, or forever when nothing is due; the task dies with the lab, and so do the
/// element's retransmissions.
async fn retransmission_due(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn classify(bytes: &[u8]) -> Option<Inbound> {
    match sip::classify_datagram(bytes) {
        DatagramKind::KeepAlive => Some(Inbound::KeepAlive),
        DatagramKind::Stun => StunMessage::decode(bytes).map(Inbound::Stun),
        DatagramKind::Sip => Some(match Message::parse(bytes) {
            Ok(m) => Inbound::Sip(Box::new(m)),
            Err(malformed) => Inbound::Malformed(malformed),
        }),
    }
}
