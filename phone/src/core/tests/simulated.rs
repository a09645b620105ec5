//! A simulated lab for the core: servers that answer, stay silent, refuse or reject, a DNS table, and a log of every message, with time moved only by the test.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip::{HeaderName, Message, Method};

use super::settings;
use crate::core::*;
use crate::quirks::Quirks;

pub const PHONE: &str = "127.66.0.20";
pub const PROXY_A: &str = "127.66.0.1:5060";
pub const PROXY_B: &str = "127.66.0.2:5060";
pub const REGISTRAR_A: &str = "127.66.0.11:5060";
pub const REGISTRAR_B: &str = "127.66.0.12:5060";
pub const OUTBOUND_A: &str = "127.66.0.21:5060";
pub const OUTBOUND_B: &str = "127.66.0.22:5060";

/// Row 1 with named proxies and registrars, two BLF keys and MWI, and timers small enough to read.
pub const ROW_1: &str = "\
sip proxy ip: proxy-a.lab.test
sip proxy port: 5060
sip backup proxy ip: proxy-b.lab.test
sip backup proxy port: 5060
sip registrar ip: registrar-a.lab.test
sip registrar port: 5060
sip backup registrar ip: registrar-b.lab.test
sip backup registrar port: 5060
sip line1 user name: 1001
sip line1 password: secret
sip line1 display name: Desk 1
sip registration period: 20
sip registration retry timer: 3
sip registration timeout retry timer: 3
sip subscription failed retry timer: 4
sip subscription timeout retry timer: 4
sip T1 timer: 100
sip T2 timer: 400
sip transaction timer: 1000
refphone failback probe interval: 5
refphone subscription period: 30
softkey1 type: blf
softkey1 value: 2001
softkey2 type: blf
softkey2 value: 2002
softkey3 type: speeddial
softkey3 value: 2003
sip explicit mwi subscription: 1
sip explicit mwi subscription period: 40
";

/// Row 2: row 1 plus a primary and a backup outbound proxy.
pub fn row_2() -> String {
    format!(
        "{ROW_1}sip outbound proxy: outbound-a.lab.test\nsip outbound proxy port: 5060\n\
         sip backup outbound proxy: outbound-b.lab.test\nsip backup outbound proxy port: 5060\n"
    )
}

/// Row 3: one proxy, one registrar, a primary and a backup outbound proxy.
pub fn row_3() -> String {
    ROW_1
        .lines()
        .filter(|l| !l.starts_with("sip backup proxy") && !l.starts_with("sip backup registrar"))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        + "sip outbound proxy: outbound-a.lab.test\nsip outbound proxy port: 5060\n\
           sip backup outbound proxy: outbound-b.lab.test\nsip backup outbound proxy port: 5060\n"
}

/// How a simulated server treats what it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Answers like a working registrar, proxy or outbound proxy.
    Answer,
    /// Swallows everything.
    Silent,
    /// ICMP port unreachable for every datagram.
    Refuse,
    /// Answers every request with this status.
    Reject(u16),
    /// Answers every request with this status and `Retry-After: <seconds>`.
    RejectRetryAfter(u16, u32),
}

/// One message the phone sent, or one reply it gave.
#[derive(Debug, Clone)]
pub struct Sent {
    pub at: Duration,
    pub to: SocketAddr,
    pub message: Message,
}

impl Sent {
    pub fn method(&self) -> Option<Method> {
        self.message.method().cloned()
    }

    pub fn aor_host(&self) -> String {
        self.message.to().ok().and_then(|to| to.uri.as_sip().map(|u| u.host.to_string())).unwrap_or_default()
    }

    pub fn request_uri(&self) -> String {
        match &self.message.start {
            sip::StartLine::Request { uri, .. } => uri.clone(),
            sip::StartLine::Response { .. } => String::new(),
        }
    }

    pub fn expires(&self) -> Option<u32> {
        self.message.expires().ok().flatten()
    }

