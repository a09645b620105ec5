//! The lab's authoritative DNS: hickory-server's catalog answers from the case's zone, every query and answer recorded in the trace.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Message as DnsMessage, MessageType};
use hickory_server::proto::rr::{LowerName, Name, Record, RecordSet, RecordType, RrKey};
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::proto::serialize::txt::Parser;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, MessageResponse, ZoneType};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::error::HarnessError;
use crate::faults::Fault;
use crate::topology::{Element, Topology};
use crate::trace::{Direction, DnsRecord, Fate, Payload, Record as TraceRecord, Trace, Transport};

/// The zone template every case starts from (`fixtures/zones/lab.test.zone`).
pub const ZONE_TEMPLATE: &str = include_str!("../../fixtures/zones/lab.test.zone");

/// The TTL of the registrars' SIP service records (`registrars.<zone>`: NAPTR, and SRV naming
/// both registrars), as the zone template writes it: F5 cases wait it out.
pub const SERVICE_TTL_S: u32 = 2;

/// Fills the zone template with the case's addresses.
pub fn render_zone(template: &str, topology: &Topology) -> String {
    let mut text = template.replace("{{zone}}", &topology.zone);
    for element in Element::ALL {
        text = text.replace(&format!("{{{{{}}}}}", element.name()), &topology.ip(element).to_string());
    }
    text
}

/// The zone's records and the catalog that answers from them.
pub struct Zone {
    pub handler: Arc<InMemoryZoneHandler>,
    catalog: Catalog,
    origin: Name,
}

impl Zone {
    /// Parses a rendered master file into an authoritative zone.
    pub fn load(text: &str, topology: &Topology) -> Result<Zone, HarnessError> {
        let origin = Name::from_ascii(format!("{}.", topology.zone))
            .map_err(|e| HarnessError::Zone { path: "lab.test.zone".into(), detail: e.to_string() })?;
        let zone_error = |detail: String| HarnessError::Zone { path: "fixtures/zones/lab.test.zone".into(), detail };
        let (origin, records) = Parser::new(text, None, Some(origin)).parse().map_err(|e| zone_error(e.to_string()))?;
        let handler = InMemoryZoneHandler::new(origin.clone(), records, ZoneType::Primary, AxfrPolicy::Deny)
            .map_err(zone_error)?;
        let handler = Arc::new(handler);
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::from(origin.clone()), vec![handler.clone()]);
        Ok(Zone { handler, catalog, origin })
    }

    /// Parses one record in master-file syntax (`registrar-a.lab.test. A 60 127.1.2.3` given as
    /// name, type, ttl and rdata); names are absolute, with or without the trailing dot.
    fn parse_records(
        &self,
        name: &str,
        record_type: &str,
        ttl: u32,
        rdata: &[&str],
    ) -> Result<(RrKey, RecordSet), String> {
        let name = if name.ends_with('.') { name.to_owned() } else { format!("{name}.") };
        let mut text = format!("$ORIGIN {}\n", self.origin);
        for data in rdata {
            text.push_str(&format!("{name} {ttl} IN {record_type} {data}\n"));
        }
        let (_, records) = Parser::new(text, None, Some(self.origin.clone())).parse().map_err(|e| e.to_string())?;
        let mut sets = records.into_iter();
        match (sets.next(), sets.next()) {
            (Some((_, set)), None) if encoded_len(&set) > MAX_SERVABLE_RRSET => Err(format!(
                "{} {record_type} would take {} octets: more than one DNS message can carry (RFC 1035 §4.2.2)",
                set.name(),
                encoded_len(&set)
            )),
            (Some((key, set)), None) if self.origin.zone_of(set.name()) => Ok((key, set)),
            (Some((_, set)), None) => Err(format!("{} is outside the zone {}", set.name(), self.origin)),
            _ => Err("expected records of one name and one type".into()),
        }
    }

    /// Replaces the record set of `name` and `record_type` with `rdata` (one record each).
    pub async fn set(&self, name: &str, record_type: &str, ttl: u32, rdata: &[&str]) -> Result<(), String> {
        let (key, set) = self.parse_records(name, record_type, ttl, rdata)?;
        self.handler.records_mut().await.insert(key, Arc::new(set));
        Ok(())
    }

    /// Adds one record to the set of `name` and `record_type`.
    pub async fn add(&self, name: &str, record_type: &str, ttl: u32, rdata: &str) -> Result<(), String> {
        let (key, set) = self.parse_records(name, record_type, ttl, &[rdata])?;
        let mut records = self.handler.records_mut().await;
        let mut merged = records.get(&key).map(|existing| (**existing).clone()).unwrap_or_else(|| set.clone());
        for record in set.records_without_rrsigs() {
            merged.insert(record.clone(), 0);
        }
        records.insert(key, Arc::new(merged));
        Ok(())
    }

    /// Removes the record set of `name` and `record_type`; the name then answers NOERROR with no data
    /// (or NXDOMAIN when nothing is left).
    pub async fn remove(&self, name: &str, record_type: &str) -> Result<(), String> {
        let name = if name.ends_with('.') { name.to_owned() } else { format!("{name}.") };
        let name = Name::from_ascii(&name).map_err(|e| e.to_string())?;
        let record_type: RecordType =
            record_type.parse().map_err(|_| format!("unknown record type {record_type:?}"))?;
        self.handler.records_mut().await.remove(&RrKey::new(LowerName::from(name), record_type));
        Ok(())
    }
}

