//! The loopback capture behind `refuse`: what the phone sends to a port the fault closed never reaches the harness, so raw sockets watching the element's address record it in the trace, with the kernel's answer as its fate.
//!
//! Raw IPv4 sockets (`SOCK_RAW`, one for UDP and one for TCP) bound to the element's own loopback
//! address and to `lo`: the kernel hands them a copy of every datagram and segment addressed to
//! that address, open port or closed, before its own UDP and TCP see them. Only those to the
//! element's refused ports while the fault is in force are recorded: each datagram (classified as
//! the element would: SIP, STUN, keep-alive, DNS query) as `refused: ICMP port unreachable`, each
//! TCP SYN as `refused: RST`. Nothing else is read: other labs' addresses never match the
//! binding, and a lab on a real interface (`--lab FILE`) is not captured. Raw sockets need
//! `CAP_NET_RAW` (root); without it the lab logs once and failure reports say the phone's
//! attempts are not recorded. No libpcap, no BPF: the binding is the filter.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::topology::{Element, Topology};
use crate::trace::{Direction, DnsRecord, Fate, Payload, Record, RefusedAttempt, Trace, Transport};

/// The fate of a datagram to a closed UDP port.
pub const REFUSED_DATAGRAM: &str = "refused: ICMP port unreachable";
/// The fate of a TCP connection attempt to a closed port.
pub const REFUSED_CONNECT: &str = "refused: RST";

/// Tells whether `refuse` is in force on one of the element's transports right now.
pub(crate) type RefusedCheck = Arc<dyn Fn(Transport) -> bool + Send + Sync>;

/// The lab's captures, one per refused element; each ends when the fault is lifted or the lab
/// goes away (dropping this aborts them).
#[derive(Default)]
pub(crate) struct Captures {
    running: HashMap<Element, JoinHandle<()>>,
    /// Why captures cannot run in this lab, once one failed to start (logged once).
    off: Option<String>,
}

impl Captures {
    /// Starts watching what is sent to `element`'s ports, before `refuse` closes them; where it
    /// cannot, remembers why. A capture already running goes on.
    pub fn start(&mut self, element: Element, topology: &Topology, trace: &Trace, refused: RefusedCheck) {
        if self.running.contains_key(&element) || self.off.is_some() {
            return;
        }
        let ports = match element {
            Element::Dns => vec![(Transport::Udp, topology.dns_port), (Transport::Tcp, topology.dns_port)],
            _ => vec![(Transport::Udp, 5060), (Transport::Tcp, 5060), (Transport::Tls, 5061)],
        };
        let watched = Watched { element, ip: topology.ip(element), ports, trace: trace.clone(), refused };
        match open(watched.ip) {
            Ok((udp, tcp)) => {
                tracing::debug!(%element, ip = %watched.ip, "loopback capture on (refuse)");
                self.running.insert(element, tokio::spawn(run(watched, udp, tcp)));
            }
            Err(why) => {
                tracing::warn!(
                    "no loopback capture in this lab: {why}; what the phone sends to refused ports is not recorded"
                );
                self.off = Some(why);
            }
        }
    }

    /// Stops watching `element` (before `restore` opens its ports again, so nothing delivered is
    /// ever recorded as refused).
    pub fn stop(&mut self, element: Element) {
        if let Some(task) = self.running.remove(&element) {
            task.abort();
        }
    }

    /// Stops every capture.
    pub fn stop_all(&mut self) {
        for (_, task) in self.running.drain() {
            task.abort();
        }
    }

    /// Why what the phone sends to `element` while refused is not in the trace; `None` when a
    /// capture records it.
    pub fn blind_to(&self, element: Element) -> Option<&str> {
        match self.running.contains_key(&element) {
            true => None,
            false => Some(self.off.as_deref().unwrap_or("no loopback capture ran")),
        }
    }
}