    pub fn call_id(&self) -> String {
        self.message.call_id().unwrap_or_default().to_owned()
    }

    pub fn sender_tag(&self) -> String {
        self.message.from().ok().and_then(|f| f.tag().map(str::to_owned)).unwrap_or_default()
    }

    pub fn header(&self, name: HeaderName) -> Option<&str> {
        self.message.header(&name)
    }
}

/// The core in a simulated lab.
pub struct SimLab {
    pub core: PhoneCore,
    pub start: Instant,
    pub now: Instant,
    timers: BTreeMap<TimerId, Instant>,
    flows: BTreeMap<FlowId, SocketAddr>,
    pub behaviours: BTreeMap<SocketAddr, Behaviour>,
    pub dns: BTreeMap<String, Vec<SocketAddr>>,
    pub log: Vec<Sent>,
    /// Raw keep-alive bytes the phone sent: when, on which flow.
    pub raw: Vec<(Duration, SocketAddr, Vec<u8>)>,
    /// Whether keep-alives get their answer.
    pub answer_keepalives: bool,
    /// Headers the simulated registrar adds to a 2xx to REGISTER (Require, Flow-Timer).
    pub register_ok_headers: Vec<(HeaderName, String)>,
    queue: VecDeque<Output>,
    tag_counter: u64,
    /// The To tag a simulated server gave each dialog, by Call-ID.
    pub server_tags: BTreeMap<String, String>,
    /// Every name the core asked to resolve, in order.
    pub resolved: Vec<String>,
    /// The transport of every flow the core opened, in order.
    pub opened: Vec<Transport>,
    /// The status a working proxy answers INVITEs with (a callee who declines, or nobody answering), instead of 200.
    pub invite_status: Option<u16>,
    /// Whether the outbound proxies record-route the dialogs they forward (an RFC 5626 edge proxy does).
    pub outbound_record_routes: bool,
    /// The address a STUN binding response reports as the phone's (XOR-MAPPED-ADDRESS).
    pub stun_mapped_address: SocketAddr,
    /// How many of the next keep-alives are lost on the way.
    pub keepalives_to_lose: usize,
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

impl SimLab {
    pub fn new(cfg: &str, quirks: Quirks) -> SimLab {
        let now = Instant::now();
        let mut dns = BTreeMap::new();
        for (name, address) in [
            ("proxy-a.lab.test", PROXY_A),
            ("proxy-b.lab.test", PROXY_B),
            ("registrar-a.lab.test", REGISTRAR_A),
            ("registrar-b.lab.test", REGISTRAR_B),
            ("outbound-a.lab.test", OUTBOUND_A),
            ("outbound-b.lab.test", OUTBOUND_B),
        ] {
            dns.insert(name.to_owned(), vec![addr(address)]);
        }
        let behaviours = [PROXY_A, PROXY_B, REGISTRAR_A, REGISTRAR_B, OUTBOUND_A, OUTBOUND_B]
            .into_iter()
            .map(|a| (addr(a), Behaviour::Answer))
            .collect();
        SimLab {
            core: PhoneCore::new(settings(cfg, quirks)),
            start: now,
            now,
            timers: BTreeMap::new(),
            flows: BTreeMap::new(),
            behaviours,
            dns,
            log: Vec::new(),
            raw: Vec::new(),
            answer_keepalives: true,
            register_ok_headers: Vec::new(),
            queue: VecDeque::new(),
            tag_counter: 0,
            server_tags: BTreeMap::new(),
            resolved: Vec::new(),
            opened: Vec::new(),
            invite_status: None,
            outbound_record_routes: false,
            stun_mapped_address: SocketAddr::new(PHONE.parse().unwrap(), 40000),
            keepalives_to_lose: 0,
        }
    }

