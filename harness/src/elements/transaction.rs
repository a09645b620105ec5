//! The RFC 3261 §17 transaction layer every element shares: server transactions that absorb retransmitted requests and repeat the last response; bounded, with time as an input.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use sip::{Message, Method};
use tokio::time::Instant;

/// RFC 3261 §17.1.1.1 defaults; an element's config may say otherwise.
pub const DEFAULT_T1: Duration = Duration::from_millis(500);
pub const DEFAULT_T2: Duration = Duration::from_secs(4);

/// How many transactions of each kind an element keeps at most; the oldest go first.
const MAX_TRANSACTIONS: usize = 4096;

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
    /// A retransmission after an answer: this answer again.
    Repeat(Box<Message>),
}

#[derive(Debug)]
struct ServerEntry {
    last_response: Option<Message>,
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
            if !ended && self.order.len() <= MAX_TRANSACTIONS {
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
                Some(response) => ServerVerdict::Repeat(Box::new(response.clone())),
                None => ServerVerdict::Absorbed,
            };
        }
        self.entries.insert(key.clone(), ServerEntry { last_response: None, ends_at: now + self.lifetime });
        self.order.push_back(key);
        self.expire(now);
        ServerVerdict::New
    }

    /// The element sent `response` (its own, or one it relays): the answer to repeat.
    pub fn on_response_sent(&mut self, response: &Message) {
        if let Some(entry) = TransactionKey::of(response).and_then(|key| self.entries.get_mut(&key)) {
            entry.last_response = Some(response.clone());
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
        server.on_response_sent(&ok);
        assert_eq!(server.on_request(&register, now), ServerVerdict::Repeat(Box::new(ok)));
        // CANCEL shares the INVITE's branch but is a transaction of its own.
        assert_eq!(server.on_request(&request(Method::Cancel, "z9hG4bK1"), now), ServerVerdict::New);
        // Timer J: after 64*T1 the same branch is new again.
        assert_eq!(server.on_request(&register, now + DEFAULT_T1 * 64), ServerVerdict::New);
    }

    #[test]
    fn server_transactions_are_capped() {
        let now = Instant::now();
        let mut server = ServerTransactions::new(DEFAULT_T1);
        for n in 0..MAX_TRANSACTIONS + 10 {
            server.on_request(&request(Method::Options, &format!("z9hG4bK{n}")), now);
        }
        assert_eq!(server.len(), MAX_TRANSACTIONS, "the oldest went");
        let first = request(Method::Options, "z9hG4bK0");
        assert_eq!(server.on_request(&first, now), ServerVerdict::New, "forgotten, so new again");
    }
}
