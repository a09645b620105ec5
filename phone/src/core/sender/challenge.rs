//! A digest challenge answered (RFC 3261 §22.2): the request numbered again above every request in flight on its Call-ID, and sent to the server that challenged it.

use std::net::SocketAddr;
use std::time::Instant;

use sip::{HeaderName, Message};

use super::{RequestSender, Stage};
use crate::core::{Context, RequestId};

impl RequestSender {
    /// Sends a request answered with credentials to the server that challenged it (its nonce is
    /// that server's), the addresses not yet tried kept as the fallbacks: it finishes the request
    /// the DNS was asked for, so it asks nothing (with `requery-dns` too).
    pub(super) fn retry_where_challenged(&mut self, now: Instant, context: &mut Context, id: RequestId) {
        let Some(request) = self.requests.get_mut(&id) else { return };
        let Some(challenger) = request.remote else { return self.begin(now, context, id) };
        let untried: Vec<SocketAddr> =
            request.candidates[request.next_candidate.min(request.candidates.len())..].to_vec();
        request.candidates = std::iter::once(challenger).chain(untried).collect();
        request.next_candidate = 0;
        request.remote = None;
        request.tried.clear();
        request.last_unavailable = None;
        request.stage = Stage::Resolving;
        // The challenger is a candidate, so this cannot run out of addresses.
        let _ = self.try_next_candidate(now, context, id);
    }

    /// Prepares the request again with credentials answering `response`. Whether it will be resent.
    pub(super) fn answer_challenge(&mut self, context: &mut Context, id: RequestId, response: &Message) -> bool {
        // The retry takes a CSeq above every request in flight on its Call-ID: another request
        // may have been numbered after this one was sent (RFC 3261 §8.1.1.5, §10.2).
        let call_id = self.requests.get(&id).and_then(|r| r.message.call_id().ok().map(str::to_owned));
        let floor = call_id.as_deref().and_then(|c| self.highest_cseq_in_flight(c)).unwrap_or(0);
        let Some(request) = self.requests.get_mut(&id) else { return false };
        if !self.digest.answer(context, id, &mut request.message, response, &mut request.challenges) {
            return false;
        }
        if let Ok(mut cseq) = request.message.cseq() {
            cseq.seq = (cseq.seq + 1).max(floor + 1);
            request.message.set_header(HeaderName::CSeq, cseq);
        }
        true
    }
}