/// The most octets a record set may take and still be served: an answer over TCP is at most
/// 65535 octets, header and question included.
const MAX_SERVABLE_RRSET: usize = 60_000;

/// The octets a record set takes on the wire (names uncompressed).
fn encoded_len(set: &RecordSet) -> usize {
    use hickory_server::proto::serialize::binary::BinEncodable;
    set.records_without_rrsigs()
        .map(|record| {
            let mut bytes = Vec::new();
            let mut encoder = BinEncoder::new(&mut bytes);
            match record.emit(&mut encoder) {
                Ok(()) => bytes.len(),
                Err(_) => usize::MAX / 2,
            }
        })
        .fold(0, usize::saturating_add)
}

/// Collects the encoded response instead of sending it, so the DNS loop can record and send it itself.
#[derive(Clone, Default)]
struct CapturedResponse(Arc<Mutex<Option<Vec<u8>>>>);

#[async_trait::async_trait]
impl ResponseHandler for CapturedResponse {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        let info = response.destructive_emit(&mut encoder)?;
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(bytes);
        Ok(info)
    }
}

/// What the DNS loop shares with the lab.
pub(crate) struct DnsContext {
    pub topology: Arc<Topology>,
    pub trace: Trace,
    pub fault: watch::Receiver<Option<Fault>>,
    pub zone: Arc<Zone>,
    /// Its TCP connections' tasks: they end with the lab.
    pub connections: crate::net::ConnectionTasks,
}

/// The lab's DNS answering path without sockets: one query in, the bytes that would go out.
///
/// Everything a socket loop does between receiving and sending happens here too (recording,
/// refusing answers to answers, the UDP size limit), so fuzzing and tests reach what a phone reaches.
pub struct QueryHandler {
    ctx: DnsContext,
    _fault: watch::Sender<Option<Fault>>,
}

impl QueryHandler {
    /// A handler serving the zone template for `topology`, with no fault.
    pub fn new(topology: Topology) -> Result<QueryHandler, HarnessError> {
        let zone = Zone::load(&render_zone(ZONE_TEMPLATE, &topology), &topology)?;
        let (fault_tx, fault) = watch::channel(None);
        let ctx = DnsContext {
            topology: Arc::new(topology),
            trace: Trace::new(),
            fault,
            zone: Arc::new(zone),
            connections: crate::net::ConnectionTasks::default(),
        };
        Ok(QueryHandler { ctx, _fault: fault_tx })
    }

    /// The answer to one query that came from `source` over `transport`, if one is sent.
    pub async fn answer(&mut self, query: &[u8], source: SocketAddr, transport: Transport) -> Option<Vec<u8>> {
        self.ctx.trace = Trace::new();
        answer_query(&self.ctx, None, query, source, transport).await
    }

    /// What the last query recorded.
    pub fn trace(&self) -> &Trace {
        &self.ctx.trace
    }
}

