//! A digest challenge answered (RFC 3261 §22.2): the request numbered again by its Call-ID's owner, and sent to the server that challenged it.

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
        let Some(request) = self.requests.get_mut(&id) else { return false };
        // The retry is a new request on its Call-ID (RFC 3261 §8.1.1.5, §22.2): the next number,
        // from the owner that numbers every other request on it. A Call-ID whose call or dialog
        // ended meanwhile (a BYE crossing the far end's) is not numbered again: no retry.
        let (Ok(call_id), Ok(mut cseq)) = (request.message.call_id(), request.message.cseq()) else { return false };
        let Some(seq) = self.cseq.take_existing(call_id) else { return false };
        if !self.digest.answer(context, id, &mut request.message, response, &mut request.challenges) {
            return false;
        }
        cseq.seq = seq;
        request.message.set_header(HeaderName::CSeq, cseq);
        true
    }
}
