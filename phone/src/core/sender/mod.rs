//! Sends one request to a next hop: resolve it, open or reuse a flow, run the client transaction, answer digest challenges, try the next address (RFC 3263 §4.3), and report a final response or a failure.
//!
//! A request needs the DNS when it goes over UDP or opens a new TCP/TLS connection (BRIEF §2,
//! F5); a request to a hop that already has an open connection reuses it without a lookup (the
//! quirk `requery-dns` looks up even then). The shell's resolver keeps answers only for their
//! TTL, so asking again is cheap and never stale. When the open connection fails the request
//! (503, timeout, transport error), the name is looked up and the request goes on to the
//! addresses it has not tried yet, as RFC 3263 §4.3 wants.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use sip::{Header, HeaderName, Host, Message, Method, Via};

use self::cseq::CSeqNumbers;
use super::digest::{ChallengesAnswered, DigestSessions};
use super::invite_transaction::{CancelTransaction, CompletedInvite, ack_for_failure, cancel_for};
use super::transaction::{ClientTransactionTimer, TransactionKind, TransactionState, timer_d};
use super::{Context, FlowId, Lookup, Output, RequestId, TimerId, Transport, TransportFailure};
use crate::config::{DEFAULT_SIP_PORT, Destination};

mod challenge;
mod cseq;

/// Why a request got no final response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureCause {
    /// The DNS gave no usable address.
    Unresolvable { lookup: String, detail: String },
    /// No final response before the transaction timer ran out.
    Timeout { remote: SocketAddr },
    /// The flow failed: ICMP port unreachable, a reset, or it could not be opened.
    Transport { remote: SocketAddr, failure: TransportFailure },
}

impl FailureCause {
    /// Whether the server simply did not answer (the vendor's "timeout" retry timers apply).
    pub fn is_timeout(&self) -> bool {
        matches!(self, FailureCause::Timeout { .. })
    }
}

impl fmt::Display for FailureCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureCause::Unresolvable { lookup, detail } => write!(f, "DNS lookup of {lookup} failed: {detail}"),
            FailureCause::Timeout { remote } => write!(f, "no response from {remote}: transaction timed out"),
            FailureCause::Transport { remote, failure } => write!(f, "{remote}: {failure}"),
        }
    }
}

/// What happened to a request, for its owner.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RequestEvent {
    /// A provisional response (INVITE owners care; others ignore it).
    Provisional { request: RequestId, response: Message },
    /// The final response; the request was last sent on `flow`.
    Final { request: RequestId, response: Message, flow: FlowId },
    /// No final response.
    Failed { request: RequestId, cause: FailureCause },
}

impl RequestEvent {
    pub fn request(&self) -> RequestId {
        match self {
            RequestEvent::Provisional { request, .. }
            | RequestEvent::Final { request, .. }
            | RequestEvent::Failed { request, .. } => *request,
        }
    }
}

/// What a response arriving on a flow turned out to be.
#[derive(Debug)]
pub(crate) enum ResponseOutcome {
    /// Matched a request: its owner must hear it.
    Event(RequestEvent),
    /// A 2xx to an INVITE whose transaction already ended (a retransmission): the call re-ACKs it.
    StrayInviteSuccess(Message),
    /// Nothing to do.
    Ignored,
}

/// A flow to one remote address over one transport; `local` is known once it is open.
#[derive(Debug)]
struct Flow {
    remote: SocketAddr,
    transport: Transport,
    local: Option<SocketAddr>,
}

#[derive(Debug)]
enum Stage {
    Resolving,
    /// One attempt ended; the next has not begun.
    BetweenAttempts,
    /// Waiting for the flow to open.
    Connecting {
        flow: FlowId,
    },
    /// A client transaction is running.
    Transacting(Box<RunningTransaction>),
}