    pub fn started(cfg: &str, quirks: Quirks) -> SimLab {
        let mut lab = SimLab::new(cfg, quirks);
        lab.core.start(lab.now);
        lab.settle();
        lab
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    pub fn set(&mut self, server: &str, behaviour: Behaviour) {
        self.behaviours.insert(addr(server), behaviour);
    }

    /// Everything logged from `since` on.
    pub fn since(&self, since: Duration) -> Vec<Sent> {
        self.log.iter().filter(|s| s.at >= since).cloned().collect()
    }

    /// Requests of `method` logged from `since` on.
    pub fn requests(&self, method: Method, since: Duration) -> Vec<Sent> {
        self.since(since).into_iter().filter(|s| s.method() == Some(method.clone())).collect()
    }

    /// Lets time pass for `duration`, answering as the servers' behaviours say.
    pub fn run_for(&mut self, duration: Duration) {
        let deadline = self.now + duration;
        loop {
            self.settle();
            let next = self.timers.iter().min_by_key(|(_, at)| **at).map(|(id, at)| (*id, *at));
            match next {
                Some((id, at)) if at <= deadline => {
                    self.timers.remove(&id);
                    self.now = self.now.max(at);
                    self.core.on_timer(self.now, id);
                }
                _ => {
                    self.now = deadline;
                    self.settle();
                    return;
                }
            }
        }
    }

    /// Runs until `until` holds for the log, at most `limit`; returns the time it took.
    pub fn run_until(&mut self, limit: Duration, until: impl Fn(&[Sent]) -> bool) -> Duration {
        let begin = self.now;
        let step = Duration::from_millis(10);
        while self.now - begin < limit {
            if until(&self.log) {
                return self.now - begin;
            }
            self.run_for(step);
        }
        assert!(until(&self.log), "condition not reached within {limit:?}; log:\n{}", self.dump(Duration::ZERO));
        self.now - begin
    }

    /// One line per logged message, for failure reports.
    pub fn dump(&self, since: Duration) -> String {
        self.since(since)
            .iter()
            .map(|s| {
                let first = match &s.message.start {
                    sip::StartLine::Request { method, uri } => format!("{method} {uri}"),
                    sip::StartLine::Response { status, .. } => format!("{status}"),
                };
                format!(
                    "{:>8.3} -> {} {first} to={} cseq={} expires={:?} call={}",
                    s.at.as_secs_f64(),
                    s.to,
                    s.aor_host(),
                    s.header(HeaderName::CSeq).unwrap_or(""),
                    s.expires(),
                    s.call_id()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Carries out every output the core produced, and the core's reactions, until it is quiet.
    pub fn settle(&mut self) {
        for _ in 0..10_000 {
            while let Some(output) = self.core.poll_output() {
                self.queue.push_back(output);
            }
            let Some(output) = self.queue.pop_front() else { return };
            self.carry_out(output);
        }
        panic!("the core never settles: a livelock");
    }

    fn carry_out(&mut self, output: Output) {
        let now = self.now;
        let at = self.elapsed();
        match output {
            Output::SetTimer { id, at } => {
                assert!(at >= now, "timer {id:?} set in the past");
                self.timers.insert(id, at);
            }
            Output::CancelTimer { id } => {
                self.timers.remove(&id);
            }
            Output::Resolve { request, lookup } => {
                let name = match &lookup {
                    Lookup::Address { host, .. } | Lookup::Service { host, .. } => host.clone(),
                };
                self.resolved.push(name.clone());
                let answer = self.dns.get(&name).cloned().ok_or_else(|| format!("{name}: NXDOMAIN"));
                self.core.on_resolved(now, request, answer);
            }
            Output::OpenFlow { flow, remote, transport, .. } => {
                self.flows.insert(flow, remote);
                self.opened.push(transport);
                let local = SocketAddr::new(PHONE.parse().unwrap(), 40000 + flow.0 as u16);
                self.core.on_flow_opened(now, flow, local);
            }
            Output::CloseFlow { flow } => {
                self.flows.remove(&flow);
            }
            Output::SendRaw { flow, bytes } => {
                let to = self.flows[&flow];
                self.raw.push((at, to, bytes.clone()));
                if self.keepalives_to_lose > 0 {
                    self.keepalives_to_lose -= 1;
                    return;
                }
                let behaviour = self.behaviours.get(&to).copied().unwrap_or(Behaviour::Silent);
                if self.answer_keepalives && behaviour == Behaviour::Answer {
                    if let Some(stun) = sip::StunMessage::decode(&bytes) {
                        let answer = sip::StunMessage::binding_success(&stun, self.stun_mapped_address);
                        self.core.on_datagram(now, Arrival::Flow(flow), &answer.encode());
                    } else {
                        self.core.on_pong(now, flow);
                    }
                }
            }
            Output::Reply { to, message } => {
                let remote = match to {
                    Arrival::Listener { remote } => remote,
                    Arrival::Flow(flow) => self.flows[&flow],
                    Arrival::Inbound { .. } => addr("0.0.0.0:0"),
                };
                self.log.push(Sent { at, to: remote, message });
            }
            Output::Send { flow, message } => {
                let to = self.flows[&flow];
                self.log.push(Sent { at, to, message: message.clone() });
                let behaviour = self.behaviours.get(&to).copied().unwrap_or(Behaviour::Silent);
                if matches!(message.method(), Some(Method::Ack) | Some(Method::Cancel)) {
                    return;
                }
                // A working outbound proxy forwards to the element behind it, which answers as it behaves;
                // what it swallows or refuses leaves the phone without an answer.
                let behaviour = match (behaviour, self.behind_outbound_proxy(to, &message)) {
                    (Behaviour::Answer, Some(Behaviour::Refuse)) => Behaviour::Silent,
                    (Behaviour::Answer, Some(behind)) => behind,
                    (behaviour, _) => behaviour,
                };
                match behaviour {
                    Behaviour::Answer => {
                        let response = self.answer(to, &message);
                        self.core.on_datagram(now, Arrival::Flow(flow), &response.to_bytes());
                    }
                    Behaviour::Silent => {}
                    Behaviour::Refuse => self.core.on_transport_error(now, flow, TransportFailure::Refused),
                    Behaviour::Reject(status) => {
                        let response = Message::response_to(&message, status, Some("rejecting"));
                        self.core.on_datagram(now, Arrival::Flow(flow), &response.to_bytes());
                    }
                    Behaviour::RejectRetryAfter(status, seconds) => {
                        let mut response = Message::response_to(&message, status, Some("rejecting"));
                        response.push_header(HeaderName::RetryAfter, seconds);
                        self.core.on_datagram(now, Arrival::Flow(flow), &response.to_bytes());
                    }
                }
            }
        }
    }

    /// The server closes every connection to `server` (a reset), as the shell would report it.
    pub fn close_flows_to(&mut self, server: &str) {
        self.fail_flows_to(server, TransportFailure::Closed);
    }

    /// Every flow to `server` fails with `failure` (a TCP reset is [`TransportFailure::Refused`]).
    pub fn fail_flows_to(&mut self, server: &str, failure: TransportFailure) {
        let flows: Vec<FlowId> = self.flows.iter().filter(|(_, to)| **to == addr(server)).map(|(f, _)| *f).collect();
        for flow in flows {
            self.flows.remove(&flow);
            self.core.on_transport_error(self.now, flow, failure.clone());
        }
        self.settle();
    }

    /// When `request` went to an outbound proxy, the behaviour of the element it forwards to: the
    /// first Route not naming an outbound proxy, else the Request-URI (none when that is the outbound proxy itself).
    fn behind_outbound_proxy(&self, to: SocketAddr, request: &Message) -> Option<Behaviour> {
        if to != addr(OUTBOUND_A) && to != addr(OUTBOUND_B) {
            return None;
        }
        let outbound_names = ["outbound-a.lab.test", "outbound-b.lab.test"];
        let routes = request.routes().unwrap_or_default();
        let beyond = routes
            .iter()
            .filter_map(|r| r.uri.as_sip().map(|u| u.host.to_string()))
            .find(|host| !outbound_names.contains(&host.as_str()));
        let host = beyond.or_else(|| {
            request.request_uri().and_then(Result::ok).and_then(|u| u.as_sip().map(|u| u.host.to_string()))
        })?;
        let element = *self.dns.get(&host)?.first()?;
        if element == to {
            return None;
        }
        Some(self.behaviours.get(&element).copied().unwrap_or(Behaviour::Answer))
    }

    /// A working server's answer to `request`, sent to `to`.
    fn answer(&mut self, to: SocketAddr, request: &Message) -> Message {
        self.tag_counter += 1;
        let call_id = request.call_id().unwrap_or_default().to_owned();
        let tag = self.server_tags.entry(call_id).or_insert_with(|| format!("srv{}", self.tag_counter)).clone();
        let mut response = Message::response_to(request, 200, Some(&tag));
        let dialog_forming = matches!(request.method(), Some(Method::Subscribe) | Some(Method::Invite));
        if self.outbound_record_routes && dialog_forming && (to == addr(OUTBOUND_A) || to == addr(OUTBOUND_B)) {
            let host = if to == addr(OUTBOUND_A) { "outbound-a.lab.test" } else { "outbound-b.lab.test" };
            response.push_header(HeaderName::RecordRoute, format!("<sip:flow1@{host}:5060;lr;ob>"));
        }
        match request.method() {
            Some(Method::Register) => {
                let expires = request.expires().ok().flatten().unwrap_or(3600);
                if let Some(contact) = request.header(&HeaderName::Contact) {
                    response.push_header(HeaderName::Contact, format!("{contact};expires={expires}"));
                }
                for (name, value) in &self.register_ok_headers {
                    response.push_header(name.clone(), value);
                }
            }
            Some(Method::Subscribe) => {
                let expires = request.expires().ok().flatten().unwrap_or(3600);
                response.push_header(HeaderName::Expires, expires);
                response.push_header(HeaderName::Contact, "<sip:notifier.lab.test:5060>");
            }
            Some(Method::Invite) => {
                if let Some(status) = self.invite_status {
                    return Message::response_to(request, status, Some(&tag));
                }
                response.push_header(HeaderName::Contact, "<sip:callee@127.66.0.99:5060>");
            }
            _ => {}
        }
        response
    }

    /// Delivers a NOTIFY in the dialog of `subscribe` (a logged SUBSCRIBE, answered by a simulated proxy) with `state`.
    pub fn notify(&mut self, subscribe: &Sent, state: &str) -> u16 {
        let remote_tag = self.server_tags.get(&subscribe.call_id()).cloned().unwrap_or_else(|| "notifier".to_owned());
        let mut notify = Message::request(Method::Notify, format!("sip:1001@{PHONE}:5060"));
        notify.push_header(HeaderName::Via, "SIP/2.0/UDP 127.66.0.1:5060;branch=z9hG4bKnotify1");
        notify.push_header(HeaderName::MaxForwards, 70);
        notify.push_header(
            HeaderName::From,
            format!("{};tag={remote_tag}", subscribe.header(HeaderName::To).unwrap_or("")),
        );
        notify.push_header(HeaderName::To, subscribe.header(HeaderName::From).unwrap_or(""));
        notify.push_header(HeaderName::CallId, subscribe.call_id());
        notify.push_header(HeaderName::CSeq, "1 NOTIFY");
        notify.push_header(HeaderName::Event, subscribe.header(HeaderName::Event).unwrap_or("dialog"));
        notify.push_header(HeaderName::SubscriptionState, state);
        let before = self.log.len();
        self.core.on_datagram(self.now, Arrival::Listener { remote: subscribe.to }, &notify.to_bytes());
        self.settle();
        self.log[before..].iter().find_map(|s| s.message.status()).expect("the NOTIFY was answered")
    }
}
