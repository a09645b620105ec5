//! Calls placed by the XML push (`Dial:<number>`): INVITE to the active proxy with an SDP offer, ACK, and BYE after `refphone call duration` (CANCEL while still ringing).
//!
//! Deliberately simple: one audio offer (PCMU, PCMA, telephone-event) and no media. An INVITE
//! that finds the proxy down (timeout, transport error, 503) counts against the proxy dimension
//! like any other request (R1.1: INVITEs try the primary proxy first); a 408 or 6xx is the
//! callee's answer and moves nothing (see [`super::server_down`]). The call itself is not retried.

use std::collections::BTreeMap;
use std::time::Instant;

use sip::{CSeq, HeaderName, Message, Method, NameAddr, Scheme, SipUri};

use super::registration::MAX_FORWARDS;
use super::routing::{Failover, FailoverScheme, Placement, Role, Target};
use super::sender::{RequestEvent, RequestSender};
use super::server_down::response_means_server_failed;
use super::{Context, FlowId, RequestId, ServerDown, TimerId};
use crate::config::Destination;
use crate::quirks::Quirk;

/// The RTP port the SDP offer names (the vendor's default).
const RTP_PORT: u16 = 3000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// INVITE sent, nothing heard.
    Inviting,
    /// A provisional response arrived.
    Ringing,
    /// 2xx received and ACKed.
    Confirmed,
    /// BYE or CANCEL sent.
    Ending,
}

#[derive(Debug)]
struct Call {
    state: CallState,
    invite: Option<RequestId>,
    bye: Option<RequestId>,
    placement: Placement,
    next_hop: Destination,
    call_id: String,
    local: NameAddr,
    remote: NameAddr,
    remote_target: Option<String>,
    route_set: Vec<String>,
    invite_cseq: u32,
    /// The ACK to the 2xx and the flow it went on, re-sent for every retransmitted 2xx.
    ack: Option<(FlowId, Message)>,
    /// The hang-up timer fired before the call could be hung up.
    hang_up_when_possible: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Calls {
    next_call: u64,
    calls: BTreeMap<u64, Call>,
}

impl Calls {
    pub fn owns(&self, request: RequestId) -> bool {
        self.calls.values().any(|c| c.invite == Some(request) || c.bye == Some(request))
    }

    /// Calls `sip:<number>@<active proxy host>` through the active proxy (and outbound proxy).
    pub fn dial(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        failover: &Failover,
        number: &str,
    ) {
        let active = failover.active();
        let placement = if context.quirk(Quirk::CallToFailedProxy) {
            // The primary proxy (in row 2 the whole primary path), marked failed or not.
            let outbound =
                if failover.scheme() == FailoverScheme::AllTogether { Role::Primary } else { active.outbound };
            Placement { proxy: Role::Primary, outbound, ..active }
        } else {
            active
        };
        let (Some(proxy), Some(aor_host), Some(user)) = (
            failover.proxy(placement).cloned(),
            failover.aor_host(active).cloned(),
            context.settings.line.user_name.clone(),
        ) else {
            tracing::warn!("Dial:{number} ignored: no proxy or no user configured");
            return;
        };
        let hop = failover.hop(placement, &proxy);
        let remote = NameAddr::new(SipUri::new(Scheme::Sip, Some(number), proxy.host.clone(), None));
        let mut local = NameAddr::new(SipUri::new(Scheme::Sip, Some(&user), aor_host, None));
        local.display_name = context.settings.line.display_name.clone();
        local.params.set("tag", Some(&context.ids.tag()));
        let bind_ip = context.settings.bind_ip;
        let call_id = context.ids.call_id(bind_ip);
        let request_uri = remote.uri.to_string();

        let mut invite = Message::request(Method::Invite, &request_uri);
        if let Some(route) = &hop.route {
            invite.push_header(HeaderName::Route, NameAddr::new(route.clone()));
        }
        invite.push_header(HeaderName::MaxForwards, MAX_FORWARDS);
        invite.push_header(HeaderName::From, &local);
        invite.push_header(HeaderName::To, &remote);
        invite.push_header(HeaderName::CallId, &call_id);
        let invite_cseq = sender.next_cseq(&call_id);
        invite.push_header(HeaderName::CSeq, CSeq { seq: invite_cseq, method: Method::Invite });
        invite.push_header(
            HeaderName::Contact,
            NameAddr::new(context.contact_uri(super::outbound::ob_in_dialogs(context))),
        );
        invite.push_header(HeaderName::Allow, "INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY");
        invite.push_header(HeaderName::UserAgent, &context.settings.user_agent);
        let session = context.ids.session_id();
        invite.set_body("application/sdp", sdp_offer(bind_ip, session));
        let id = self.next_call;
        self.next_call += 1;
        tracing::info!("call {id}: dialing {request_uri} via {}", hop.next_hop);
        let request = sender.send(now, context, &hop.next_hop, invite);
        self.calls.insert(
            id,
            Call {
                state: CallState::Inviting,
                invite: Some(request),
                bye: None,
                placement,
                next_hop: hop.next_hop,
                call_id,
                local,
                remote,
                remote_target: None,
                route_set: Vec::new(),
                invite_cseq,
                ack: None,
                hang_up_when_possible: false,
            },
        );
        context.set_timer(TimerId::CallHangup(id), now + context.settings.phone_timers.call_duration);
    }