/// The client transaction a request is in: on `flow`, with `wire` the request as sent, Via included.
#[derive(Debug)]
struct RunningTransaction {
    flow: FlowId,
    branch: String,
    timer: ClientTransactionTimer,
    wire: Message,
    /// An INVITE's CANCEL, while its own transaction runs.
    cancel: Option<CancelTransaction>,
    /// Whether the INVITE was CANCELled: then its deadline ends it as a 487 would, not as a failure.
    cancelled: bool,
}

#[derive(Debug)]
struct OutgoingRequest {
    /// The request without its Via, which each transaction adds with its own branch.
    message: Message,
    next_hop: Destination,
    transport: Transport,
    lookup_name: String,
    /// Addresses to try in order, and the index of the next one.
    candidates: Vec<SocketAddr>,
    next_candidate: usize,
    /// The address of the current attempt.
    remote: Option<SocketAddr>,
    /// Every address tried since the request (or its answer to a challenge) began: never twice.
    tried: Vec<SocketAddr>,
    /// Whether the DNS was asked for `candidates`. When it was not (the hop's open connection,
    /// or an IP address), an attempt that fails on that connection asks it then.
    looked_up: bool,
    last_failure: Option<FailureCause>,
    /// A 503 from the last address, kept in case no other address answers better.
    last_unavailable: Option<(Message, FlowId)>,
    challenges: ChallengesAnswered,
    stage: Stage,
}

impl OutgoingRequest {
    fn kind(&self) -> TransactionKind {
        if self.message.method() == Some(&Method::Invite) {
            TransactionKind::Invite
        } else {
            TransactionKind::NonInvite
        }
    }
}

/// Every request in flight and every flow the phone holds.
#[derive(Debug, Default)]
pub(crate) struct RequestSender {
    next_request: u64,
    next_flow: u64,
    requests: BTreeMap<RequestId, OutgoingRequest>,
    /// Branch of each running transaction, to match responses (RFC 3261 §17.1.3).
    branches: HashMap<String, RequestId>,
    flows: BTreeMap<FlowId, Flow>,
    /// TCP/TLS connections by the hop they were opened for: a request to that hop reuses the
    /// connection without asking the DNS (BRIEF §2).
    stream_hops: HashMap<(Destination, Transport), FlowId>,
    /// INVITE transactions in Completed, by branch.
    completed_invites: HashMap<String, CompletedInvite>,
    /// The challenge last answered on each Call-ID, reused for its next requests.
    digest: DigestSessions,
    /// Every Call-ID's CSeq numbers: the only place they are decided.
    cseq: CSeqNumbers,
}

impl RequestSender {
    /// The CSeq number of a new request on `call_id`, taken from the Call-ID's one owner (an
    /// answered challenge's retry takes its number there too).
    pub fn next_cseq(&mut self, call_id: &str) -> u32 {
        self.cseq.take(call_id)
    }

    /// Forgets the numbering of a Call-ID whose dialog ended.
    pub fn release_call_id(&mut self, call_id: &str) {
        self.cseq.release(call_id);
    }

    /// Starts sending `message` (a request without Via) to `next_hop`; its outcome comes back as [`RequestEvent`]s.
    pub fn send(
        &mut self,
        now: Instant,
        context: &mut Context,
        next_hop: &Destination,
        mut message: Message,
    ) -> RequestId {
        self.digest.authorize_preemptively(context, &mut message);
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let transport = context.settings.transport;
        let request = OutgoingRequest {
            message,
            next_hop: next_hop.clone(),
            transport,
            lookup_name: next_hop.to_string(),
            candidates: Vec::new(),
            next_candidate: 0,
            remote: None,
            tried: Vec::new(),
            looked_up: false,
            last_failure: None,
            last_unavailable: None,
            challenges: ChallengesAnswered::default(),
            stage: Stage::Resolving,
        };
        self.requests.insert(id, request);
        self.begin(now, context, id);
        id
    }

