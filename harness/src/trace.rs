//! The trace recorder: every message every element sends or receives, DNS included, with its element, transport, flow and time.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
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
///
/// Events are kept behind `Arc`s, so reading from any position costs what is read, not what is
/// kept, and the lock is held only to push one event or to clone a batch of pointers: a reader
/// never holds it while it works (renders, writes, waits), so a slow or blocked reader never
/// slows `record`. A trace may be given a memory bound (`forget_read_after`, `serve` only):
/// then, when its consumer says what it has taken (`forget_before`), taken events beyond the
/// bound are dropped, oldest first. Cases never set one: they judge and snapshot the whole trace.
#[derive(Debug, Clone)]
pub struct Trace {
    inner: Arc<TraceInner>,
}

#[derive(Debug)]
struct TraceInner {
    start: Instant,
    store: Mutex<Store>,
    len: watch::Sender<usize>,
    /// How many events were deep-copied out (`snapshot`, `events_from`, `wait_for`'s match): the
    /// cost a reader pays, which tests check stays linear in what is read.
    copied: AtomicUsize,
}

#[derive(Debug, Default)]
struct Store {
    /// The index of `events[0]`: events before it were forgotten.
    first: usize,
    events: VecDeque<Arc<TraceEvent>>,
    /// Beyond this many events, those the consumer has taken are dropped, oldest first; `None`
    /// keeps everything.
    bound: Option<usize>,
    /// Events below this index were taken by the consumer and may be forgotten.
    taken: usize,
}

impl Store {
    fn len(&self) -> usize {
        self.first + self.events.len()
    }

    /// Takes the events to forget out of the store; the caller drops them after the lock.
    fn forget(&mut self) -> Vec<Arc<TraceEvent>> {
        let Some(bound) = self.bound else { return Vec::new() };
        let excess = self.events.len().saturating_sub(bound).min(self.taken.saturating_sub(self.first));
        self.first += excess;
        self.events.drain(..excess).collect()
    }

