//! The trace recorder: every message every element sends or receives, DNS included, with its element, transport, flow and time.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::topology::Element;

/// How a message travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    pub fn parse(s: &str) -> Option<Transport> {
        match s {
            "udp" => Some(Transport::Udp),
            "tcp" => Some(Transport::Tcp),
            "tls" => Some(Transport::Tls),
            _ => None,
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether the element received or sent the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Received,
    Sent,
}

/// A DNS exchange as the DNS element saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsRecord {
    /// A query: name (absolute, lowercase, no trailing dot) and type (`A`, `SRV`, ...), and the
    /// message as it crossed the wire (without TCP's length prefix), for the pcap.
    Query { id: u16, name: String, record_type: String, wire: Arc<[u8]> },
    /// An answer: the response code and each answer record as `TYPE TTL RDATA`, and the message
    /// as it crossed the wire (without TCP's length prefix).
    Answer { id: u16, name: String, record_type: String, rcode: String, answers: Vec<String>, wire: Arc<[u8]> },
    /// Bytes on the DNS port that did not decode.
    Malformed { detail: String },
}

/// What crossed the wire.
#[derive(Debug, Clone)]
pub enum Payload {
    Sip(Box<sip::Message>),
    /// A datagram or stream frame that does not parse as SIP, kept with the parser's reasons.
    Malformed(sip::Malformed),
    Stun(sip::StunMessage),
    KeepAlive,
    Dns(DnsRecord),
    /// Something the harness did (a fault injected or lifted), recorded so ladders show it.
    Action(String),
    /// What the phone sent to a port `refuse` closed, seen by the lab's loopback capture
    /// (`capture.rs`): it never reached the element, the kernel answered it (the fate says how).
    /// No expectation or steady rule counts it; the full ladder and the pcap show it.
    Refused(RefusedAttempt),
}

/// One attempt to reach a closed port.
#[derive(Debug, Clone)]
pub enum RefusedAttempt {
    /// A datagram, classified as the element would have (SIP, STUN, keep-alive, DNS query).
    Datagram(Box<Payload>),
    /// A TCP connection attempt (SYN), answered with RST.
    Connect,
}

/// What happened to a received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Delivered,
    /// Swallowed by the named fault.
    Dropped(String),
}

/// One recorded message.
#[derive(Debug, Clone)]
pub struct TraceEvent {
    /// Position in the trace, from 0.
    pub index: usize,
    /// Time since the lab started.
    pub at: Duration,
    pub element: Element,
    pub direction: Direction,
    pub transport: Transport,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The element's TCP/TLS connection it travelled on (per element, numbered from 1); `None`
    /// for UDP and the harness's own records.
    pub flow: Option<u64>,
    pub payload: Payload,
    pub fate: Fate,
}

impl TraceEvent {
    pub fn sip(&self) -> Option<&sip::Message> {
        match &self.payload {
            Payload::Sip(m) => Some(m),
            _ => None,
        }
    }
}

/// A shared, append-only trace; cheap to clone.
#[derive(Debug, Clone)]
pub struct Trace {
    inner: Arc<TraceInner>,
}

#[derive(Debug)]
struct TraceInner {
    start: Instant,
    events: Mutex<Vec<TraceEvent>>,
    len: watch::Sender<usize>,
}

/// What an element hands the recorder; the recorder adds index and time.
#[derive(Debug, Clone)]
pub struct Record {
    pub element: Element,
    pub direction: Direction,
    pub transport: Transport,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub flow: Option<u64>,
    pub payload: Payload,
    pub fate: Fate,
}

impl Default for Trace {
    fn default() -> Trace {
        Trace::new()
    }
}

impl Trace {
    pub fn new() -> Trace {
        let (len, _) = watch::channel(0);
        Trace { inner: Arc::new(TraceInner { start: Instant::now(), events: Mutex::new(Vec::new()), len }) }
    }

    /// Time since the trace started.
    pub fn now(&self) -> Duration {
        self.inner.start.elapsed()
    }

    pub fn record(&self, record: Record) {
        let len = {
            let mut events = self.inner.events.lock().unwrap_or_else(|e| e.into_inner());
            let index = events.len();
            tracing::debug!(element = %record.element, index, "trace {:?} {:?}", record.direction, summary(&record.payload));
            events.push(TraceEvent {
                index,
                at: self.now(),
                element: record.element,
                direction: record.direction,
                transport: record.transport,
                local: record.local,
                remote: record.remote,
                flow: record.flow,
                payload: record.payload,
                fate: record.fate,
            });
            events.len()
        };
        self.inner.len.send_replace(len);
    }

    pub fn len(&self) -> usize {
        *self.inner.len.borrow()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of every event so far.
    pub fn snapshot(&self) -> Vec<TraceEvent> {
        self.inner.events.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Copies of the events from `from` on.
    pub fn events_from(&self, from: usize) -> Vec<TraceEvent> {
        let events = self.inner.events.lock().unwrap_or_else(|e| e.into_inner());
        events.get(from..).map(<[TraceEvent]>::to_vec).unwrap_or_default()
    }

    /// Waits until an event at index `>= from` satisfies `predicate`, or until `deadline`.
    /// Returns the first such event.
    pub async fn wait_for(
        &self,
        from: usize,
        deadline: Instant,
        mut predicate: impl FnMut(&TraceEvent) -> bool,
    ) -> Option<TraceEvent> {
        let mut changes = self.inner.len.subscribe();
        let mut checked = from;
        loop {
            for event in self.events_from(checked) {
                checked = event.index + 1;
                if predicate(&event) {
                    return Some(event);
                }
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) | Err(_) => {
                    // One last look: an event may have landed just before the deadline.
                    return self.events_from(checked).into_iter().find(|e| predicate(e));
                }
            }
        }
    }
}

fn summary(payload: &Payload) -> String {
    match payload {
        Payload::Sip(m) => match (m.method(), m.status()) {
            (Some(method), _) => method.to_string(),
            (_, Some(status)) => status.to_string(),
            _ => "?".into(),
        },
        Payload::Malformed(_) => "malformed".into(),
        Payload::Stun(_) => "stun".into(),
        Payload::KeepAlive => "keep-alive".into(),
        Payload::Dns(DnsRecord::Query { id, name, record_type, .. }) => format!("dns query {id} {record_type} {name}"),
        Payload::Dns(DnsRecord::Answer { id, name, record_type, rcode, .. }) => {
            format!("dns answer {id} {record_type} {name} {rcode}")
        }
        Payload::Dns(DnsRecord::Malformed { detail }) => format!("dns malformed: {detail}"),
        Payload::Action(a) => a.clone(),
        Payload::Refused(RefusedAttempt::Datagram(inner)) => format!("refused {}", summary(inner)),
        Payload::Refused(RefusedAttempt::Connect) => "refused connect".into(),
    }
}
