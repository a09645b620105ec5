//! `--pcap-dir DIR`: each case's trace as `<case id>.pcapng` for Wireshark and tshark, every message synthesized as the IP packet it travelled in, at its real addresses, ports and time.
//!
//! The trace keeps what crossed the wire, not the packets, so the packets are rebuilt: UDP as
//! UDP datagrams; each TCP or TLS connection as one TCP stream (a SYN, SYN-ACK, ACK handshake at
//! its first message, then one segment per message with consistent sequence numbers, so
//! Wireshark reassembles SIP over TCP); TLS flows as the decrypted SIP they carried, in clear TCP
//! on their real ports (decode it with `-d tcp.port==5061,sip`); DNS over TCP with its length
//! prefix. A message between two elements is recorded by both and written once. What the phone
//! sent to a refused port (the lab's loopback capture) is written with the kernel's answer: an
//! ICMP port unreachable, or a RST. Harness actions (faults) and drops are packet comments.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use etherparse::{Icmpv4Type, PacketBuilder, PacketBuilderStep, TcpHeader, icmpv4::DestUnreachableHeader};
use pcap_file::DataLink;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};

use crate::case::{CaseResult, CaseTrace};
use crate::topology::{Element, Party, Topology};
use crate::trace::{Direction, DnsRecord, Fate, Payload, RefusedAttempt, TraceEvent, Transport};

/// The interface description every file carries: how to read what it holds.
pub const INTERFACE_DESCRIPTION: &str = "sipharness lab trace, packets synthesized from what the harness's elements \
     sent and received; TLS flows shown decrypted as clear TCP on their real ports (decode with -d tcp.port==5061,sip)";

/// Writes one `<case id>.pcapng` per case into a directory.
#[derive(Debug)]
pub struct PcapWriter {
    dir: PathBuf,
}

