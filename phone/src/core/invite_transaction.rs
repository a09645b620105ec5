//! What an INVITE client transaction does beyond a non-INVITE one: it ACKs a non-2xx final itself and stays Completed for Timer D, and it can be CANCELled by a non-INVITE transaction of its own (RFC 3261 §9.1, §17.1.1).

use std::time::Instant;

use sip::{CSeq, HeaderName, Message, Method};

use super::transaction::ClientTransactionTimer;
use super::{FlowId, RequestId};

/// An INVITE client transaction in Completed (RFC 3261 §17.1.1.2): its non-2xx final response
/// was ACKed, and each retransmission of that response gets the same ACK again until Timer D.
#[derive(Debug)]
pub(crate) struct CompletedInvite {
    pub request: RequestId,
    pub flow: FlowId,
    pub ack: Message,
    pub until: Instant,
}

/// The CANCEL of an INVITE that got a provisional response: a non-INVITE client transaction
/// (Timer E on UDP, Timer F) on the INVITE's flow with the INVITE's branch (RFC 3261 §9.1).
#[derive(Debug)]
pub(crate) struct CancelTransaction {
    pub wire: Message,
    pub timer: ClientTransactionTimer,
}

impl CancelTransaction {
    /// When its timer must next fire: a retransmission, or else giving up (Timer F).
    pub fn next_wake(&self) -> Option<Instant> {
        self.timer.next_retransmit().or(self.timer.deadline())
    }
}

/// The ACK a client INVITE transaction sends for a non-2xx final response (RFC 3261 §17.1.1.3).
pub(crate) fn ack_for_failure(invite: &Message, response: &Message) -> Message {
    let uri = match &invite.start {
        sip::StartLine::Request { uri, .. } => uri.clone(),
        sip::StartLine::Response { .. } => String::new(),
    };
    let mut ack = Message::request(Method::Ack, uri);
    if let Some(via) = invite.header_values(&HeaderName::Via).first() {
        ack.push_header(HeaderName::Via, via);
    }
    for route in invite.header_values(&HeaderName::Route) {
        ack.push_header(HeaderName::Route, route);
    }
    ack.push_header(HeaderName::MaxForwards, 70);
    copy_header(invite, &mut ack, HeaderName::From);
    copy_header(response, &mut ack, HeaderName::To);
    copy_header(invite, &mut ack, HeaderName::CallId);
    if let Ok(cseq) = invite.cseq() {
        ack.push_header(HeaderName::CSeq, CSeq { seq: cseq.seq, method: Method::Ack });
    }
    ack
}

/// A CANCEL for a pending INVITE: same Request-URI, top Via, Route, From, To, Call-ID and CSeq number (RFC 3261 §9.1).
pub(crate) fn cancel_for(invite: &Message) -> Message {
    let uri = match &invite.start {
        sip::StartLine::Request { uri, .. } => uri.clone(),
        sip::StartLine::Response { .. } => String::new(),
    };
    let mut cancel = Message::request(Method::Cancel, uri);
    if let Some(via) = invite.header_values(&HeaderName::Via).first() {
        cancel.push_header(HeaderName::Via, via);
    }
    for route in invite.header_values(&HeaderName::Route) {
        cancel.push_header(HeaderName::Route, route);
    }
    cancel.push_header(HeaderName::MaxForwards, 70);
    copy_header(invite, &mut cancel, HeaderName::From);
    copy_header(invite, &mut cancel, HeaderName::To);
    copy_header(invite, &mut cancel, HeaderName::CallId);
    if let Ok(cseq) = invite.cseq() {
        cancel.push_header(HeaderName::CSeq, CSeq { seq: cseq.seq, method: Method::Cancel });
    }
    cancel
}

fn copy_header(from: &Message, to: &mut Message, name: HeaderName) {
    if let Some(value) = from.header(&name) {
        to.push_header(name, value);
    }
}