/// Serves DNS on UDP until aborted. `silent` drops queries; `refuse` closes the port.
pub(crate) async fn run_udp(ctx: Arc<DnsContext>, socket: UdpSocket) {
    let addr = ctx.topology.dns_addr();
    let mut socket = Some(socket);
    let mut fault_rx = ctx.fault.clone();
    let mut buf = vec![0u8; 4096];
    loop {
        let fault = *fault_rx.borrow_and_update();
        if fault == Some(Fault::Refuse) {
            socket = None;
            if fault_rx.changed().await.is_err() {
                return;
            }
            continue;
        }
        let sock = match &socket {
            Some(s) => s,
            None => match crate::net::bind_udp(addr) {
                Ok(s) => socket.insert(s),
                Err(e) => {
                    tracing::error!("dns: cannot rebind {addr}: {e}");
                    if fault_rx.changed().await.is_err() {
                        return;
                    }
                    continue;
                }
            },
        };
        tokio::select! {
            received = sock.recv_from(&mut buf) => match received {
                Ok((n, source)) => {
                    if let Some(answer) = answer_query(&ctx, fault, &buf[..n], source, Transport::Udp).await
                        && let Err(e) = sock.send_to(&answer, source).await {
                            tracing::debug!("dns: send to {source}: {e}");
                        }
                }
                Err(e) => tracing::debug!("dns: recv: {e}"),
            },
            changed = fault_rx.changed() => if changed.is_err() { return },
        }
    }
}

/// Serves DNS over TCP (two-octet length framing, RFC 1035 §4.2.2) until aborted.
pub(crate) async fn run_tcp(ctx: Arc<DnsContext>, listener: tokio::net::TcpListener) {
    let addr = ctx.topology.dns_addr();
    let mut fault_rx = ctx.fault.clone();
    let mut listener = Some(listener);
    let mut backoff = crate::net::AcceptBackoff::default();
    loop {
        let fault = *fault_rx.borrow_and_update();
        if fault == Some(Fault::Refuse) {
            listener = None;
            if fault_rx.changed().await.is_err() {
                return;
            }
            continue;
        }
        let accepting = match &listener {
            Some(l) => l,
            None => match crate::elements::bind_tcp(addr) {
                Ok(l) => listener.insert(l),
                Err(e) => {
                    tracing::error!("dns: cannot rebind tcp {addr}: {e}");
                    if fault_rx.changed().await.is_err() {
                        return;
                    }
                    continue;
                }
            },
        };
        tokio::select! {
            accepted = accepting.accept() => match accepted {
                Ok((stream, source)) => {
                    backoff.accepted();
                    ctx.connections.spawn(serve_tcp_connection(ctx.clone(), stream, source));
                }
                Err(e) => {
                    // Out of descriptors, accept fails again at once: pause, do not spin.
                    let pause = backoff.failed();
                    tracing::warn!("dns: accept: {e}; next try in {pause:?}");
                    tokio::time::sleep(pause).await;
                }
            },
            changed = fault_rx.changed() => if changed.is_err() { return },
        }
    }
}

/// How long a DNS TCP connection may stay idle, or take to bring a whole query, before it is
/// closed (RFC 7766 §6.2.3: servers close idle connections; a few seconds is usual).
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

async fn serve_tcp_connection(ctx: Arc<DnsContext>, mut stream: tokio::net::TcpStream, source: SocketAddr) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let mut len = [0u8; 2];
        let mut query = Vec::new();
        let read = async {
            stream.read_exact(&mut len).await?;
            query.resize(usize::from(u16::from_be_bytes(len)), 0);
            stream.read_exact(&mut query).await
        };
        match tokio::time::timeout(TCP_IDLE_TIMEOUT, read).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                tracing::debug!("dns: tcp connection from {source} idle for {TCP_IDLE_TIMEOUT:?}: closed");
                return;
            }
        }
        let fault = *ctx.fault.borrow();
        if let Some(answer) = answer_query(&ctx, fault, &query, source, Transport::Tcp).await {
            let Ok(n) = u16::try_from(answer.len()) else { return };
            if stream.write_all(&n.to_be_bytes()).await.is_err() || stream.write_all(&answer).await.is_err() {
                return;
            }
        }
    }
}