    /// Finds the addresses of the request's next hop (or its open connection) and starts the first attempt.
    fn begin(&mut self, now: Instant, context: &mut Context, id: RequestId) {
        let Some(request) = self.requests.get_mut(&id) else { return };
        request.candidates.clear();
        request.next_candidate = 0;
        request.remote = None;
        request.tried.clear();
        request.looked_up = false;
        request.last_unavailable = None;
        request.stage = Stage::Resolving;
        let transport = request.transport;
        let hop = request.next_hop.clone();
        let requery = context.quirk(crate::quirks::Quirk::RequeryDns) && hop.host.ip().is_none();
        if transport.is_reliable()
            && !requery
            && let Some(&flow) = self.stream_hops.get(&(hop.clone(), transport))
            && let Some(entry) = self.flows.get(&flow)
        {
            request.candidates.push(entry.remote);
            let _ = self.try_next_candidate(now, context, id);
            return;
        }
        if let Some(lookup) = lookup_for(&hop, transport) {
            request.looked_up = true;
            context.push(Output::Resolve { request: id, lookup });
        } else if let Some(ip) = hop.host.ip() {
            request.candidates.push(SocketAddr::new(ip, port_for(&hop, transport)));
            // The one candidate cannot have failed yet, so no event comes back here.
            let _ = self.try_next_candidate(now, context, id);
        }
    }

    pub fn on_resolved(
        &mut self,
        now: Instant,
        context: &mut Context,
        id: RequestId,
        answer: Result<Vec<SocketAddr>, String>,
    ) -> Vec<RequestEvent> {
        let Some(request) = self.requests.get_mut(&id) else { return Vec::new() };
        if !matches!(request.stage, Stage::Resolving) {
            return Vec::new();
        }
        match answer {
            Ok(addresses) if !addresses.is_empty() => {
                tracing::debug!("{} resolved to {addresses:?}", request.lookup_name);
                // After a failed attempt on the hop's open connection: the addresses not tried yet.
                request.candidates = addresses.into_iter().filter(|a| !request.tried.contains(a)).collect();
                request.next_candidate = 0;
                self.try_next_candidate(now, context, id).into_iter().collect()
            }
            _ if request.last_failure.is_some() || request.last_unavailable.is_some() => {
                // The lookup after a failed attempt found nothing more: the attempt's outcome stands.
                request.candidates.clear();
                request.next_candidate = 0;
                self.try_next_candidate(now, context, id).into_iter().collect()
            }
            other => {
                let detail = other.err().unwrap_or_else(|| "no addresses".into());
                let lookup = request.lookup_name.clone();
                self.requests.remove(&id);
                vec![RequestEvent::Failed { request: id, cause: FailureCause::Unresolvable { lookup, detail } }]
            }
        }
    }