impl Drop for Captures {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// What one capture watches.
struct Watched {
    element: Element,
    ip: IpAddr,
    ports: Vec<(Transport, u16)>,
    trace: Trace,
    refused: RefusedCheck,
}

/// Opens the UDP and TCP raw sockets bound to `ip` on `lo`; the error says why not. Each is
/// handed to tokio as a `UdpSocket`: it owns the descriptor, and its `recv` is the `recv(2)` a
/// raw socket reads whole IP packets with.
fn open(ip: IpAddr) -> Result<(UdpSocket, UdpSocket), String> {
    let IpAddr::V4(v4) = ip else {
        return Err(format!("{ip} is IPv6: the capture reads IPv4 only"));
    };
    if !v4.is_loopback() {
        return Err(format!("{ip} is not a loopback address: the capture listens on lo only"));
    }
    let raw = |protocol: Protocol| -> Result<UdpSocket, String> {
        let name = if protocol == Protocol::UDP { "udp" } else { "tcp" };
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(protocol)).map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => {
                format!("a raw {name} socket needs CAP_NET_RAW (run as root): {e}")
            }
            _ => format!("a raw {name} socket: {e}"),
        })?;
        socket.bind_device(Some(b"lo")).map_err(|e| format!("binding the raw {name} socket to lo: {e}"))?;
        socket
            .bind(&SocketAddr::new(ip, 0).into())
            .map_err(|e| format!("binding the raw {name} socket to {ip}: {e}"))?;
        socket.set_nonblocking(true).map_err(|e| e.to_string())?;
        UdpSocket::from_std(socket.into()).map_err(|e| e.to_string())
    };
    Ok((raw(Protocol::UDP)?, raw(Protocol::TCP)?))
}

/// Reads both sockets until aborted.
async fn run(watched: Watched, udp: UdpSocket, tcp: UdpSocket) {
    let mut udp_buf = vec![0u8; 65_536];
    let mut tcp_buf = vec![0u8; 65_536];
    loop {
        let (read, buf) = tokio::select! {
            read = udp.recv(&mut udp_buf) => (read, &udp_buf),
            read = tcp.recv(&mut tcp_buf) => (read, &tcp_buf),
        };
        match read {
            Ok(n) => {
                if let Some(record) = watched.record_of(buf.get(..n).unwrap_or_default()) {
                    watched.trace.record(record);
                }
            }
            Err(e) => {
                tracing::warn!(element = %watched.element, "loopback capture ends: {e}");
                return;
            }
        }
    }
}

impl Watched {
    /// The trace record of one captured IPv4 packet, when it is a datagram or a SYN to one of
    /// the element's ports while `refuse` is in force on that port's transport.
    fn record_of(&self, packet: &[u8]) -> Option<Record> {
        let sliced = etherparse::SlicedPacket::from_ip(packet).ok()?;
        let Some(etherparse::NetSlice::Ipv4(ipv4)) = &sliced.net else { return None };
        let header = ipv4.header();
        let (source, destination) = (Ipv4Addr::from(header.source()), Ipv4Addr::from(header.destination()));
        if IpAddr::V4(destination) != self.ip {
            return None;
        }
        let (transport, from_port, to_port, attempt, fate) = match sliced.transport.as_ref()? {
            etherparse::TransportSlice::Udp(udp) => {
                let port = udp.destination_port();
                let transport = self.transport_of(Transport::Udp, port)?;
                let payload = self.classify(udp.payload());
                let attempt = RefusedAttempt::Datagram(Box::new(payload));
                (transport, udp.source_port(), port, attempt, REFUSED_DATAGRAM)
            }
            etherparse::TransportSlice::Tcp(tcp) if tcp.syn() && !tcp.ack() => {
                let port = tcp.destination_port();
                let transport = self.transport_of(Transport::Tcp, port)?;
                (transport, tcp.source_port(), port, RefusedAttempt::Connect, REFUSED_CONNECT)
            }
            _ => return None,
        };
        if !(self.refused)(transport) {
            return None;
        }
        Some(Record {
            element: self.element,
            direction: Direction::Received,
            transport,
            local: SocketAddr::new(self.ip, to_port),
            remote: SocketAddr::new(IpAddr::V4(source), from_port),
            flow: None,
            payload: Payload::Refused(attempt),
            fate: Fate::Dropped(fate.to_owned()),
        })
    }

    /// The element's transport on `port` over UDP or TCP (TCP 5061 is TLS).
    fn transport_of(&self, protocol: Transport, port: u16) -> Option<Transport> {
        self.ports
            .iter()
            .map(|(t, p)| (*t, *p))
            .find(|(t, p)| *p == port && (*t == protocol || (protocol == Transport::Tcp && *t == Transport::Tls)))
            .map(|(t, _)| t)
    }