    pub fn on_request_event(
        &mut self,
        now: Instant,
        context: &mut Context,
        sender: &mut RequestSender,
        event: RequestEvent,
    ) -> Option<ServerDown> {
        let request = event.request();
        let (&id, call) = self.calls.iter_mut().find(|(_, c)| c.invite == Some(request) || c.bye == Some(request))?;
        if call.bye == Some(request) {
            if !matches!(event, RequestEvent::Provisional { .. }) {
                tracing::info!("call {id}: ended");
                self.end(sender, id);
            }
            return None;
        }
        match event {
            RequestEvent::Provisional { response, .. } => {
                if call.state == CallState::Inviting {
                    call.state = CallState::Ringing;
                }
                if let Ok(to) = response.to()
                    && to.tag().is_some()
                {
                    call.remote = to;
                }
                if call.hang_up_when_possible && sender.cancel(now, context, request) {
                    call.state = CallState::Ending;
                }
                None
            }
            RequestEvent::Final { response, flow, .. } => {
                call.invite = None;
                let status = response.status()?;
                if let Ok(cseq) = response.cseq() {
                    // The INVITE answered may be a challenged retry, numbered again: its ACK carries that number.
                    call.invite_cseq = cseq.seq;
                }
                if (200..300).contains(&status) {
                    if let Ok(to) = response.to() {
                        call.remote = to;
                    }
                    call.remote_target = response
                        .contacts()
                        .ok()
                        .and_then(|c| c.into_iter().find_map(|c| c.address().map(|a| a.uri.to_string())));
                    let mut routes: Vec<String> =
                        response.record_routes().unwrap_or_default().into_iter().map(|r| r.to_string()).collect();
                    routes.reverse();
                    call.route_set = routes;
                    let ack = call.in_dialog_request(Method::Ack, call.invite_cseq);
                    sender.send_on_flow(context, flow, ack.clone());
                    call.ack = Some((flow, ack));
                    tracing::info!("call {id}: answered ({status})");
                    let hang_up = call.hang_up_when_possible || call.state == CallState::Ending;
                    call.state = CallState::Confirmed;
                    if hang_up {
                        self.hang_up(now, context, sender, id);
                    }
                    return None;
                }
                tracing::info!("call {id}: failed with {status} {}", sip::reason_phrase(status));
                let placement = call.placement;
                self.end(sender, id);
                context.cancel_timer(TimerId::CallHangup(id));
                response_means_server_failed(&Method::Invite, status, &context.settings.quirks)
                    .then(|| ServerDown::by_response(Target::Proxy, placement, &response, "INVITE"))
            }
            RequestEvent::Failed { cause, .. } => {
                tracing::info!("call {id}: failed: {cause}");
                let placement = call.placement;
                self.end(sender, id);
                context.cancel_timer(TimerId::CallHangup(id));
                Some(ServerDown::no_response(Target::Proxy, placement, &cause, "INVITE"))
            }
        }
    }