    pub fn on_flow_opened(
        &mut self,
        now: Instant,
        context: &mut Context,
        flow: FlowId,
        local: SocketAddr,
    ) -> Vec<RequestEvent> {
        let Some(entry) = self.flows.get_mut(&flow) else { return Vec::new() };
        tracing::debug!("flow {} -> {} ({}) opened from {local}", flow.0, entry.remote, entry.transport);
        entry.local = Some(local);
        let waiting: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, r)| matches!(r.stage, Stage::Connecting { flow: f } if f == flow))
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            self.start_transaction(now, context, id, flow, local);
        }
        Vec::new()
    }

    /// Fails the current attempt of every request on `flow`; each moves on to its next address or
    /// fails. A TCP/TLS flow is gone after an error; a UDP flow stays open (ICMP is transient).
    pub fn on_transport_error(
        &mut self,
        now: Instant,
        context: &mut Context,
        flow: FlowId,
        failure: TransportFailure,
    ) -> Vec<RequestEvent> {
        let Some(entry) = self.flows.get(&flow) else { return Vec::new() };
        let remote = entry.remote;
        if entry.local.is_none() || entry.transport.is_reliable() {
            self.forget_flow(flow);
        }
        tracing::debug!("flow {} -> {remote} failed: {failure}", flow.0);
        let affected: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, r)| match &r.stage {
                Stage::Connecting { flow: f } => *f == flow,
                Stage::Transacting(running) => running.flow == flow,
                Stage::Resolving | Stage::BetweenAttempts => false,
            })
            .map(|(id, _)| *id)
            .collect();
        affected
            .into_iter()
            .filter_map(|id| {
                self.fail_attempt(now, context, id, FailureCause::Transport { remote, failure: failure.clone() })
            })
            .collect()
    }

    /// The core decided `flow` failed (no pong): close it and fail what runs on it.
    pub fn close_flow(
        &mut self,
        now: Instant,
        context: &mut Context,
        flow: FlowId,
        failure: TransportFailure,
    ) -> Vec<RequestEvent> {
        if !self.flows.contains_key(&flow) {
            return Vec::new();
        }
        context.push(Output::CloseFlow { flow });
        let is_stream = self.flows.get(&flow).is_some_and(|f| f.transport.is_reliable());
        let events = self.on_transport_error(now, context, flow, failure);
        if !is_stream {
            // A UDP flow the core gave up on is replaced by a fresh socket next time.
            self.forget_flow(flow);
        }
        events
    }

    fn forget_flow(&mut self, flow: FlowId) {
        self.flows.remove(&flow);
        self.stream_hops.retain(|_, f| *f != flow);
    }

    /// A response arrived; a final one ends its transaction.
    pub fn on_response(&mut self, now: Instant, context: &mut Context, response: Message) -> ResponseOutcome {
        let Some(status) = response.status() else { return ResponseOutcome::Ignored };
        let branch = match response.top_via() {
            Ok(via) => via.branch().map(str::to_owned),
            Err(error) => {
                tracing::warn!("response {status} with an unreadable Via ignored: {error}");
                return ResponseOutcome::Ignored;
            }
        };
        let cseq_method = response.cseq().ok().map(|c| c.method);
        if let Some(completed) = branch.as_ref().and_then(|b| self.completed_invites.get(b))
            && status >= 300
            && cseq_method == Some(Method::Invite)
        {
            if now < completed.until {
                tracing::debug!("{}: {status} retransmitted; ACKing it again", completed.request);
                context.push(Output::Send { flow: completed.flow, message: completed.ack.clone() });
            }
            return ResponseOutcome::Ignored;
        }
        let Some(&id) = branch.as_ref().and_then(|b| self.branches.get(b)) else {
            if (200..300).contains(&status) && cseq_method == Some(Method::Invite) {
                return ResponseOutcome::StrayInviteSuccess(response);
            }
            tracing::debug!("response {status} matches no transaction (branch {branch:?}); ignored");
            return ResponseOutcome::Ignored;
        };
        let Some(request) = self.requests.get_mut(&id) else { return ResponseOutcome::Ignored };
        let kind = request.kind();
        let Stage::Transacting(running) = &mut request.stage else { return ResponseOutcome::Ignored };
        if cseq_method == Some(Method::Cancel) && running.cancel.is_some() {
            // A CANCEL shares its INVITE's branch: its response ends (or slows) the CANCEL's own transaction.
            if status >= 200 {
                running.cancel = None;
                context.cancel_timer(TimerId::Cancel(id));
            } else if let Some(cancel) = &mut running.cancel {
                cancel.timer.on_provisional();
            }
            return ResponseOutcome::Ignored;
        }
        if cseq_method.as_ref() != request.message.method() {
            tracing::debug!("response {status} has the branch of {id} but not its CSeq method; ignored");
            return ResponseOutcome::Ignored;
        }
        if status < 200 {
            running.timer.on_provisional();
            if running.timer.deadline().is_none() {
                context.cancel_timer(TimerId::TransactionTimeout(id));
            }
            if running.timer.next_retransmit().is_none() {
                context.cancel_timer(TimerId::Retransmit(id));
            }
            return ResponseOutcome::Event(RequestEvent::Provisional { request: id, response });
        }
        let flow = running.flow;
        if status >= 300 && kind == TransactionKind::Invite {
            // RFC 3261 §17.1.1.3: the transaction itself ACKs a non-2xx final response.
            let ack = ack_for_failure(&running.wire, &response);
            context.push(Output::Send { flow, message: ack.clone() });
            let linger = timer_d(request.transport.is_reliable(), &context.settings.timers);
            if !linger.is_zero() {
                let until = now + linger;
                let completed = CompletedInvite { request: id, flow, ack, until };
                self.completed_invites.insert(running.branch.clone(), completed);
                context.set_timer(TimerId::InviteCompleted(id), until);
            }
        }
        self.end_transaction(context, id);
        if matches!(status, 401 | 407) && self.answer_challenge(context, id, &response) {
            self.retry_where_challenged(now, context, id);
            return ResponseOutcome::Ignored;
        }
        if status == 503 && self.can_try_another_address(id) {
            // RFC 3263 §4.3: a 503 moves the request on to the next address.
            if let Some(request) = self.requests.get_mut(&id) {
                tracing::debug!("{id}: 503 from {:?}; trying the next address", request.remote);
                request.last_unavailable = Some((response, flow));
            }
            return match self.try_next_candidate(now, context, id) {
                Some(event) => ResponseOutcome::Event(event),
                None => ResponseOutcome::Ignored,
            };
        }
        self.requests.remove(&id);
        ResponseOutcome::Event(RequestEvent::Final { request: id, response, flow })
    }

    pub fn on_timer(&mut self, now: Instant, context: &mut Context, timer_id: TimerId) -> Vec<RequestEvent> {
        match timer_id {
            TimerId::Retransmit(id) => {
                if let Some(request) = self.requests.get_mut(&id)
                    && let Stage::Transacting(running) = &mut request.stage
                    && running.timer.on_retransmit_timer(now)
                {
                    context.push(Output::Send { flow: running.flow, message: running.wire.clone() });
                    if let Some(next) = running.timer.next_retransmit() {
                        context.set_timer(TimerId::Retransmit(id), next);
                    }
                }
                Vec::new()
            }
            TimerId::Cancel(id) => {
                if let Some(request) = self.requests.get_mut(&id)
                    && let Stage::Transacting(running) = &mut request.stage
                    && let Some(cancel) = &mut running.cancel
                {
                    if cancel.timer.has_timed_out(now) {
                        tracing::info!("{id}: CANCEL unanswered within its transaction timer");
                        running.cancel = None;
                    } else {
                        if cancel.timer.on_retransmit_timer(now) {
                            context.push(Output::Send { flow: running.flow, message: cancel.wire.clone() });
                        }
                        if let Some(at) = cancel.next_wake() {
                            context.set_timer(TimerId::Cancel(id), at);
                        }
                    }
                }
                Vec::new()
            }
            TimerId::TransactionTimeout(id) => {
                if let Some(request) = self.requests.get(&id)
                    && let Stage::Transacting(running) = &request.stage
                    && running.cancelled
                    && running.timer.has_timed_out(now)
                {
                    // RFC 3261 §9.1: no final response within 64*T1 of the CANCEL: the INVITE
                    // transaction is over, as cancelled; the owner hears a 487 of the phone's own.
                    tracing::info!("{id}: no final response 64*T1 after the CANCEL; the INVITE transaction is over");
                    let (response, flow) = (Message::response_to(&running.wire, 487, None), running.flow);
                    self.end_transaction(context, id);
                    self.requests.remove(&id);
                    return vec![RequestEvent::Final { request: id, response, flow }];
                }
                let timed_out = self.requests.get(&id).and_then(|r| match &r.stage {
                    Stage::Transacting(running) if running.timer.has_timed_out(now) => {
                        r.remote.map(|remote| (remote, running.flow))
                    }
                    _ => None,
                });
                let Some((remote, flow)) = timed_out else { return Vec::new() };
                let mut events: Vec<RequestEvent> =
                    self.fail_attempt(now, context, id, FailureCause::Timeout { remote }).into_iter().collect();
                // A flow nothing answers on is not trusted again: the next request opens a new
                // one (a new connection, or a new source port that a stalled NAT binding lets through).
                let still_used = self.requests.values().any(|r| match &r.stage {
                    Stage::Connecting { flow: f } => *f == flow,
                    Stage::Transacting(running) => running.flow == flow,
                    _ => false,
                });
                if !still_used {
                    tracing::debug!("flow {} -> {remote}: no answer within the transaction timer; closing it", flow.0);
                    events.extend(self.close_flow(
                        now,
                        context,
                        flow,
                        TransportFailure::Other("no answer on the flow".into()),
                    ));
                }
                events
            }
            TimerId::InviteCompleted(id) => {
                self.completed_invites.retain(|_, completed| completed.until > now);
                // A challenge answered meanwhile may have left a later Completed transaction of the same request.
                let later = self.completed_invites.values().filter(|c| c.request == id).map(|c| c.until).min();
                if let Some(until) = later {
                    context.set_timer(TimerId::InviteCompleted(id), until);
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// Sends `message` (an ACK to a 2xx) on `flow` outside any transaction, with a fresh Via.
    pub fn send_on_flow(&mut self, context: &mut Context, flow: FlowId, mut message: Message) -> bool {
        let Some(entry) = self.flows.get(&flow) else { return false };
        let Some(local) = entry.local else { return false };
        let branch = context.ids.branch();
        message.headers.insert(0, Header { name: HeaderName::Via, value: via_for(entry.transport, local, &branch) });
        context.push(Output::Send { flow, message });
        true
    }

    /// Sends a CANCEL for the INVITE `id` once it got a provisional response (RFC 3261 §9.1), as
    /// a non-INVITE client transaction of its own; the INVITE then ends within 64*T1 whatever
    /// it hears. Whether one was sent.
    pub fn cancel(&mut self, now: Instant, context: &mut Context, id: RequestId) -> bool {
        let Some(request) = self.requests.get_mut(&id) else { return false };
        let reliable = request.transport.is_reliable();
        let Stage::Transacting(running) = &mut request.stage else { return false };
        if running.timer.state() != TransactionState::Proceeding || running.cancelled {
            return false;
        }
        let timers = context.settings.timers;
        let cancel = CancelTransaction {
            wire: cancel_for(&running.wire),
            timer: ClientTransactionTimer::start_of(TransactionKind::NonInvite, reliable, now, &timers),
        };
        context.push(Output::Send { flow: running.flow, message: cancel.wire.clone() });
        if let Some(at) = cancel.next_wake() {
            context.set_timer(TimerId::Cancel(id), at);
        }
        running.cancel = Some(cancel);
        running.cancelled = true;
        running.timer.give_up_at(now + timers.t1 * 64);
        if let Some(deadline) = running.timer.deadline() {
            context.set_timer(TimerId::TransactionTimeout(id), deadline);
        }
        true
    }

    /// Forgets a request its owner no longer wants: no retransmissions, no outcome.
    pub fn abandon(&mut self, context: &mut Context, id: RequestId) {
        self.end_transaction(context, id);
        self.requests.remove(&id);
    }

    /// The remote address and transport of `flow`, if it is known.
    pub fn flow_remote(&self, flow: FlowId) -> Option<(SocketAddr, Transport)> {
        self.flows.get(&flow).map(|f| (f.remote, f.transport))
    }

    /// The next hop a TCP/TLS connection was opened for and is still used for, if any.
    pub fn stream_hop_of(&self, flow: FlowId) -> Option<Destination> {
        self.stream_hops.iter().find(|(_, f)| **f == flow).map(|((hop, _), _)| hop.clone())
    }

    /// The phone's own address on `flow` (the Via sent-by), once it is open.
    pub fn flow_local(&self, flow: FlowId) -> Option<SocketAddr> {
        self.flows.get(&flow).and_then(|f| f.local)
    }

    /// Forgets every flow and request, for a restart of the SIP stack; closes the flows.
    pub fn reset(&mut self, context: &mut Context) {
        let flows: Vec<FlowId> = self.flows.keys().copied().collect();
        for flow in flows {
            context.push(Output::CloseFlow { flow });
        }
        let requests: Vec<RequestId> = self.requests.keys().copied().collect();
        for id in requests {
            self.abandon(context, id);
        }
        for completed in std::mem::take(&mut self.completed_invites).into_values() {
            context.cancel_timer(TimerId::InviteCompleted(completed.request));
        }
        self.flows.clear();
        self.stream_hops.clear();
        self.branches.clear();
    }

    /// Whether `id` has an address left to try, or may ask the DNS for more.
    fn can_try_another_address(&self, id: RequestId) -> bool {
        self.requests.get(&id).is_some_and(|r| {
            r.next_candidate < r.candidates.len() || (!r.looked_up && lookup_for(&r.next_hop, r.transport).is_some())
        })
    }

    /// Moves `id` to its next candidate address: reuses an open flow, waits for an opening one, or opens one.
    /// When no candidate is left, the request has failed with its last failure (or ends with its last 503).
    fn try_next_candidate(&mut self, now: Instant, context: &mut Context, id: RequestId) -> Option<RequestEvent> {
        let request = self.requests.get_mut(&id)?;
        let Some(&remote) = request.candidates.get(request.next_candidate) else {
            if !request.looked_up
                && let Some(lookup) = lookup_for(&request.next_hop, request.transport)
            {
                // The hop's open connection failed the request: the DNS names the next target.
                tracing::debug!(
                    "{id}: its connection to {} failed it; asking the DNS for the next target",
                    request.lookup_name
                );
                request.looked_up = true;
                request.stage = Stage::Resolving;
                context.push(Output::Resolve { request: id, lookup });
                return None;
            }
            if let Some((response, flow)) = request.last_unavailable.take() {
                self.requests.remove(&id);
                return Some(RequestEvent::Final { request: id, response, flow });
            }
            let cause = request.last_failure.take().unwrap_or_else(|| FailureCause::Unresolvable {
                lookup: request.lookup_name.clone(),
                detail: "no addresses".into(),
            });
            self.requests.remove(&id);
            return Some(RequestEvent::Failed { request: id, cause });
        };
        request.next_candidate += 1;
        request.remote = Some(remote);
        request.tried.push(remote);
        let transport = request.transport;
        let hop = request.next_hop.clone();
        let existing = self
            .flows
            .iter()
            .find(|(_, f)| f.remote == remote && f.transport == transport)
            .map(|(id, f)| (*id, f.local));
        let (flow, local) = match existing {
            Some(found) => found,
            None => {
                let flow = FlowId(self.next_flow);
                self.next_flow += 1;
                self.flows.insert(flow, Flow { remote, transport, local: None });
                let server_name = match &hop.host {
                    Host::Domain(name) => Some(name.clone()),
                    _ => None,
                };
                context.push(Output::OpenFlow { flow, remote, transport, server_name });
                (flow, None)
            }
        };
        if transport.is_reliable() {
            self.stream_hops.insert((hop, transport), flow);
        }
        let request = self.requests.get_mut(&id)?;
        request.stage = Stage::Connecting { flow };
        if let Some(local) = local {
            self.start_transaction(now, context, id, flow, local);
        }
        None
    }

    /// Sends the request on an open flow as a new client transaction with a fresh branch.
    fn start_transaction(
        &mut self,
        now: Instant,
        context: &mut Context,
        id: RequestId,
        flow: FlowId,
        local: SocketAddr,
    ) {
        let Some(request) = self.requests.get_mut(&id) else { return };
        let branch = context.ids.branch();
        let mut wire = request.message.clone();
        wire.headers.insert(0, Header { name: HeaderName::Via, value: via_for(request.transport, local, &branch) });
        super::contact::place(context, &mut wire, request.transport, local);
        let mut timers = context.settings.timers;
        if context.quirk(crate::quirks::Quirk::EagerFailover) {
            // The first retransmission never goes: the transaction gives up after T1.
            timers.transaction_timer = timers.t1;
        }
        let timer = ClientTransactionTimer::start_of(request.kind(), request.transport.is_reliable(), now, &timers);
        if let Some(at) = timer.next_retransmit() {
            context.set_timer(TimerId::Retransmit(id), at);
        }
        if let Some(deadline) = timer.deadline() {
            context.set_timer(TimerId::TransactionTimeout(id), deadline);
        }
        context.push(Output::Send { flow, message: wire.clone() });
        self.branches.insert(branch.clone(), id);
        request.stage = Stage::Transacting(Box::new(RunningTransaction {
            flow,
            branch,
            timer,
            wire,
            cancel: None,
            cancelled: false,
        }));
    }

    /// Ends the current attempt with `cause` and moves on to the next candidate.
    fn fail_attempt(
        &mut self,
        now: Instant,
        context: &mut Context,
        id: RequestId,
        cause: FailureCause,
    ) -> Option<RequestEvent> {
        self.end_transaction(context, id);
        let request = self.requests.get_mut(&id)?;
        tracing::debug!("{id} attempt failed: {cause}");
        request.last_failure = Some(cause);
        self.try_next_candidate(now, context, id)
    }

    /// Forgets the running transaction of `id`, if any: its branch and its timers.
    fn end_transaction(&mut self, context: &mut Context, id: RequestId) {
        let Some(request) = self.requests.get_mut(&id) else { return };
        if let Stage::Transacting(running) = &request.stage {
            self.branches.remove(&running.branch);
            context.cancel_timer(TimerId::Retransmit(id));
            context.cancel_timer(TimerId::TransactionTimeout(id));
            if running.cancel.is_some() {
                context.cancel_timer(TimerId::Cancel(id));
            }
        }
        request.stage = Stage::BetweenAttempts;
    }
}

/// What to ask the DNS for `hop` (RFC 3263 §4): SRV for port 0, A records for a port; nothing
/// for an IP address.
fn lookup_for(hop: &Destination, transport: Transport) -> Option<Lookup> {
    let Host::Domain(name) = &hop.host else { return None };
    let host = name.clone();
    Some(if hop.port == 0 {
        Lookup::Service { host, transport }
    } else {
        Lookup::Address { host, port: port_for(hop, transport) }
    })
}

/// The port to reach a configured hop on: as configured, except that the vendor's default 5060
/// means the transport's default (5061 for TLS), and 0 (SRV) falls back to the default.
pub fn port_for(hop: &Destination, transport: Transport) -> u16 {
    match hop.port {
        0 => transport.default_port(),
        DEFAULT_SIP_PORT => transport.default_port(),
        port => port,
    }
}

/// The Via a request sent from `local` over `transport` carries, with `rport` (RFC 3581), and
/// over TLS `alias` (RFC 5923): the phone has no TLS listener, so the connection is where it is
/// reached, and the sent-by names it (see [`super::contact`]).
fn via_for(transport: Transport, local: SocketAddr, branch: &str) -> String {
    let mut via = Via::new(transport.via_name(), Host::from(local.ip()), Some(local.port()), branch);
    via.params.set("rport", None);
    if super::contact::names_connection(transport) {
        via.params.set("alias", None);
    }
    via.to_string()
}