/// Records the query, asks the catalog, records the answer; `None` when nothing is to be sent.
async fn answer_query(
    ctx: &DnsContext,
    fault: Option<Fault>,
    bytes: &[u8],
    source: SocketAddr,
    transport: Transport,
) -> Option<Vec<u8>> {
    let local = ctx.topology.dns_addr();
    let record = |direction, payload, fate| TraceRecord {
        element: Element::Dns,
        direction,
        transport,
        local,
        remote: source,
        flow: None,
        payload: Payload::Dns(payload),
        fate,
    };
    let fate = match fault {
        Some(Fault::Silent) => Fate::Dropped("silent".into()),
        _ => Fate::Delivered,
    };
    let protocol = if transport == Transport::Tcp { Protocol::Tcp } else { Protocol::Udp };
    let request = match Request::from_bytes(bytes.to_vec(), source, protocol) {
        Ok(r) => r,
        Err(e) => {
            ctx.trace.record(record(Direction::Received, DnsRecord::Malformed { detail: e.to_string() }, fate));
            return None;
        }
    };
    if request.metadata.message_type == MessageType::Response {
        // RFC 1035 §4.1.1: QR=1 is an answer. Answering answers would let one spoofed datagram
        // start an endless loop between two servers (or with ourselves).
        let detail = "a response (QR=1), not a query: never answered".to_owned();
        ctx.trace.record(record(
            Direction::Received,
            DnsRecord::Malformed { detail },
            Fate::Dropped("not a query".into()),
        ));
        return None;
    }
    // RFC 1035 §4.2.1 and RFC 6891 §6.2.5: over UDP at most 512 octets, or what EDNS offers.
    let udp_limit = usize::from(request.max_payload().max(512));
    let (id, name, record_type) = match request.request_info() {
        Ok(info) => (request.metadata.id, info.query.name().to_string(), info.query.query_type().to_string()),
        Err(_) => (request.metadata.id, String::new(), String::new()),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    ctx.trace.record(record(
        Direction::Received,
        DnsRecord::Query { id, name: name.clone(), record_type: record_type.clone(), wire: bytes.into() },
        fate.clone(),
    ));
    if fate != Fate::Delivered {
        return None;
    }
    let captured = CapturedResponse::default();
    ctx.zone.catalog.handle_request::<_, TokioTime>(&request, captured.clone()).await;
    let mut bytes = captured.0.lock().unwrap_or_else(|e| e.into_inner()).take()?;
    let mut fate = Fate::Delivered;
    if transport == Transport::Udp && bytes.len() > udp_limit {
        // Too long for the datagram: TC set and the sections left out, so the phone asks again
        // over TCP (RFC 1035 §4.2.1, RFC 7766 §5).
        match truncated(&bytes) {
            Some(short) => bytes = short,
            None => fate = Fate::Dropped(format!("{} octets, over the UDP limit of {udp_limit}", bytes.len())),
        }
    }
    if transport == Transport::Tcp && bytes.len() > usize::from(u16::MAX) {
        // RFC 1035 §4.2.2: the length prefix is two octets.
        fate = Fate::Dropped(format!("{} octets cannot be framed over TCP (at most 65535)", bytes.len()));
    }
    let (rcode, answers) = match DnsMessage::from_vec(&bytes) {
        Ok(m) => (
            if m.metadata.truncation {
                format!("{} TC", m.metadata.response_code)
            } else {
                m.metadata.response_code.to_string()
            },
            m.answers.iter().map(|r| format!("{} {} {}", r.record_type(), r.ttl, r.data)).collect(),
        ),
        Err(e) => (format!("undecodable: {e}"), Vec::new()),
    };
    if let Fate::Dropped(why) = &fate {
        tracing::warn!("dns: answer to {source} for {name} {record_type} not sent: {why}");
    }
    let sent = fate == Fate::Delivered;
    let wire = bytes.as_slice().into();
    ctx.trace.record(record(Direction::Sent, DnsRecord::Answer { id, name, record_type, rcode, answers, wire }, fate));
    sent.then_some(bytes)
}

/// The answer with its record sections left out and TC set; `None` if it does not decode.
fn truncated(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut message = DnsMessage::from_vec(bytes).ok()?;
    message.answers.clear();
    message.authorities.clear();
    message.additionals.clear();
    message.metadata.truncation = true;
    message.to_vec().ok()
}
