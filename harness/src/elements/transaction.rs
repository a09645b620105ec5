//! The RFC 3261 §17 transaction layer every element shares: server transactions that absorb retransmitted requests and repeat the last response, client transactions that retransmit the element's own requests over UDP; bounded, with time as an input.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use sip::{Message, Method};
use tokio::time::Instant;

use super::Destination;

/// RFC 3261 §17.1.1.1 defaults; an element's config may say otherwise.
pub const DEFAULT_T1: Duration = Duration::from_millis(500);
pub const DEFAULT_T2: Duration = Duration::from_secs(4);

/// How many server transactions an element keeps at most; the oldest go first. A load test's
/// client retransmits what waited too long in the queue, and a retransmission the element no
/// longer knows is answered as new (a REGISTER's digest count then reads as a replay): at 20k
/// requests a second this keeps 1.6 s of them, past a UDP client's first two retransmissions,
/// in about 20 MB (a response is kept as its bytes).
const MAX_SERVER_TRANSACTIONS: usize = 32_768;
/// How many client transactions (NOTIFYs, relayed requests) an element keeps at most.
const MAX_CLIENT_TRANSACTIONS: usize = 4096;

/// RFC 3261 §17.2.3: a request matches a server transaction by top Via branch, sent-by and
/// method (an ACK is no transaction of its own here: it is never answered).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TransactionKey {
    branch: String,
    sent_by: String,
    method: String,
}

impl TransactionKey {
    /// The key of a request, or of the response to it (its CSeq method); `None` without an RFC
    /// 3261 branch, which cannot be matched.
    pub fn of(message: &Message) -> Option<TransactionKey> {
        let via = message.top_via().ok()?;
        let branch = via.branch().filter(|b| b.starts_with("z9hG4bK"))?.to_owned();
        let method = match message.method() {
            Some(method) => method.clone(),
            None => message.cseq().ok()?.method,
        };
        let port = via.port.map(|p| format!(":{p}")).unwrap_or_default();
        Some(TransactionKey { branch, sent_by: format!("{}{port}", via.host), method: method.to_string() })
    }
}

/// What a server transaction says to a request that arrives.
#[derive(Debug, PartialEq)]
pub(crate) enum ServerVerdict {
    /// A new request: hand it to the element.
    New,
    /// A retransmission while the element has not answered yet: absorbed (RFC 3261 §17.2.2 Trying).
    Absorbed,
    /// A retransmission after an answer: this answer again, as it was sent.
    Repeat(Arc<[u8]>),
}

#[derive(Debug)]
struct ServerEntry {
    last_response: Option<Arc<[u8]>>,
    ends_at: Instant,
}

/// Server transactions, kept 64*T1 (Timer J; Timer H's span for INVITE) after the request.
#[derive(Debug)]
pub(crate) struct ServerTransactions {
    lifetime: Duration,
    entries: HashMap<TransactionKey, ServerEntry>,
    /// Keys in order of arrival: every entry lives as long, so this is also the order they end.
    order: VecDeque<TransactionKey>,
}

impl ServerTransactions {
    pub fn new(t1: Duration) -> ServerTransactions {
        ServerTransactions { lifetime: t1 * 64, entries: HashMap::new(), order: VecDeque::new() }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(key) = self.order.front() {
            let ended = self.entries.get(key).is_none_or(|e| e.ends_at <= now);
            if !ended && self.order.len() <= MAX_SERVER_TRANSACTIONS {
                break;
            }
            if let Some(key) = self.order.pop_front() {
                self.entries.remove(&key);
            }
        }
    }

    /// A request arrived: new, or a retransmission of one already seen.
    pub fn on_request(&mut self, request: &Message, now: Instant) -> ServerVerdict {
        self.expire(now);
        if request.method() == Some(&Method::Ack) {
            return ServerVerdict::New;
        }
        let Some(key) = TransactionKey::of(request) else { return ServerVerdict::New };
        if let Some(entry) = self.entries.get(&key) {
            return match &entry.last_response {
                Some(response) => ServerVerdict::Repeat(response.clone()),
                None => ServerVerdict::Absorbed,
            };
        }
        self.entries.insert(key.clone(), ServerEntry { last_response: None, ends_at: now + self.lifetime });
        self.order.push_back(key);
        self.expire(now);
        ServerVerdict::New
    }

