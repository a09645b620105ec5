//! Sends one request to a configured server: resolve it, open or reuse a flow, run the client transaction, try the next address (RFC 3263 §4.3), and report a final response or a failure.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use sip::{Header, HeaderName, Host, Message, Via};

use super::transaction::ClientTransactionTimer;
use super::{Context, FlowId, Lookup, Output, RequestId, TimerId, TransportFailure};
use crate::config::{DEFAULT_SIP_PORT, Destination};

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

impl fmt::Display for FailureCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureCause::Unresolvable { lookup, detail } => write!(f, "DNS lookup of {lookup} failed: {detail}"),
            FailureCause::Timeout { remote } => write!(f, "no response from {remote}: transaction timed out"),
            FailureCause::Transport { remote, failure } => write!(f, "{remote}: {failure}"),
        }
    }
}

/// How a request ended, for its owner.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RequestEvent {
    Final { request: RequestId, response: Message },
    Failed { request: RequestId, cause: FailureCause },
}

impl RequestEvent {
    pub fn request(&self) -> RequestId {
        match self {
            RequestEvent::Final { request, .. } | RequestEvent::Failed { request, .. } => *request,
        }
    }
}

/// A flow to one remote address; `local` is known once it is open.
#[derive(Debug)]
struct Flow {
    remote: SocketAddr,
    local: Option<SocketAddr>,
}

#[derive(Debug)]
enum Stage {
    Resolving,
    /// One attempt ended; the next has not begun.
    BetweenAttempts,
    /// Waiting for the flow to `remote` to open.
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
}

#[derive(Debug)]
struct OutgoingRequest {
    /// The request without its Via, which each transaction adds with its own branch.
    message: Message,
    lookup_name: String,
    /// Addresses to try in order, and the index of the next one.
    candidates: Vec<SocketAddr>,
    next_candidate: usize,
    /// The address of the current attempt.
    remote: Option<SocketAddr>,
    last_failure: Option<FailureCause>,
    stage: Stage,
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
}

impl RequestSender {
    /// Starts sending `message` (a request without Via) to `destination`; its outcome comes back as a [`RequestEvent`].
    pub fn send(
        &mut self,
        now: Instant,
        context: &mut Context,
        destination: &Destination,
        message: Message,
    ) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let mut request = OutgoingRequest {
            message,
            lookup_name: destination.to_string(),
            candidates: Vec::new(),
            next_candidate: 0,
            remote: None,
            last_failure: None,
            stage: Stage::Resolving,
        };
        match destination.host.ip() {
            Some(ip) => {
                let port = if destination.port == 0 { DEFAULT_SIP_PORT } else { destination.port };
                request.candidates.push(SocketAddr::new(ip, port));
                self.requests.insert(id, request);
                // The one candidate cannot have failed yet, so no event comes back here.
                let _ = self.try_next_candidate(now, context, id);
            }
            None => {
                let host = match &destination.host {
                    Host::Domain(name) => name.clone(),
                    other => other.to_string(),
                };
                let lookup = if destination.port == 0 {
                    Lookup::Service { service: format!("_sip._udp.{host}"), host }
                } else {
                    Lookup::Address { host, port: destination.port }
                };
                self.requests.insert(id, request);
                context.push(Output::Resolve { request: id, lookup });
            }
        }
        id
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
                request.candidates = addresses;
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
        tracing::debug!("flow {} -> {} opened from {local}", flow.0, entry.remote);
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

    /// Fails the current attempt of every request on `flow`; each moves on to its next address or fails.
    pub fn on_transport_error(
        &mut self,
        now: Instant,
        context: &mut Context,
        flow: FlowId,
        failure: TransportFailure,
    ) -> Vec<RequestEvent> {
        let Some(entry) = self.flows.get(&flow) else { return Vec::new() };
        let remote = entry.remote;
        if entry.local.is_none() {
            // It never opened; a later attempt opens a new one.
            self.flows.remove(&flow);
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

    /// A response arrived; a final one ends its transaction and is handed to the request's owner.
    pub fn on_response(&mut self, _now: Instant, context: &mut Context, response: Message) -> Option<RequestEvent> {
        let status = response.status()?;
        let branch = match response.top_via() {
            Ok(via) => via.branch().map(str::to_owned),
            Err(error) => {
                tracing::warn!("response {status} with an unreadable Via ignored: {error}");
                return None;
            }
        };
        let Some(&id) = branch.as_ref().and_then(|b| self.branches.get(b)) else {
            tracing::debug!("response {status} matches no transaction (branch {branch:?}); ignored");
            return None;
        };
        let request = self.requests.get_mut(&id)?;
        let Stage::Transacting(running) = &mut request.stage else { return None };
        let method_matches = match (response.cseq(), request.message.method()) {
            (Ok(cseq), Some(method)) => cseq.method == *method,
            _ => false,
        };
        if !method_matches {
            tracing::warn!("response {status} has the branch of {id} but not its CSeq method; ignored");
            return None;
        }
        if status < 200 {
            running.timer.on_provisional();
            return None;
        }
        self.end_transaction(context, id);
        self.requests.remove(&id);
        Some(RequestEvent::Final { request: id, response })
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
            TimerId::TransactionTimeout(id) => {
                let timed_out = self.requests.get(&id).and_then(|r| match &r.stage {
                    Stage::Transacting(running) if running.timer.has_timed_out(now) => r.remote,
                    _ => None,
                });
                match timed_out {
                    Some(remote) => {
                        self.fail_attempt(now, context, id, FailureCause::Timeout { remote }).into_iter().collect()
                    }
                    None => Vec::new(),
                }
            }
            _ => Vec::new(),
        }
    }

    /// Moves `id` to its next candidate address: reuses an open flow, waits for an opening one, or opens one.
    /// When no candidate is left, the request has failed with its last failure.
    fn try_next_candidate(&mut self, now: Instant, context: &mut Context, id: RequestId) -> Option<RequestEvent> {
        let request = self.requests.get_mut(&id)?;
        let Some(&remote) = request.candidates.get(request.next_candidate) else {
            let cause = request.last_failure.take().unwrap_or_else(|| FailureCause::Unresolvable {
                lookup: request.lookup_name.clone(),
                detail: "no addresses".into(),
            });
            self.requests.remove(&id);
            return Some(RequestEvent::Failed { request: id, cause });
        };
        request.next_candidate += 1;
        request.remote = Some(remote);
        let existing = self.flows.iter().find(|(_, f)| f.remote == remote).map(|(id, f)| (*id, f.local));
        let (flow, local) = match existing {
            Some(found) => found,
            None => {
                let flow = FlowId(self.next_flow);
                self.next_flow += 1;
                self.flows.insert(flow, Flow { remote, local: None });
                context.push(Output::OpenFlow { flow, remote });
                (flow, None)
            }
        };
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
        let mut via = Via::new("UDP", Host::from(local.ip()), Some(local.port()), &branch);
        via.params.set("rport", None);
        let mut wire = request.message.clone();
        wire.headers.insert(0, Header { name: HeaderName::Via, value: via.to_string() });
        let timer = ClientTransactionTimer::start(now, &context.settings.timers);
        if let Some(at) = timer.next_retransmit() {
            context.set_timer(TimerId::Retransmit(id), at);
        }
        context.set_timer(TimerId::TransactionTimeout(id), timer.deadline());
        context.push(Output::Send { flow, message: wire.clone() });
        self.branches.insert(branch.clone(), id);
        request.stage = Stage::Transacting(Box::new(RunningTransaction { flow, branch, timer, wire }));
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
        }
        request.stage = Stage::BetweenAttempts;
    }
}