    /// The call's time is up: BYE when it is confirmed, CANCEL while it rings.
    pub fn on_hangup_timer(&mut self, now: Instant, context: &mut Context, sender: &mut RequestSender, id: u64) {
        let Some(call) = self.calls.get_mut(&id) else { return };
        match call.state {
            CallState::Confirmed => self.hang_up(now, context, sender, id),
            CallState::Ringing => {
                if let Some(invite) = call.invite
                    && sender.cancel(now, context, invite)
                {
                    tracing::info!("call {id}: no answer; cancelling");
                    call.state = CallState::Ending;
                }
            }
            CallState::Inviting => call.hang_up_when_possible = true,
            CallState::Ending => {}
        }
    }

    fn hang_up(&mut self, now: Instant, context: &mut Context, sender: &mut RequestSender, id: u64) {
        let Some(call) = self.calls.get_mut(&id) else { return };
        let seq = sender.next_cseq(&call.call_id);
        let bye = call.in_dialog_request(Method::Bye, seq);
        let mut bye = bye;
        bye.push_header(HeaderName::UserAgent, &context.settings.user_agent);
        tracing::info!("call {id}: hanging up");
        call.bye = Some(sender.send(now, context, &call.next_hop.clone(), bye));
        call.state = CallState::Ending;
    }

    /// Forgets call `id`, and its Call-ID's numbering with it.
    fn end(&mut self, sender: &mut RequestSender, id: u64) {
        if let Some(call) = self.calls.remove(&id) {
            sender.release_call_id(&call.call_id);
        }
    }

    /// A 2xx to an INVITE arrived again after its transaction ended: ACK it again.
    pub fn on_stray_success(&mut self, context: &mut Context, sender: &mut RequestSender, response: &Message) {
        let Ok(call_id) = response.call_id() else { return };
        if let Some(call) = self.calls.values().find(|c| c.call_id == call_id)
            && let Some((flow, ack)) = &call.ack
        {
            sender.send_on_flow(context, *flow, ack.clone());
        }
    }

    /// The far end hung up: 200 for a call the phone has, 481 otherwise.
    pub fn on_bye(&mut self, context: &mut Context, sender: &mut RequestSender, bye: &Message) -> u16 {
        let (Ok(call_id), Ok(to)) = (bye.call_id(), bye.to()) else { return 400 };
        let found =
            self.calls.iter().find(|(_, c)| c.call_id == call_id && c.local.tag() == to.tag()).map(|(id, _)| *id);
        match found {
            Some(id) => {
                tracing::info!("call {id}: the far end hung up");
                self.end(sender, id);
                context.cancel_timer(TimerId::CallHangup(id));
                200
            }
            None => 481,
        }
    }
}

impl Call {
    /// An ACK or BYE in the call's dialog.
    fn in_dialog_request(&self, method: Method, seq: u32) -> Message {
        let uri = self.remote_target.clone().unwrap_or_else(|| self.remote.uri.to_string());
        let mut request = Message::request(method.clone(), uri);
        // RFC 3261 §12.2.1.1: the route set alone; the outbound proxy is its first entry when it
        // record-routed, and the request still leaves through `next_hop`.
        for route in &self.route_set {
            request.push_header(HeaderName::Route, route);
        }
        request.push_header(HeaderName::MaxForwards, MAX_FORWARDS);
        request.push_header(HeaderName::From, &self.local);
        request.push_header(HeaderName::To, &self.remote);
        request.push_header(HeaderName::CallId, &self.call_id);
        request.push_header(HeaderName::CSeq, CSeq { seq, method });
        request
    }
}

/// An audio offer: PCMU, PCMA and telephone-event on the phone's address (RFC 4566).
fn sdp_offer(address: std::net::IpAddr, session: u32) -> String {
    let family = if address.is_ipv4() { "IP4" } else { "IP6" };
    format!(
        "v=0\r\no=- {session} {session} IN {family} {address}\r\ns=refphone\r\nc=IN {family} {address}\r\nt=0 0\r\n\
         m=audio {RTP_PORT} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n"
    )
}