    /// Pointers to at most `max` events from `from` on (from the oldest kept if `from` was forgotten).
    fn read(&self, from: usize, max: usize) -> Vec<Arc<TraceEvent>> {
        let skip = from.saturating_sub(self.first);
        self.events.iter().skip(skip).take(max).cloned().collect()
    }
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

/// How many events `wait_for` looks at per turn of the lock.
const WAIT_BATCH: usize = 256;

impl Trace {
    pub fn new() -> Trace {
        let (len, _) = watch::channel(0);
        let inner = TraceInner { start: Instant::now(), store: Mutex::default(), len, copied: AtomicUsize::new(0) };
        Trace { inner: Arc::new(inner) }
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.inner.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Time since the trace started.
    pub fn now(&self) -> Duration {
        self.inner.start.elapsed()
    }

    pub fn record(&self, record: Record) {
        let at = self.now();
        let len = {
            let mut store = self.store();
            let index = store.len();
            tracing::debug!(element = %record.element, index, "trace {:?} {:?}", record.direction, summary(&record.payload));
            store.events.push_back(Arc::new(TraceEvent {
                index,
                at,
                element: record.element,
                direction: record.direction,
                transport: record.transport,
                local: record.local,
                remote: record.remote,
                flow: record.flow,
                payload: record.payload,
                fate: record.fate,
            }));
            store.len()
        };
        self.inner.len.send_replace(len);
    }

    /// How many events were ever recorded (forgotten ones included): the next event's index.
    pub fn len(&self) -> usize {
        *self.inner.len.borrow()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bounds memory for a long run with one consumer (`serve`'s printer): once the consumer
    /// has taken an event (`forget_before`) and more than `bound` newer ones exist, it is
    /// dropped. Nothing the consumer has not taken is ever dropped.
    pub fn forget_read_after(&self, bound: usize) {
        let forgotten = {
            let mut store = self.store();
            store.bound = Some(bound);
            store.forget()
        };
        drop(forgotten);
    }

    /// The consumer of a bounded trace has taken every event below `index`. Forgetting happens
    /// here, on the consumer's time, and the forgotten events are freed after the lock: `record`
    /// (the elements' path) only ever pushes.
    pub fn forget_before(&self, index: usize) {
        let forgotten = {
            let mut store = self.store();
            store.taken = store.taken.max(index);
            store.forget()
        };
        drop(forgotten);
    }

    /// The index of the oldest event still kept (0 unless a bound made the trace forget).
    pub fn first_kept(&self) -> usize {
        self.store().first
    }

    /// A copy of every event kept (every event so far, unless a bound was set).
    pub fn snapshot(&self) -> Vec<TraceEvent> {
        self.events_from(0)
    }

    /// Copies of the events from `from` on (from the oldest kept, if `from` was forgotten).
    pub fn events_from(&self, from: usize) -> Vec<TraceEvent> {
        let shared = self.shared_from(from, usize::MAX);
        self.inner.copied.fetch_add(shared.len(), Ordering::Relaxed);
        shared.iter().map(|e| TraceEvent::clone(e)).collect()
    }

    /// At most `max` events from `from` on, shared rather than copied: the cost is what is read.
    pub fn shared_from(&self, from: usize, max: usize) -> Vec<Arc<TraceEvent>> {
        self.store().read(from, max)
    }

    /// A reader from `from` on, for a consumer that follows the trace as it grows.
    pub fn reader(&self, from: usize) -> TraceReader {
        TraceReader { trace: self.clone(), next: from, changes: self.inner.len.subscribe() }
    }

    /// How many events readers deep-copied so far (see `TraceInner::copied`).
    pub fn copied(&self) -> usize {
        self.inner.copied.load(Ordering::Relaxed)
    }

    /// Waits until an event at index `>= from` satisfies `predicate`, or until `deadline`.
    /// Returns the first such event.
    pub async fn wait_for(
        &self,
        from: usize,
        deadline: Instant,
        mut predicate: impl FnMut(&TraceEvent) -> bool,
    ) -> Option<TraceEvent> {
        let mut reader = self.reader(from);
        loop {
            loop {
                let batch = reader.take(WAIT_BATCH);
                if batch.is_empty() {
                    break;
                }
                if let Some(found) = batch.iter().find(|e| predicate(e)) {
                    self.inner.copied.fetch_add(1, Ordering::Relaxed);
                    return Some(TraceEvent::clone(found));
                }
            }
            if !reader.changed_before(deadline).await {
                // One last look: an event may have landed just before the deadline.
                let rest = reader.take(usize::MAX);
                let found = rest.iter().find(|e| predicate(e))?;
                self.inner.copied.fetch_add(1, Ordering::Relaxed);
                return Some(TraceEvent::clone(found));
            }
        }
    }
}

/// Follows a trace from a position: each `take` costs the events it returns, and between takes
/// the reader holds nothing the recorder needs.
#[derive(Debug)]
pub struct TraceReader {
    trace: Trace,
    next: usize,
    changes: watch::Receiver<usize>,
}

impl TraceReader {
    /// The index of the next event this reader will return.
    pub fn position(&self) -> usize {
        self.next
    }

    /// At most `max` events recorded since the last take, shared (not copied). Events a bounded
    /// trace forgot are skipped: `position` then jumps past them.
    pub fn take(&mut self, max: usize) -> Vec<Arc<TraceEvent>> {
        let batch = self.trace.shared_from(self.next, max);
        if let Some(last) = batch.last() {
            self.next = last.index + 1;
        }
        batch
    }

    /// Waits until the trace grew past this reader's position or `deadline` passed; `false` at
    /// the deadline.
    pub async fn changed_before(&mut self, deadline: Instant) -> bool {
        loop {
            if *self.changes.borrow_and_update() > self.next {
                return true;
            }
            match tokio::time::timeout_at(deadline, self.changes.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) | Err(_) => return false,
            }
        }
    }

    /// Waits until the trace grew past this reader's position.
    pub async fn changed(&mut self) {
        loop {
            if *self.changes.borrow_and_update() > self.next {
                return;
            }
            if self.changes.changed().await.is_err() {
                // The sender lives in the trace this reader holds: never dropped first.
                std::future::pending::<()>().await;
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Records a harness action numbered `n` (tests that need events of any kind).
    pub(crate) fn action(trace: &Trace, n: usize) {
        let addr: SocketAddr = "127.100.0.1:5060".parse().unwrap();
        trace.record(Record {
            element: Element::RegistrarA,
            direction: Direction::Received,
            transport: Transport::Udp,
            local: addr,
            remote: addr,
            flow: None,
            payload: Payload::Action(format!("event {n}")),
            fate: Fate::Delivered,
        });
    }

    /// Issue 13: `serve`'s printer asked for the next event with `wait_for(next, ..)`, which
    /// copied the whole unprinted backlog for every line: quadratic. Now each call copies the
    /// one event it returns.
    #[tokio::test]
    async fn following_the_trace_one_event_at_a_time_copies_each_event_once() {
        let trace = Trace::new();
        let backlog = 2000;
        for n in 0..backlog {
            action(&trace, n);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut next = 0;
        while next < backlog {
            let event = trace.wait_for(next, deadline, |_| true).await.expect("an event is there");
            assert_eq!(event.index, next);
            next = event.index + 1;
        }
        assert_eq!(trace.copied(), backlog, "one copy per event read, not the backlog per event");
    }

    /// A reader that holds events (as a printer blocked on its output does) holds no lock:
    /// recording goes on, and the reader then gets exactly what it has not read.
    #[test]
    fn a_held_reader_never_blocks_record() {
        let trace = Trace::new();
        action(&trace, 0);
        let mut reader = trace.reader(0);
        let held = reader.take(usize::MAX);
        assert_eq!(held.len(), 1);
        for n in 1..1000 {
            action(&trace, n);
        }
        assert_eq!(trace.len(), 1000);
        let rest = reader.take(usize::MAX);
        assert_eq!(rest.first().map(|e| e.index), Some(1));
        assert_eq!(rest.len(), 999);
        assert_eq!(reader.position(), 1000);
        assert!(matches!(&held[0].payload, Payload::Action(a) if a == "event 0"), "what was held is intact");
        assert_eq!(trace.copied(), 0, "reading shares, it does not copy");
    }

    /// A bound forgets only what the consumer took, and keeps the bound's worth of those.
    #[test]
    fn a_bounded_trace_forgets_only_what_was_taken() {
        let trace = Trace::new();
        trace.forget_read_after(10);
        for n in 0..100 {
            action(&trace, n);
        }
        assert_eq!(trace.first_kept(), 0, "nothing taken, nothing forgotten");
        trace.forget_before(50);
        assert_eq!(trace.first_kept(), 50);
        trace.forget_before(100);
        assert_eq!(trace.first_kept(), 90, "the bound's worth stays");
        assert_eq!(trace.len(), 100, "indices go on");
        let mut late = trace.reader(0);
        assert_eq!(late.take(1)[0].index, 90, "a reader behind the bound starts at the oldest kept");
        for n in 100..200 {
            action(&trace, n);
        }
        assert_eq!(trace.first_kept(), 90, "recording only pushes");
        trace.forget_before(100);
        assert_eq!(trace.first_kept(), 100, "what was taken goes first, what was not stays");
    }

    /// Cases (no bound) keep every event, whatever is read.
    #[test]
    fn an_unbounded_trace_keeps_everything() {
        let trace = Trace::new();
        for n in 0..100 {
            action(&trace, n);
        }
        trace.forget_before(100);
        assert_eq!(trace.snapshot().len(), 100);
        assert_eq!(trace.first_kept(), 0);
    }
}