    /// A datagram as the element would have read it.
    fn classify(&self, bytes: &[u8]) -> Payload {
        if self.element == Element::Dns {
            return Payload::Dns(dns_query(bytes));
        }
        match sip::classify_datagram(bytes) {
            sip::DatagramKind::KeepAlive => Payload::KeepAlive,
            sip::DatagramKind::Stun => match sip::StunMessage::decode(bytes) {
                Some(stun) => Payload::Stun(stun),
                None => malformed(bytes),
            },
            sip::DatagramKind::Sip => match sip::Message::parse(bytes) {
                Ok(message) => Payload::Sip(Box::new(message)),
                Err(malformed) => Payload::Malformed(malformed),
            },
        }
    }
}

/// A datagram that is not what its kind says, kept with its bytes.
fn malformed(bytes: &[u8]) -> Payload {
    match sip::Message::parse(bytes) {
        Ok(message) => Payload::Sip(Box::new(message)),
        Err(malformed) => Payload::Malformed(malformed),
    }
}

/// A DNS query as the DNS element records one.
fn dns_query(bytes: &[u8]) -> DnsRecord {
    match hickory_proto::op::Message::from_vec(bytes) {
        Ok(message) => {
            let (name, record_type) =
                message.queries.first().map(|q| (q.name().to_string(), q.query_type().to_string())).unwrap_or_default();
            DnsRecord::Query {
                id: message.metadata.id,
                name: name.trim_end_matches('.').to_ascii_lowercase(),
                record_type,
                wire: bytes.into(),
            }
        }
        Err(e) => DnsRecord::Malformed { detail: e.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn watched(refused: bool) -> Watched {
        Watched {
            element: Element::RegistrarA,
            ip: IpAddr::V4(Ipv4Addr::new(127, 9, 0, 4)),
            ports: vec![(Transport::Udp, 5060), (Transport::Tcp, 5060), (Transport::Tls, 5061)],
            trace: Trace::new(),
            refused: Arc::new(move |_| refused),
        }
    }

    fn udp_packet(to: [u8; 4], port: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let builder = etherparse::PacketBuilder::ipv4([127, 9, 0, 9], to, 64).udp(40_000, port);
        builder.write(&mut out, payload).unwrap();
        out
    }

    fn syn(port: u16) -> Vec<u8> {
        let mut out = Vec::new();
        let builder =
            etherparse::PacketBuilder::ipv4([127, 9, 0, 9], [127, 9, 0, 4], 64).tcp(40_001, port, 7, 100).syn();
        builder.write(&mut out, &[]).unwrap();
        out
    }

    const REGISTER: &[u8] = b"REGISTER sip:registrar-a.lab.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.9.0.9:5060;branch=z9hG4bK1\r\nFrom: <sip:1001@proxy-a.lab.test>;tag=1\r\nTo: <sip:1001@proxy-a.lab.test>\r\nCall-ID: c1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn a_register_to_the_refused_port_is_recorded_as_refused_sip() {
        let record = watched(true).record_of(&udp_packet([127, 9, 0, 4], 5060, REGISTER));
        let record = record.expect("recorded");
        assert_eq!(record.fate, Fate::Dropped(REFUSED_DATAGRAM.into()));
        assert_eq!(record.remote, "127.9.0.9:40000".parse::<SocketAddr>().unwrap());
        assert!(
            matches!(&record.payload, Payload::Refused(RefusedAttempt::Datagram(p)) if matches!(**p, Payload::Sip(_)))
        );
    }

    #[test]
    fn syns_to_tcp_and_tls_ports_are_refused_connects() {
        let w = watched(true);
        let tcp = w.record_of(&syn(5060)).map(|r| (r.transport, r.fate));
        assert_eq!(tcp, Some((Transport::Tcp, Fate::Dropped(REFUSED_CONNECT.into()))));
        assert_eq!(w.record_of(&syn(5061)).map(|r| r.transport), Some(Transport::Tls));
        assert!(w.record_of(&syn(5070)).is_none());
    }

    #[test]
    fn other_addresses_ports_and_open_ports_are_not_recorded() {
        assert!(watched(true).record_of(&udp_packet([127, 9, 0, 5], 5060, REGISTER)).is_none());
        assert!(watched(true).record_of(&udp_packet([127, 9, 0, 4], 5062, REGISTER)).is_none());
        assert!(watched(false).record_of(&udp_packet([127, 9, 0, 4], 5060, REGISTER)).is_none());
        assert!(watched(true).record_of(b"\x45garbage").is_none());
        assert!(watched(true).record_of(&[]).is_none());
    }
}