impl PcapWriter {
    /// Creates `dir` (and its parents) when missing.
    pub fn create(dir: &Path) -> io::Result<PcapWriter> {
        std::fs::create_dir_all(dir)?;
        Ok(PcapWriter { dir: dir.to_owned() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `<dir>/<case id>.pcapng`; `None` when the result has no trace (a skip, an error
    /// before the lab ran). The file appears whole or not at all: it is written under a name
    /// ending `.tmp` and renamed, so nothing else in the directory ends in `.pcapng`.
    pub fn write(&mut self, result: &CaseResult) -> io::Result<Option<PathBuf>> {
        let Some(trace) = &result.trace else { return Ok(None) };
        let bytes = encode(trace)?;
        let stem = file_stem(&result.id);
        let path = self.dir.join(format!("{stem}.pcapng"));
        let partial = self.dir.join(format!(".{stem}.pcapng.tmp"));
        let written = std::fs::write(&partial, &bytes).and_then(|()| std::fs::rename(&partial, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
        tracing::debug!(case = %result.id, path = %path.display(), "pcap written");
        Ok(Some(path))
    }
}

/// A case id as a file name: anything but letters, digits, `.`, `-` and `_` becomes `_`.
fn file_stem(id: &str) -> String {
    let stem: String =
        id.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect();
    match stem.trim_start_matches('.') {
        "" => "case".to_owned(),
        _ => stem,
    }
}

/// The trace as a pcapng file in memory.
pub fn encode(trace: &CaseTrace) -> io::Result<Vec<u8>> {
    let mut writer = PcapNgWriter::new(Vec::new()).map_err(io::Error::other)?;
    let interface = InterfaceDescriptionBlock {
        linktype: DataLink::RAW,
        snaplen: 0,
        options: vec![
            InterfaceDescriptionOption::IfName(Cow::Borrowed("lo")),
            InterfaceDescriptionOption::IfDescription(Cow::Borrowed(INTERFACE_DESCRIPTION)),
            // pcap-file writes timestamps in nanoseconds.
            InterfaceDescriptionOption::IfTsResol(9),
        ],
    };
    writer.write_pcapng_block(interface).map_err(io::Error::other)?;
    let epoch_offset = trace.started.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    for packet in Synthesizer::new(&trace.topology).packets(&trace.events) {
        let mut options = Vec::new();
        if !packet.comments.is_empty() {
            options.push(EnhancedPacketOption::Comment(Cow::Owned(packet.comments.join("; "))));
        }
        let block = EnhancedPacketBlock {
            interface_id: 0,
            timestamp: epoch_offset + packet.at,
            original_len: u32::try_from(packet.data.len()).unwrap_or(u32::MAX),
            data: Cow::Borrowed(&packet.data),
            options,
        };
        writer.write_pcapng_block(block).map_err(io::Error::other)?;
    }
    Ok(writer.into_inner())
}

/// One synthesized IP packet.
#[derive(Debug)]
pub struct Packet {
    /// Time since the lab started.
    pub at: Duration,
    /// The IP packet, from its IP header on.
    pub data: Vec<u8>,
    pub comments: Vec<String>,
}

/// One TCP connection: the next sequence number each side sends.
struct Stream {
    next_seq: HashMap<SocketAddr, u32>,
}

/// Turns trace events into packets, keeping each TCP stream's sequence numbers.
struct Synthesizer<'a> {
    topology: &'a Topology,
    streams: HashMap<(SocketAddr, SocketAddr), Stream>,
    /// Comments waiting for the next packet (harness actions).
    pending: Vec<String>,
    packets: Vec<Packet>,
}

const TTL: u8 = 64;
const WINDOW: u16 = 65_535;
/// The initial sequence numbers of a synthesized stream's client and server.
const CLIENT_ISN: u32 = 1_000;
const SERVER_ISN: u32 = 500_000;

impl<'a> Synthesizer<'a> {
    fn new(topology: &'a Topology) -> Synthesizer<'a> {
        Synthesizer { topology, streams: HashMap::new(), pending: Vec::new(), packets: Vec::new() }
    }

    fn packets(mut self, events: &[TraceEvent]) -> Vec<Packet> {
        for event in events {
            self.event(event);
        }
        self.packets
    }

    fn event(&mut self, event: &TraceEvent) {
        let (src, dst) = match event.direction {
            Direction::Received => (event.remote, event.local),
            Direction::Sent => (event.local, event.remote),
        };
        let mut comments = Vec::new();
        let bytes: Cow<'_, [u8]> = match &event.payload {
            Payload::Action(text) => {
                self.pending.push(format!("{}: {text}", event.element));
                return;
            }
            Payload::Refused(attempt) => return self.refused(event, attempt),
            _ if event.direction == Direction::Sent && self.is_element(event.remote.ip()) => {
                // Recorded again by the element that received it: written from that record.
                return;
            }
            _ if event.direction == Direction::Sent && event.fate != Fate::Delivered => {
                // Never put on the wire (too large for a datagram).
                return;
            }
            payload => match wire_bytes(payload, event.direction) {
                Some(bytes) => bytes,
                None => return,
            },
        };
        if let Fate::Dropped(why) = &event.fate {
            comments.push(format!("dropped by {}: {why}", event.element));
        }
        let dns_over_tcp = matches!(event.payload, Payload::Dns(_)) && event.transport != Transport::Udp;
        match event.transport {
            Transport::Udp => {
                let data = build(ip(src, dst).map(|b| b.udp(src.port(), dst.port())), &bytes);
                self.push(event.at, data, comments);
            }
            Transport::Tcp | Transport::Tls => {
                let framed: Cow<'_, [u8]> = match (dns_over_tcp, u16::try_from(bytes.len())) {
                    (true, Ok(len)) => Cow::Owned([&len.to_be_bytes()[..], &bytes].concat()),
                    _ => bytes,
                };
                self.segment(event, src, dst, &framed, comments);
            }
        }
    }

    fn is_element(&self, ip: IpAddr) -> bool {
        matches!(self.topology.party(ip), Party::Element(_))
    }

    /// Whether `addr` is a port an element listens on: the server side of a connection.
    fn is_listening(&self, addr: SocketAddr) -> bool {
        match self.topology.party(addr.ip()) {
            Party::Element(Element::Dns) => addr.port() == self.topology.dns_port,
            Party::Element(_) => matches!(addr.port(), 5060 | 5061),
            _ => false,
        }
    }

    fn push(&mut self, at: Duration, data: Option<Vec<u8>>, mut comments: Vec<String>) {
        let Some(data) = data else { return };
        if !self.pending.is_empty() {
            let mut all = std::mem::take(&mut self.pending);
            all.append(&mut comments);
            comments = all;
        }
        self.packets.push(Packet { at, data, comments });
    }

    /// One message on a TCP stream, the stream's handshake first when it is new.
    fn segment(&mut self, event: &TraceEvent, src: SocketAddr, dst: SocketAddr, bytes: &[u8], comments: Vec<String>) {
        let key = if src <= dst { (src, dst) } else { (dst, src) };
        if !self.streams.contains_key(&key) {
            let (client, server) =
                if self.is_listening(src) && !self.is_listening(dst) { (dst, src) } else { (src, dst) };
            let mut opening = Vec::new();
            if event.transport == Transport::Tls {
                opening.push("TLS flow shown decrypted (decode with -d tcp.port==5061,sip)".to_owned());
            }
            self.handshake(event.at, client, server, opening);
            let next_seq = HashMap::from([(client, CLIENT_ISN + 1), (server, SERVER_ISN + 1)]);
            self.streams.insert(key, Stream { next_seq });
        }
        let Some(stream) = self.streams.get_mut(&key) else { return };
        let seq = stream.next_seq.get(&src).copied().unwrap_or(0);
        let ack = stream.next_seq.get(&dst).copied().unwrap_or(0);
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        stream.next_seq.insert(src, seq.wrapping_add(len));
        let data = build(ip(src, dst).map(|b| b.tcp(src.port(), dst.port(), seq, WINDOW).ack(ack).psh()), bytes);
        self.push(event.at, data, comments);
    }

    fn handshake(&mut self, at: Duration, client: SocketAddr, server: SocketAddr, comments: Vec<String>) {
        let syn = build(ip(client, server).map(|b| b.tcp(client.port(), server.port(), CLIENT_ISN, WINDOW).syn()), &[]);
        self.push(at, syn, comments);
        let syn_ack = build(
            ip(server, client)
                .map(|b| b.tcp(server.port(), client.port(), SERVER_ISN, WINDOW).syn().ack(CLIENT_ISN + 1)),
            &[],
        );
        self.push(at, syn_ack, Vec::new());
        let ack = build(
            ip(client, server).map(|b| b.tcp(client.port(), server.port(), CLIENT_ISN + 1, WINDOW).ack(SERVER_ISN + 1)),
            &[],
        );
        self.push(at, ack, Vec::new());
    }

    /// What the phone sent to a closed port, and the kernel's answer.
    fn refused(&mut self, event: &TraceEvent, attempt: &RefusedAttempt) {
        let (src, dst) = (event.remote, event.local);
        let why = match &event.fate {
            Fate::Dropped(why) => why.clone(),
            Fate::Delivered => "refused".to_owned(),
        };
        let comment =
            format!("{why}: {}'s port closed by `refuse` (seen by the lab's loopback capture)", event.element);
        match attempt {
            RefusedAttempt::Datagram(inner) => {
                let Some(bytes) = wire_bytes(inner, Direction::Received) else { return };
                let Some(datagram) = build(ip(src, dst).map(|b| b.udp(src.port(), dst.port())), &bytes) else {
                    return;
                };
                let unreachable = port_unreachable(&datagram, dst, src);
                self.push(event.at, Some(datagram), vec![comment]);
                self.push(event.at, unreachable, Vec::new());
            }
            RefusedAttempt::Connect => {
                // The phone's ISN is not known: 0, and the RST acknowledges it.
                let syn = build(ip(src, dst).map(|b| b.tcp(src.port(), dst.port(), 0, WINDOW).syn()), &[]);
                let rst = build(ip(dst, src).map(|b| b.tcp(dst.port(), src.port(), 0, 0).rst().ack(1)), &[]);
                self.push(event.at, syn, vec![comment]);
                self.push(event.at, rst, Vec::new());
            }
        }
    }
}

/// The bytes a payload put on the wire; `None` for what has none (a DNS message that did not
/// decode keeps no bytes).
fn wire_bytes(payload: &Payload, direction: Direction) -> Option<Cow<'_, [u8]>> {
    Some(match payload {
        Payload::Sip(message) => match message.raw() {
            Some(raw) => Cow::Borrowed(raw),
            None => Cow::Owned(message.to_bytes()),
        },
        Payload::Malformed(malformed) => Cow::Borrowed(&malformed.raw),
        Payload::Stun(stun) => Cow::Owned(stun.encode()),
        // The trace does not keep a keep-alive's bytes: a ping is CRLF CRLF, its pong CRLF.
        Payload::KeepAlive => match direction {
            Direction::Received => Cow::Borrowed(b"\r\n\r\n"),
            Direction::Sent => Cow::Borrowed(b"\r\n"),
        },
        Payload::Dns(DnsRecord::Query { wire, .. } | DnsRecord::Answer { wire, .. }) => Cow::Borrowed(wire),
        Payload::Dns(DnsRecord::Malformed { .. }) | Payload::Action(_) | Payload::Refused(_) => return None,
    })
}

/// The IP header from `src` to `dst`; `None` when one is IPv4 and the other IPv6.
fn ip(src: SocketAddr, dst: SocketAddr) -> Option<PacketBuilderStep<etherparse::IpHeaders>> {
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Some(PacketBuilder::ipv4(s.octets(), d.octets(), TTL)),
        (IpAddr::V6(s), IpAddr::V6(d)) => Some(PacketBuilder::ipv6(s.octets(), d.octets(), TTL)),
        _ => None,
    }
}

/// Serializes a packet; `None` (logged) when it cannot be (a payload over IP's 64 KiB).
fn build<T>(builder: Option<PacketBuilderStep<T>>, payload: &[u8]) -> Option<Vec<u8>>
where
    PacketBuilderStep<T>: Serialize,
{
    let builder = builder?;
    let mut data = Vec::with_capacity(builder.packet_size(payload.len()));
    match builder.serialize(&mut data, payload) {
        Ok(()) => Some(data),
        Err(e) => {
            tracing::warn!("pcap: a {}-octet message left out: {e}", payload.len());
            None
        }
    }
}

/// The builder steps that end in a transport header, serialized alike.
trait Serialize {
    fn packet_size(&self, payload: usize) -> usize;
    fn serialize(self, out: &mut Vec<u8>, payload: &[u8]) -> Result<(), String>;
}

impl Serialize for PacketBuilderStep<etherparse::UdpHeader> {
    fn packet_size(&self, payload: usize) -> usize {
        self.size(payload)
    }
    fn serialize(self, out: &mut Vec<u8>, payload: &[u8]) -> Result<(), String> {
        self.write(out, payload).map_err(|e| e.to_string())
    }
}

impl Serialize for PacketBuilderStep<TcpHeader> {
    fn packet_size(&self, payload: usize) -> usize {
        self.size(payload)
    }
    fn serialize(self, out: &mut Vec<u8>, payload: &[u8]) -> Result<(), String> {
        self.write(out, payload).map_err(|e| e.to_string())
    }
}

impl Serialize for PacketBuilderStep<etherparse::Icmpv4Header> {
    fn packet_size(&self, payload: usize) -> usize {
        self.size(payload)
    }
    fn serialize(self, out: &mut Vec<u8>, payload: &[u8]) -> Result<(), String> {
        self.write(out, payload).map_err(|e| e.to_string())
    }
}

/// The ICMP port unreachable the kernel answers a datagram to a closed port with: from the
/// closed port's address to the sender, quoting the datagram's IP header and first 8 octets.
/// IPv4 only (the loopback capture is).
fn port_unreachable(datagram: &[u8], from: SocketAddr, to: SocketAddr) -> Option<Vec<u8>> {
    let (IpAddr::V4(from), IpAddr::V4(to)) = (from.ip(), to.ip()) else { return None };
    let header_len = usize::from(datagram.first()? & 0x0f) * 4;
    let quoted = datagram.get(..header_len + 8)?;
    let builder = PacketBuilder::ipv4(from.octets(), to.octets(), TTL)
        .icmpv4(Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port));
    build(Some(builder), quoted)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    use pcap_file::pcapng::{Block, PcapNgReader};

    use super::*;

    const REGISTER: &[u8] = b"REGISTER sip:registrar-a.lab.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.9.0.9:5060;branch=z9hG4bK1\r\nFrom: <sip:1001@proxy-a.lab.test>;tag=1\r\nTo: <sip:1001@proxy-a.lab.test>\r\nCall-ID: c1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";

    fn sip() -> Payload {
        Payload::Sip(Box::new(sip::Message::parse(REGISTER).unwrap()))
    }

    struct Events(Vec<TraceEvent>);

    impl Events {
        #[allow(clippy::too_many_arguments)]
        fn push(
            &mut self,
            element: Element,
            direction: Direction,
            transport: Transport,
            local: &str,
            remote: &str,
            payload: Payload,
            fate: Fate,
        ) {
            self.0.push(TraceEvent {
                index: self.0.len(),
                at: Duration::from_millis(10 * self.0.len() as u64),
                element,
                direction,
                transport,
                local: local.parse().unwrap(),
                remote: remote.parse().unwrap(),
                flow: (transport != Transport::Udp).then_some(1),
                payload,
                fate,
            });
        }
    }

    /// Reads the file back: each packet's transport summary and comment.
    fn read(bytes: &[u8]) -> Vec<(String, Option<String>)> {
        let mut reader = PcapNgReader::new(bytes).unwrap();
        let mut out = Vec::new();
        while let Some(block) = reader.next_block() {
            let Block::EnhancedPacket(packet) = block.unwrap() else { continue };
            let comment = packet.options.iter().find_map(|o| match o {
                EnhancedPacketOption::Comment(c) => Some(c.to_string()),
                _ => None,
            });
            let sliced = SlicedPacket::from_ip(&packet.data).unwrap();
            let Some(NetSlice::Ipv4(ip)) = &sliced.net else { panic!("not IPv4") };
            let (src, dst) = (Ipv4Addr::from(ip.header().source()), Ipv4Addr::from(ip.header().destination()));
            let what = match sliced.transport.unwrap() {
                TransportSlice::Udp(u) => {
                    format!("udp {src}:{} > {dst}:{} {}", u.source_port(), u.destination_port(), u.payload().len())
                }
                TransportSlice::Tcp(t) => format!(
                    "tcp {src}:{} > {dst}:{} {}{}{} seq={} ack={} {}",
                    t.source_port(),
                    t.destination_port(),
                    if t.syn() { "S" } else { "" },
                    if t.ack() { "A" } else { "" },
                    if t.rst() { "R" } else { "" },
                    t.sequence_number(),
                    t.acknowledgment_number(),
                    t.payload().len()
                ),
                TransportSlice::Icmpv4(i) => format!("icmp {src} > {dst} {:?}", i.icmp_type()),
                other => format!("{other:?}"),
            };
            out.push((what, comment));
        }
        out
    }

    #[test]
    fn each_message_once_tcp_streams_with_handshakes_and_refused_attempts_with_the_kernels_answer() {
        let topology = Topology::new(Ipv4Addr::new(127, 9, 0, 0), "lab.test");
        let registrar = topology.sip_addr(Element::RegistrarA).to_string();
        let proxy = topology.sip_addr(Element::ProxyA).to_string();
        let phone = format!("{}:5060", topology.phone_ip());
        let phone_tls = format!("{}:40000", topology.phone_ip());
        let registrar_tls = format!("{}:5061", topology.ip(Element::RegistrarA));
        let mut e = Events(Vec::new());
        let (udp, tls) = (Transport::Udp, Transport::Tls);
        e.push(Element::RegistrarA, Direction::Received, udp, &registrar, &phone, sip(), Fate::Delivered);
        e.push(Element::RegistrarA, Direction::Sent, udp, &registrar, &phone, sip(), Fate::Delivered);
        // Between two elements: recorded by both, written once.
        e.push(Element::ProxyA, Direction::Sent, udp, &proxy, &registrar, sip(), Fate::Delivered);
        e.push(Element::RegistrarA, Direction::Received, udp, &registrar, &proxy, sip(), Fate::Delivered);
        // Never sent: left out.
        e.push(Element::RegistrarA, Direction::Sent, udp, &registrar, &phone, sip(), Fate::Dropped("too large".into()));
        e.push(
            Element::RegistrarA,
            Direction::Sent,
            udp,
            &registrar,
            &registrar,
            Payload::Action("fail registrar-a refuse".into()),
            Fate::Delivered,
        );
        e.push(Element::RegistrarA, Direction::Received, tls, &registrar_tls, &phone_tls, sip(), Fate::Delivered);
        e.push(
            Element::RegistrarA,
            Direction::Received,
            tls,
            &registrar_tls,
            &phone_tls,
            sip(),
            Fate::Dropped("silent".into()),
        );
        let refused = Payload::Refused(RefusedAttempt::Datagram(Box::new(sip())));
        e.push(
            Element::RegistrarA,
            Direction::Received,
            udp,
            &registrar,
            &phone,
            refused,
            Fate::Dropped("refused: ICMP port unreachable".into()),
        );
        e.push(
            Element::RegistrarA,
            Direction::Received,
            Transport::Tcp,
            &registrar,
            &phone_tls,
            Payload::Refused(RefusedAttempt::Connect),
            Fate::Dropped("refused: RST".into()),
        );
        let trace =
            CaseTrace { topology: topology.clone(), started: SystemTime::UNIX_EPOCH, events: e.0, matched: vec![] };
        let packets = read(&encode(&trace).unwrap());
        let (r, p, ph) = (topology.ip(Element::RegistrarA), topology.ip(Element::ProxyA), topology.phone_ip());
        let n = REGISTER.len();
        let expected: Vec<(String, Option<&str>)> = vec![
            (format!("udp {ph}:5060 > {r}:5060 {n}"), None),
            (format!("udp {r}:5060 > {ph}:5060 {n}"), None),
            (format!("udp {p}:5060 > {r}:5060 {n}"), None),
            (
                format!("tcp {ph}:40000 > {r}:5061 S seq=1000 ack=0 0"),
                Some(
                    "registrar-a: fail registrar-a refuse; TLS flow shown decrypted (decode with -d tcp.port==5061,sip)",
                ),
            ),
            (format!("tcp {r}:5061 > {ph}:40000 SA seq=500000 ack=1001 0"), None),
            (format!("tcp {ph}:40000 > {r}:5061 A seq=1001 ack=500001 0"), None),
            (format!("tcp {ph}:40000 > {r}:5061 A seq=1001 ack=500001 {n}"), None),
            (
                format!("tcp {ph}:40000 > {r}:5061 A seq={} ack=500001 {n}", 1001 + n),
                Some("dropped by registrar-a: silent"),
            ),
            (
                format!("udp {ph}:5060 > {r}:5060 {n}"),
                Some(
                    "refused: ICMP port unreachable: registrar-a's port closed by `refuse` (seen by the lab's loopback capture)",
                ),
            ),
            (format!("icmp {r} > {ph} DestinationUnreachable(Port)"), None),
            (
                format!("tcp {ph}:40000 > {r}:5060 S seq=0 ack=0 0"),
                Some("refused: RST: registrar-a's port closed by `refuse` (seen by the lab's loopback capture)"),
            ),
            (format!("tcp {r}:5060 > {ph}:40000 AR seq=0 ack=1 0"), None),
        ];
        let expected: Vec<(String, Option<String>)> =
            expected.into_iter().map(|(w, c)| (w, c.map(str::to_owned))).collect();
        assert_eq!(packets, expected);
    }

    #[test]
    fn a_result_without_a_trace_writes_nothing_and_the_dir_holds_only_pcaps() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = PcapWriter::create(&dir.path().join("a/b")).unwrap();
        let result = CaseResult {
            id: "register.x.udp".into(),
            verdict: crate::case::Verdict::Skip,
            duration: Duration::ZERO,
            waited: Duration::ZERO,
            failures: vec![],
            reason: None,
            ladder: String::new(),
            full_ladder: String::new(),
            requirements: vec![],
            trace: None,
        };
        assert_eq!(writer.write(&result).unwrap(), None);
        let topology = Topology::new(Ipv4Addr::new(127, 9, 0, 0), "lab.test");
        let trace = CaseTrace { topology, started: SystemTime::now(), events: vec![], matched: vec![] };
        let result = CaseResult { trace: Some(Arc::new(trace)), ..result };
        let path = writer.write(&result).unwrap().unwrap();
        assert_eq!(path, dir.path().join("a/b/register.x.udp.pcapng"));
        let names: Vec<_> = std::fs::read_dir(writer.dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [std::ffi::OsString::from("register.x.udp.pcapng")]);
        assert!(read(&std::fs::read(path).unwrap()).is_empty());
    }

    #[test]
    fn case_ids_become_file_names_and_nothing_else() {
        assert_eq!(file_stem("failover.no-outbound.x.refuse.udp"), "failover.no-outbound.x.refuse.udp");
        assert_eq!(file_stem("a/b c"), "a_b_c");
        assert_eq!(file_stem(".."), "case");
        assert_eq!(file_stem(""), "case");
    }
}
