//! What counts as a failed server, so that the phone fails over only when a server failed, never because a user declined: RFC 3263 §4.3 (503, timeout, transport error) plus the vendor's 408 to a non-INVITE.
//!
//! - A transport error (ICMP port unreachable, a refused, reset or closed connection, a failed
//!   RFC 5626 flow), a DNS failure and no final response before the transaction timer: the
//!   server failed.
//! - 503 Service Unavailable to any request: the server failed (RFC 3263 §4.3); its
//!   Retry-After, if any, is honoured (RFC 3261 §21.5.4).
//! - 408 Request Timeout to a non-INVITE request (REGISTER, SUBSCRIBE, OPTIONS): the server
//!   failed; the vendor treats it as a timeout. A 408 to an INVITE means nobody answered.
//! - Every other final response is about the request or the user, not the server's health:
//!   500, 502, 504 and the rest of 5xx (RFC 3263 moves on only for 503), every 6xx (RFC 3261
//!   §21.6: a global answer about the user), 430 Flow Failed (RFC 5626 §11: a UA treats it as
//!   400).
//!
//! A failback probe is stricter in the other direction: the primary counts as back only when
//! it gives a final response that is neither 408 nor 5xx, since a 5xx to an OPTIONS means the
//! server (or, through an outbound proxy, the element behind it) does not serve.

use std::time::Duration;

use sip::{Message, Method};

use super::TransportFailure;
use super::routing::{Placement, Target};
use super::sender::FailureCause;
use crate::quirks::{Quirk, Quirks};

/// A request failed in a way that means its server is down: what the failover state machine needs to know.
#[derive(Debug, Clone)]
pub(crate) struct ServerDown {
    pub target: Target,
    /// The placement the request was sent with.
    pub used: Placement,
    pub cause: String,
    /// No answer at all (the vendor's "timeout" retry timers apply), rather than a refusal or an error.
    pub timed_out: bool,
    /// The phone's own hop failed (a transport error, or the next hop's name did not resolve):
    /// through an outbound proxy, the outbound proxy itself is what failed, not what lies behind it.
    pub hop_failed: bool,
    /// How long the server asked not to be sent anything (Retry-After, RFC 3261 §21.5.4).
    pub retry_after: Option<Duration>,
}

impl ServerDown {
    /// The request got no final response: `what` names the request and its server.
    pub fn no_response(target: Target, used: Placement, failure: &FailureCause, what: &str) -> ServerDown {
        ServerDown {
            target,
            used,
            cause: format!("{what}: {failure}"),
            timed_out: failure.is_timeout(),
            hop_failed: !failure.is_timeout(),
            retry_after: None,
        }
    }

    /// `failover-on-reset`: the connection to `next_hop` was reset or closed with no request on
    /// it, taken for a failure of the primary `target` is reached through.
    pub fn connection_lost(target: Target, used: Placement, next_hop: &str, failure: &TransportFailure) -> ServerDown {
        ServerDown {
            target,
            used,
            cause: format!("connection to {next_hop} lost with no request on it: {failure}"),
            timed_out: false,
            hop_failed: true,
            retry_after: None,
        }
    }

    /// The request got a final response that means the server failed (see [`response_means_server_failed`]).
    pub fn by_response(target: Target, used: Placement, response: &Message, what: &str) -> ServerDown {
        let status = response.status().unwrap_or(0);
        ServerDown {
            target,
            used,
            cause: format!("{what}: {status} {}", sip::reason_phrase(status)),
            timed_out: status == 408,
            hop_failed: false,
            retry_after: retry_after(response),
        }
    }
}

/// Whether a final response with `status` to a `method` request means its server failed.
/// `failover-on-decline` brings back the old reading: every 408, 5xx and 6xx.
pub(crate) fn response_means_server_failed(method: &Method, status: u16, quirks: &Quirks) -> bool {
    if quirks.has(Quirk::FailoverOnDecline) {
        return status == 408 || status >= 500;
    }
    match status {
        503 => true,
        408 => *method != Method::Invite,
        _ => false,
    }
}

/// Whether a final response to a failback probe shows the probed server serving again.
pub(crate) fn probe_found_server_back(status: u16) -> bool {
    status != 408 && !(500..600).contains(&status)
}

/// The Retry-After of a response, read through the typed view.
pub(crate) fn retry_after(response: &Message) -> Option<Duration> {
    match response.retry_after() {
        Ok(Some(retry_after)) => Some(Duration::from_secs(u64::from(retry_after.seconds))),
        Ok(None) => None,
        Err(error) => {
            tracing::debug!("unreadable Retry-After ignored: {error}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_503_or_a_408_to_a_non_invite_means_the_server_failed() {
        let none = Quirks::none();
        for method in [Method::Register, Method::Subscribe, Method::Options, Method::Invite] {
            assert!(response_means_server_failed(&method, 503, &none), "{method} 503");
            for status in [400, 403, 404, 423, 430, 480, 481, 486, 500, 502, 504, 600, 603] {
                assert!(!response_means_server_failed(&method, status, &none), "{method} {status}");
            }
        }
        for method in [Method::Register, Method::Subscribe, Method::Options] {
            assert!(response_means_server_failed(&method, 408, &none), "{method} 408");
        }
        assert!(!response_means_server_failed(&Method::Invite, 408, &none), "nobody answered the call");
    }

    #[test]
    fn a_probe_finds_its_server_back_on_anything_but_408_and_5xx() {
        for status in [200, 404, 405, 481, 603] {
            assert!(probe_found_server_back(status), "{status}");
        }
        for status in [408, 500, 502, 503, 504] {
            assert!(!probe_found_server_back(status), "{status}");
        }
    }
}