    /// The element sent `response` (its own, or one it relays) as `bytes`: the answer to repeat.
    pub fn on_response_sent(&mut self, response: &Message, bytes: &[u8]) {
        if let Some(entry) = TransactionKey::of(response).and_then(|key| self.entries.get_mut(&key)) {
            entry.last_response = Some(Arc::from(bytes));
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[derive(Debug)]
struct ClientEntry {
    to: Destination,
    request: Message,
    invite: bool,
    interval: Duration,
    next_at: Instant,
    ends_at: Instant,
}

/// Client transactions over UDP (RFC 3261 §17.1.1.2 Timer A/B, §17.1.2.2 Timer E/F): the request
/// again after T1, doubling (capped at T2 for non-INVITE, and T2 from the first provisional), until
/// a final response (a provisional, for INVITE) or 64*T1.
#[derive(Debug)]
pub(crate) struct ClientTransactions {
    t1: Duration,
    t2: Duration,
    entries: HashMap<TransactionKey, ClientEntry>,
    /// No entry is due before this (it may be earlier than the earliest left: an answer ends a
    /// transaction without a scan, and the wake-up then finds nothing due). The UDP task asks
    /// for it per datagram, so it is kept rather than searched for among thousands of relays.
    earliest: Option<Instant>,
}

impl ClientTransactions {
    pub fn new(t1: Duration, t2: Duration) -> ClientTransactions {
        ClientTransactions { t1, t2, entries: HashMap::new(), earliest: None }
    }

    /// The element sent `request` over UDP: it is retransmitted until answered.
    pub fn start(&mut self, to: Destination, request: &Message, now: Instant) {
        if request.method() == Some(&Method::Ack) {
            return;
        }
        let Some(key) = TransactionKey::of(request) else { return };
        if self.entries.len() >= MAX_CLIENT_TRANSACTIONS {
            // The one closest to giving up goes.
            if let Some(oldest) = self.entries.iter().min_by_key(|(_, e)| e.ends_at).map(|(k, _)| k.clone()) {
                self.entries.remove(&oldest);
            }
        }
        let invite = request.method() == Some(&Method::Invite);
        let entry = ClientEntry {
            to,
            request: request.clone(),
            invite,
            interval: self.t1,
            next_at: now + self.t1,
            ends_at: now + self.t1 * 64,
        };
        self.earliest = Some(self.earliest.map_or(entry.next_at, |at| at.min(entry.next_at)));
        self.entries.insert(key, entry);
    }

    /// A response arrived: a final one ends its transaction, a provisional one stops INVITE
    /// retransmissions and slows the others to T2.
    pub fn on_response(&mut self, response: &Message, now: Instant) {
        let Some(key) = TransactionKey::of(response) else { return };
        let provisional = response.status().is_some_and(|s| s < 200);
        match self.entries.get_mut(&key) {
            Some(entry) if provisional && !entry.invite => {
                entry.interval = self.t2;
                entry.next_at = entry.next_at.min(now + self.t2);
                self.earliest = Some(self.earliest.map_or(entry.next_at, |at| at.min(entry.next_at)));
            }
            Some(_) => {
                self.entries.remove(&key);
                if self.entries.is_empty() {
                    self.earliest = None;
                }
            }
            None => {}
        }
    }

    /// When the next retransmission (or the end of a transaction) may be due, if any.
    pub fn next_due(&self) -> Option<Instant> {
        self.earliest
    }

    fn find_earliest(&mut self) {
        self.earliest = self.entries.values().map(|e| e.next_at.min(e.ends_at)).min();
    }

    /// The requests to send again now; transactions past 64*T1 are dropped.
    pub fn due(&mut self, now: Instant) -> Vec<(Destination, Message)> {
        let before = self.entries.len();
        self.entries.retain(|_, e| e.ends_at > now);
        if self.entries.len() < before {
            tracing::debug!(gave_up = before - self.entries.len(), "client transactions unanswered at 64*T1");
        }
        let mut out = Vec::new();
        for entry in self.entries.values_mut().filter(|e| e.next_at <= now) {
            out.push((entry.to, entry.request.clone()));
            entry.interval = if entry.invite { entry.interval * 2 } else { (entry.interval * 2).min(self.t2) };
            entry.next_at = now + entry.interval;
        }
        self.find_earliest();
        out
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.earliest = None;
    }
}

#[cfg(test)]
mod tests {
    use sip::HeaderName;

    use super::*;

    fn request(method: Method, branch: &str) -> Message {
        let mut m = Message::request(method.clone(), "sip:x@lab.test");
        m.push_header(HeaderName::Via, format!("SIP/2.0/UDP 127.100.0.10:5060;branch={branch}"));
        m.push_header(HeaderName::CSeq, format!("1 {method}"));
        m
    }

    #[test]
    fn a_retransmission_is_absorbed_then_answered_with_the_last_response() {
        let now = Instant::now();
        let mut server = ServerTransactions::new(DEFAULT_T1);
        let register = request(Method::Register, "z9hG4bK1");
        assert_eq!(server.on_request(&register, now), ServerVerdict::New);
        assert_eq!(server.on_request(&register, now), ServerVerdict::Absorbed);
        let ok = Message::response_to(&register, 200, Some("t"));
        server.on_response_sent(&ok, &ok.to_bytes());
        assert_eq!(server.on_request(&register, now), ServerVerdict::Repeat(Arc::from(ok.to_bytes())));
        // CANCEL shares the INVITE's branch but is a transaction of its own.
        assert_eq!(server.on_request(&request(Method::Cancel, "z9hG4bK1"), now), ServerVerdict::New);
        // Timer J: after 64*T1 the same branch is new again.
        assert_eq!(server.on_request(&register, now + DEFAULT_T1 * 64), ServerVerdict::New);
    }

    #[test]
    fn server_transactions_are_capped() {
        let now = Instant::now();
        let mut server = ServerTransactions::new(DEFAULT_T1);
        for n in 0..MAX_SERVER_TRANSACTIONS + 10 {
            server.on_request(&request(Method::Options, &format!("z9hG4bK{n}")), now);
        }
        assert_eq!(server.len(), MAX_SERVER_TRANSACTIONS, "the oldest went");
        let first = request(Method::Options, "z9hG4bK0");
        assert_eq!(server.on_request(&first, now), ServerVerdict::New, "forgotten, so new again");
    }

    #[test]
    fn non_invite_retransmits_doubling_to_t2_until_64_t1() {
        let t0 = Instant::now();
        let mut client = ClientTransactions::new(DEFAULT_T1, DEFAULT_T2);
        let to = Destination::Udp("127.100.0.10:5060".parse().unwrap());
        client.start(to, &request(Method::Notify, "z9hG4bKn"), t0);
        let mut sends = vec![Duration::ZERO];
        while let Some(at) = client.next_due() {
            let sent = client.due(at);
            if !sent.is_empty() {
                sends.push(at - t0);
            }
        }
        let secs: Vec<f64> = sends.iter().map(Duration::as_secs_f64).collect();
        assert_eq!(
            secs,
            [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5],
            "11 sends (RFC 3261 §17.1.2.2)"
        );
    }

    #[test]
    fn a_final_response_ends_a_client_transaction() {
        let t0 = Instant::now();
        let mut client = ClientTransactions::new(DEFAULT_T1, DEFAULT_T2);
        let to = Destination::Udp("127.100.0.10:5060".parse().unwrap());
        let notify = request(Method::Notify, "z9hG4bKn");
        client.start(to, &notify, t0);
        client.on_response(&Message::response_to(&notify, 200, None), t0);
        assert_eq!(client.next_due(), None);
    }
}
