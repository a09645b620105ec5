//! The lab: one case's private topology (elements, DNS, phone) on its own loopback block, with the verbs cases use: expect, fail, restore.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::dns::{self, DnsContext, Zone};
use crate::dut::{Dut, LabAddresses};
use crate::elements::{
    self, Behaviour, DigestAuth, EdgeProxy, ElementCommand, ElementShared, OutboundSupport, Proxy, ProxyConfig,
    Registrar, RegistrarConfig,
};
use crate::error::{CaseError, HarnessError, Violation};
use crate::expect::{self, Expect};
use crate::faults::{Event, Fault, FaultTarget};
use crate::ladder;
use crate::net::bind_udp;
use crate::provision::{Configuration, DEFAULT_MAC, Provisioning, Timers};
use crate::requirement::Requirement;
use crate::steady::SteadyRules;
use crate::timing::Timing;
use crate::tls::LabCa;
use crate::topology::{self, Element, Topology};
use crate::trace::{Direction, Fate, Payload, Record, Trace, TraceEvent, Transport};

/// The zone the lab's DNS serves, naming every element (`proxy-a.lab.test`).
pub const LAB_ZONE: &str = "lab.test";

/// Which address block a lab claims.
#[derive(Debug, Clone)]
pub enum BlockChoice {
    /// A free block from a start derived from the process id (cases; concurrent processes apart).
    Spread,
    /// The first free block in order from 127.100.0.16 (`serve`: found where it was last time).
    FirstFree,
    /// This block and no other (`serve --block`): an error if any of its addresses is taken.
    Pinned(Ipv4Addr),
    /// The addresses a lab file names (`--lab FILE`): an error if any is taken or not local.
    Lab(Arc<Topology>),
}

/// How a case wants its lab built.
#[derive(Debug, Clone)]
pub struct LabSpec {
    pub configuration: Configuration,
    pub transport: Transport,
    pub timers: Timers,
    /// Whether registrars demand digest authentication.
    pub digest: bool,
    /// Registrars answer 423 with this Min-Expires to shorter requests.
    pub min_expires: u32,
    /// Registrars' RFC 5626 support (Require: outbound, Flow-Timer): on exactly when the
    /// configuration has SIP outbound on, unless a case says otherwise (see [`LabSpec::for_case`]).
    pub outbound: Option<OutboundSupport>,
    pub proxy: ProxyConfig,
    /// Which address block the lab claims.
    pub block: BlockChoice,
    /// Keep the lab's CA in this directory across runs (`serve --ca-dir`) instead of a new one.
    pub ca_dir: Option<PathBuf>,
    /// Provision BLF and MWI subscriptions.
    pub subscriptions: bool,
    /// The phone's MAC, naming its `<MAC>.cfg`.
    pub mac: String,
    /// Name the registrar by the registrars' SIP service (`sip registrar ip: registrars.<zone>`,
    /// port 0), whose SRV records name registrar-a and then registrar-b, instead of each by host
    /// and port.
    pub registrar_service: bool,
    pub zone: String,
    /// Tasks reading each element's UDP socket. One in a case, so every datagram is recorded
    /// in the order it arrived; `serve` takes one per core, so a load test is answered on all.
    pub udp_readers: usize,
}

impl LabSpec {
    pub fn new(configuration: Configuration, transport: Transport) -> LabSpec {
        LabSpec {
            configuration,
            transport,
            timers: Timers::fast(),
            digest: true,
            min_expires: 1,
            outbound: configuration
                .sip_outbound()
                .then(|| OutboundSupport::granting(Timers::fast().outbound.flow_timer)),
            proxy: ProxyConfig::default(),
            block: BlockChoice::Spread,
            ca_dir: None,
            subscriptions: false,
            mac: DEFAULT_MAC.to_owned(),
            registrar_service: false,
            zone: LAB_ZONE.into(),
            udp_readers: 1,
        }
    }
}

impl LabSpec {
    /// The lab a case asks for: its configuration, transport, timers and subscriptions, the
    /// registrars granting the case's `Flow-Timer`, then the case's own adjustments.
    pub fn for_case(case: &crate::case::Case) -> LabSpec {
        let mut spec = LabSpec {
            subscriptions: case.needs.subscriptions,
            timers: case.timers,
            ..LabSpec::new(case.configuration, case.transport)
        };
        spec.outbound = spec.outbound.map(|_| OutboundSupport::granting(case.timers.outbound.flow_timer));
        (case.lab)(&mut spec);
        spec
    }

    /// The cfg files the phone is served in this lab on `topology`: provisioned, and judged, at
    /// no less than the phone accepts (its timers raised to `floors`).
    pub fn provisioning(&self, topology: &Topology, floors: &crate::dut::TimerFloors) -> Provisioning {
        Provisioning::new(
            self.configuration,
            self.transport,
            topology,
            floors.apply(self.timers),
            self.subscriptions,
            self.registrar_service,
            &self.mac,
        )
    }

    /// The deadlines of this lab with a phone of `capabilities`: from the timers it is
    /// provisioned with (raised to its floors).
    pub fn timing(&self, capabilities: &crate::dut::Capabilities) -> Timing {
        Timing::new(capabilities.floors.apply(self.timers), capabilities.clone())
            .with_sip_outbound(self.configuration.sip_outbound())
    }
}

/// The lab as [`LabSpec::for_case`] makes it, unchanged: what most cases want.
pub fn standard_lab(_: &mut LabSpec) {}

/// The sockets of one SIP element, bound before the element's tasks take them.
struct ElementSockets {
    udp: UdpSocket,
    tcp: tokio::net::TcpListener,
    tls: tokio::net::TcpListener,
}

/// The sockets of a claimed block, before the elements take them.
struct ClaimedBlock {
    topology: Topology,
    sip: Vec<(Element, ElementSockets)>,
    dns: UdpSocket,
    dns_tcp: tokio::net::TcpListener,
}

/// What could not be bound when claiming a block.
struct Taken {
    what: String,
    addr: SocketAddr,
    error: std::io::Error,
}

/// Binds every port of `topology`: each element's, the DNS's, and the phone's (checked free, then
/// released: the phone binds it itself; a lab file's phone may be a device elsewhere).
fn bind_block(mut topology: Topology) -> Result<ClaimedBlock, Taken> {
    let mut sip = Vec::new();
    for element in Element::SIP {
        let ip = topology.ip(element);
        let taken = |what: &str, port: u16, error| Taken {
            what: format!("{element} {what}"),
            addr: SocketAddr::new(ip, port),
            error,
        };
        let sockets = ElementSockets {
            udp: bind_udp(SocketAddr::new(ip, 5060)).map_err(|e| taken("udp", 5060, e))?,
            tcp: crate::elements::bind_tcp(SocketAddr::new(ip, 5060)).map_err(|e| taken("tcp", 5060, e))?,
            tls: crate::elements::bind_tcp(SocketAddr::new(ip, 5061)).map_err(|e| taken("tls", 5061, e))?,
        };
        sip.push((element, sockets));
    }
    let phone = SocketAddr::new(topology.phone_ip(), 5060);
    match std::net::UdpSocket::bind(phone) {
        Ok(_) => {}
        Err(error) if topology.from_lab_file && error.kind() == std::io::ErrorKind::AddrNotAvailable => {}
        Err(error) => return Err(Taken { what: "the phone's udp".into(), addr: phone, error }),
    }
    let dns_addr = topology.dns_addr();
    let dns_taken = |what: &str, addr, error| Taken { what: format!("dns {what}"), addr, error };
    let dns = match bind_udp(dns_addr) {
        Ok(s) => s,
        // A phone on the lab's LAN asks port 53: only a loopback lab moves to a high port.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && !topology.from_lab_file => {
            let high = SocketAddr::new(topology.ip(Element::Dns), 0);
            bind_udp(high).map_err(|e| dns_taken("udp", high, e))?
        }
        Err(e) => return Err(dns_taken("udp", dns_addr, e)),
    };
    topology.dns_port = dns.local_addr().map_err(|e| dns_taken("udp", dns_addr, e))?.port();
    let dns_tcp =
        crate::elements::bind_tcp(topology.dns_addr()).map_err(|e| dns_taken("tcp", topology.dns_addr(), e))?;
    Ok(ClaimedBlock { topology, sip, dns, dns_tcp })
}

/// Claims a block as `choice` says: a taken address moves on to the next block, except for a
/// pinned block, whose taken address is the error.
fn claim_block(zone: &str, choice: &BlockChoice) -> Result<ClaimedBlock, HarnessError> {
    let fixed = match choice {
        BlockChoice::Pinned(base) => Some(Topology::new(*base, zone)),
        BlockChoice::Lab(topology) => Some(Topology::clone(topology)),
        BlockChoice::Spread | BlockChoice::FirstFree => None,
    };
    if let Some(topology) = fixed {
        return bind_block(topology).map_err(|taken| HarnessError::Bind {
            what: taken.what,
            addr: taken.addr,
            source: taken.error,
        });
    }
    let mut last = std::io::Error::other("no attempt made");
    for attempt in 0..topology::CLAIM_ATTEMPTS {
        let base = match choice {
            BlockChoice::FirstFree => topology::sequential_block(attempt),
            _ => topology::candidate_block(attempt),
        };
        match bind_block(Topology::new(base, zone)) {
            Ok(block) => return Ok(block),
            Err(taken) => last = taken.error,
        }
    }
    Err(topology::no_free_block(last))
}

/// Binds every address a lab file names and lets them go: the environment error (not root for
/// port 53, an address on no interface, one taken) before any case runs, not as every case's
/// `error` verdict. Needs a runtime.
pub fn check_lab_file(topology: &Arc<Topology>) -> Result<(), HarnessError> {
    claim_block(&topology.zone, &BlockChoice::Lab(topology.clone())).map(drop)
}

/// One case's running lab. Dropping it stops every element task and the phone.
pub struct Lab {
    pub topology: Arc<Topology>,
    pub provisioning: Provisioning,
    trace: Trace,
    elements: HashMap<Element, Arc<ElementShared>>,
    dns_fault: watch::Sender<Option<Fault>>,
    /// The DNS's shared state, whose connection tasks end with the lab.
    dns: Arc<DnsContext>,
    /// The zone the DNS serves; cases change records in it while they run.
    zone: Arc<Zone>,
    /// The lab's CA; the phone is handed its certificate.
    ca: Arc<LabCa>,
    /// Faults in force, for explaining what the trace cannot show.
    active_faults: HashMap<Element, Fault>,
    /// The loopback captures of what is sent to refused ports (`capture.rs`).
    captures: crate::capture::Captures,
    tasks: Vec<JoinHandle<()>>,
    dut: Box<dyn Dut>,
    timing: Timing,
    /// Expectations look at events from here on.
    cursor: usize,
    /// The events expectations matched: the snapshot's checkpoints.
    matched: Vec<usize>,
    /// Time spent waiting on the phone (expectations met, observation windows held): what the
    /// provisioned timers make unavoidable, against which the runner's overhead is measured.
    waited: Duration,
    dir: tempfile::TempDir,
}

impl Lab {
    /// Claims a block, starts the elements and the DNS, provisions and starts the phone.
    pub async fn start(spec: &LabSpec, mut dut: Box<dyn Dut>) -> Result<Lab, HarnessError> {
        let block = claim_block(&spec.zone, &spec.block)?;
        let mut topology = block.topology;
        topology.phone_alias = dut.capabilities().phone_alias;
        let topology = Arc::new(topology);
        let trace = Trace::new();
        let provisioning = spec.provisioning(&topology, &dut.capabilities().floors);
        // Aborted if start fails half-way, so no element keeps its sockets after an error.
        let mut tasks = AbortOnDrop::default();

        let zone_text = dns::render_zone(dns::ZONE_TEMPLATE, &topology);
        let zone = Arc::new(Zone::load(&zone_text, &topology)?);
        let (dns_fault, dns_fault_rx) = watch::channel(None);
        let dns_ctx = Arc::new(DnsContext {
            topology: topology.clone(),
            trace: trace.clone(),
            fault: dns_fault_rx,
            zone: zone.clone(),
            connections: crate::net::ConnectionTasks::default(),
        });
        let dns = dns_ctx.clone();
        tasks.push(tokio::spawn(dns::run_udp(dns_ctx.clone(), block.dns)));
        tasks.push(tokio::spawn(dns::run_tcp(dns_ctx, block.dns_tcp)));

        let ca = Arc::new(match &spec.ca_dir {
            Some(dir) => LabCa::kept_in(dir)?,
            None => LabCa::new()?,
        });
        let auth = spec.digest.then(|| DigestAuth {
            realm: topology.zone.clone(),
            users: HashMap::from([(provisioning.line.auth_name.clone(), provisioning.line.password.clone())]),
        });
        let mut elements = HashMap::new();
        for (element, sockets) in block.sip {
            let behaviour: Box<dyn Behaviour> = if element.is_registrar() {
                let config = RegistrarConfig {
                    auth: auth.clone(),
                    min_expires: spec.min_expires,
                    outbound: spec.outbound,
                    ..RegistrarConfig::default()
                };
                Box::new(Registrar::new(element, topology.clone(), config))
            } else if element.is_proxy() {
                Box::new(Proxy::new(element, topology.clone(), spec.proxy.clone()))
            } else {
                Box::new(EdgeProxy::new(element, topology.clone()))
            };
            let shared = ElementShared::new(element, topology.clone(), trace.clone(), behaviour);
            let acceptor = ca.acceptor(element, &topology)?;
            tasks.push(tokio::spawn(elements::run_udp(shared.clone(), sockets.udp)));
            for _ in 0..spec.udp_readers.max(1) {
                tasks.push(tokio::spawn(elements::read_udp(shared.clone())));
            }
            tasks.push(tokio::spawn(elements::run_tcp_listener(shared.clone(), sockets.tcp)));
            tasks.push(tokio::spawn(elements::run_tls_listener(shared.clone(), sockets.tls, acceptor)));
            elements.insert(element, shared);
        }

        let dir = tempfile::Builder::new().prefix("sipharness-").tempdir()?;
        let ca_file = dir.path().join("lab-ca.pem");
        std::fs::write(&ca_file, &ca.certificate_pem)?;
        let addresses = LabAddresses {
            phone: topology.phone_ip(),
            dns: topology.dns_addr(),
            ca_file,
            console: topology.console_ip(),
            topology: Topology::clone(&topology),
        };
        dut.provision(&provisioning, &addresses, dir.path()).await?;
        let timing = spec.timing(dut.capabilities());
        dut.start().await?;
        tracing::info!(block = %topology.ip(Element::Dns), "lab up");
        Ok(Lab {
            topology,
            provisioning,
            trace,
            elements,
            dns_fault,
            dns,
            zone,
            ca,
            active_faults: HashMap::new(),
            captures: Default::default(),
            tasks: std::mem::take(&mut tasks.0),
            dut,
            timing,
            cursor: 0,
            matched: Vec::new(),
            waited: Duration::ZERO,
            dir,
        })
    }

    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// The lab's CA (tests use it to open TLS flows as a phone would).
    pub fn ca(&self) -> &LabCa {
        &self.ca
    }

    /// Where the lab keeps the case's files (cfg, CA, phone log).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Records something the case did outside the elements' faults (a DNS record changed), so
    /// ladders and snapshots show it and cut their phases there.
    pub fn note_action(&self, element: Element, text: impl Into<String>) {
        self.note(element, text.into());
    }

    fn note(&self, element: Element, text: String) {
        let addr = self.topology.sip_addr(element);
        self.trace.record(Record {
            element,
            direction: Direction::Sent,
            transport: Transport::Udp,
            local: addr,
            remote: addr,
            flow: None,
            payload: Payload::Action(text),
            fate: Fate::Delivered,
        });
    }

    /// Puts a lasting fault on an element or one of its transports. The DNS takes `silent` and `refuse`.
    pub fn fail(&mut self, target: impl Into<FaultTarget>, fault: Fault) {
        let target = target.into();
        if fault == Fault::Refuse {
            self.capture_refused(target.element);
        }
        // The fault first, the note after: whoever reads the note finds the fault in force.
        match self.elements.get(&target.element) {
            Some(shared) => shared.set_fault(&target, Some(fault)),
            None => {
                self.dns_fault.send_replace(Some(fault));
            }
        }
        self.note(target.element, format!("fail {target} {fault}"));
        self.active_faults.insert(target.element, fault);
        self.cursor = self.trace.len();
    }

    /// Starts recording what is sent to `element`'s ports while `refuse` has them closed,
    /// where the lab may capture on loopback.
    fn capture_refused(&mut self, element: Element) {
        let refused: crate::capture::RefusedCheck = match self.elements.get(&element) {
            Some(shared) => {
                let shared = shared.clone();
                Arc::new(move |transport| shared.faults.borrow().on(transport) == Some(Fault::Refuse))
            }
            None => {
                let dns = self.dns_fault.subscribe();
                Arc::new(move |_| *dns.borrow() == Some(Fault::Refuse))
            }
        };
        self.captures.start(element, &self.topology, &self.trace, refused);
    }

    /// Lifts a lasting fault.
    pub fn restore(&mut self, target: impl Into<FaultTarget>) {
        let target = target.into();
        if target.transport.is_none() {
            // Before the ports open again: nothing delivered is ever recorded as refused.
            self.captures.stop(target.element);
        }
        match self.elements.get(&target.element) {
            Some(shared) => shared.set_fault(&target, None),
            None => {
                self.dns_fault.send_replace(None);
            }
        }
        self.note(target.element, format!("restore {target}"));
        self.active_faults.remove(&target.element);
        self.cursor = self.trace.len();
    }

    /// A one-off event: `reset` (every TCP/TLS flow of the target reset) or `restart` (all state dropped).
    pub fn event(&mut self, target: impl Into<FaultTarget>, event: Event) {
        let target = target.into();
        if let Some(shared) = self.elements.get(&target.element) {
            match event {
                Event::Reset => shared.reset_flows(&target),
                Event::Restart => shared.restart(),
            }
        }
        self.note(target.element, format!("{} {target}", event.id_segment()));
        self.cursor = self.trace.len();
    }

    /// Drives the phone as a user would (the vendor's XML push for refphone and the vendor's phones).
    pub async fn stimulate(&mut self, stimulus: crate::dut::Stimulus) -> Result<(), HarnessError> {
        self.note(Element::ProxyA, format!("phone {}", stimulus.execute_uri()));
        self.cursor = self.trace.len();
        self.dut.stimulate(stimulus).await
    }

    /// Gives an element's behaviour a command (a proxy's NOTIFYs, a deactivation).
    pub async fn command(&mut self, element: Element, command: ElementCommand) {
        self.note(element, format!("{element} {command:?}"));
        if let Some(shared) = self.elements.get(&element) {
            shared.command(&command).await;
        }
    }

    /// How many TCP/TLS flows an element holds open.
    pub fn open_flows(&self, element: Element) -> usize {
        self.elements.get(&element).map_or(0, |e| e.open_flows())
    }

    /// The DNS zone, to change records while the case runs.
    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// Waits for `expectation`; a missed deadline, or a match before its lower bound, is a
    /// violation of its requirement.
    pub async fn expect(&mut self, mut expectation: Expect) -> Result<TraceEvent, CaseError> {
        expectation.transport = expectation.transport.or(Some(self.provisioning.transport));
        let Some(deadline) = expectation.deadline.clone() else {
            return Err(HarnessError::Other("an expectation without a deadline".into()).into());
        };
        let now = self.trace.now();
        let from = expectation.counted_from.unwrap_or(now);
        let wait_until = Instant::now() + (from + deadline.limit()).saturating_sub(now);
        let topology = self.topology.clone();
        let waiting = Instant::now();
        let found = self.trace.wait_for(self.cursor, wait_until, |e| expectation.matches(e, &topology)).await;
        self.waited += waiting.elapsed();
        let window = self.trace.events_from(self.cursor);
        let watched = (from, from + deadline.limit());
        let violation = |message: String, arrived: String| {
            Violation::new(expectation.requirement, expectation.describe(&topology), arrived, message)
                .watched(watched.0, watched.1)
        };
        let Some(event) = found else {
            self.dut.check_alive()?;
            let (mut arrived, messages) = expect::arrivals(&window, &topology);
            for (element, fault) in &self.active_faults {
                if *fault == Fault::Refuse
                    && let Some(why) = self.captures.blind_to(*element)
                {
                    arrived.push_str(&format!(
                        " (what the phone sent to {element} is not recorded: `refuse` closed its port, the kernel answered ICMP; {why})"
                    ));
                }
            }
            let message = format!(
                "the phone did not meet {} in time ({})",
                expectation.requirement,
                expectation.requirement.sentence()
            );
            return Err(violation(message, arrived).pointing_at(messages).into());
        };
        let events = self.trace.snapshot();
        if self.dut.capabilities().names_registrar_in_request_uri
            && let Some(complaint) = expect::request_uri_complaint(&events, &event, &topology)
        {
            return Err(violation(complaint.clone(), complaint).pointing_at(vec![event.index]).into());
        }
        if let Some(complaint) = expect::phone_hop_complaint(&events, &event, &expectation, &topology) {
            // C1: the phone obeys its cfg's transport.
            let mut v = violation(complaint.clone(), complaint).pointing_at(vec![event.index]);
            v.requirement = Requirement::C1;
            return Err(v.into());
        }
        if let Some(earliest) = &expectation.not_before
            && event.at < from + earliest.limit()
        {
            let arrived = format!(
                "#{} {} {:.2} s after the wait began",
                event.index,
                ladder::describe_event(&event, &topology),
                event.at.saturating_sub(from).as_secs_f64()
            );
            let message = format!("too early: {}", expectation.requirement.sentence());
            return Err(violation(message, arrived)
                .watched(from, from + earliest.limit())
                .pointing_at(vec![event.index])
                .into());
        }
        self.cursor = event.index + 1;
        self.matched.push(event.index);
        Ok(event)
    }

    /// Waits for every expectation, in any order (the spec does not order them); each deadline
    /// runs from now.
    pub async fn expect_all(&mut self, expectations: Vec<Expect>) -> Result<Vec<TraceEvent>, CaseError> {
        let start = self.cursor;
        let started = self.trace.now();
        let mut found = Vec::new();
        for mut expectation in expectations {
            self.cursor = start;
            // Every deadline counts from the moment the case started waiting for the set.
            expectation.counted_from = expectation.counted_from.or(Some(started));
            found.push(self.expect(expectation).await?);
        }
        self.cursor = found.iter().map(|e| e.index + 1).max().unwrap_or(start);
        Ok(found)
    }

    /// Checks over everything recorded so far that no event matches `forbidden`.
    pub fn expect_none_so_far(&self, forbidden: &Expect, what: &str) -> Result<(), CaseError> {
        let events = self.trace.snapshot();
        match events.iter().find(|e| forbidden.matches(e, &self.topology)) {
            None => Ok(()),
            Some(event) => Err(Violation::new(
                forbidden.requirement,
                what.to_owned(),
                format!(
                    "#{} {} at {:.2} s",
                    event.index,
                    ladder::describe_event(event, &self.topology),
                    event.at.as_secs_f64()
                ),
                format!("unexpected: {}", ladder::describe_event(event, &self.topology)),
            )
            .pointing_at(vec![event.index])
            .into()),
        }
    }

    /// Where the next expectation starts looking: a mark to come back to with [`Lab::look_from`].
    pub fn mark(&self) -> usize {
        self.cursor
    }

    /// The next expectations look at events from `mark` on (what a phone did between a fault and
    /// its restore may already be the answer, as with `stall`, where reconnecting is right).
    pub fn look_from(&mut self, mark: usize) {
        self.cursor = mark;
    }

    /// Watches the phone for `window` (a bounded observation, not a sleep): every event from the
    /// last matched expectation on must keep `rules`; the first that breaks one ends the wait.
    pub async fn hold(&mut self, rules: SteadyRules, window: Duration) -> Result<(), CaseError> {
        let topology = self.topology.clone();
        let from = self.cursor;
        let before = self.trace.snapshot();
        let rules = rules.after(&before[..from.min(before.len())]);
        let started = self.trace.now();
        let waiting = Instant::now();
        let until = waiting + window;
        let broken = self.trace.wait_for(from, until, |e| rules.breaks(e, &topology).is_some()).await;
        self.waited += waiting.elapsed();
        let events = self.trace.events_from(from);
        let verdict = match broken {
            Some(event) => rules.breaks(&event, &topology).map(|(requirement, rule)| (requirement, rule, event)),
            None => rules.too_many_probes(&events, started, &topology),
        };
        match verdict {
            None => {
                // What follows waits for what happens after the window.
                self.cursor = self.trace.len();
                Ok(())
            }
            Some((requirement, rule, event)) => {
                let before: Vec<TraceEvent> = events.into_iter().filter(|e| e.index < event.index).collect();
                let (before, _) = expect::arrivals(&before, &topology);
                Err(Violation::new(
                    requirement,
                    format!("for {:.2} s: {}", window.as_secs_f64(), rules.describe(&topology)),
                    format!(
                        "#{} {} at {:.2} s ({rule}); before it: {before}",
                        event.index,
                        ladder::describe_event(&event, &topology),
                        event.at.as_secs_f64(),
                    ),
                    format!("{rule}: {}", requirement.sentence()),
                )
                .watched(started, started + window)
                .pointing_at(vec![event.index])
                .into())
            }
        }
    }

    /// Trace positions of the events that met an expectation so far.
    pub fn matched(&self) -> &[usize] {
        &self.matched
    }

    /// The normalised ladder of the case up to its last matched expectation (BRIEF §7).
    pub fn ladder(&self) -> String {
        ladder::render_snapshot(&self.trace.snapshot(), &self.matched, &self.topology)
    }

    /// The whole trace so far as a ladder, for failure reports.
    pub fn full_ladder(&self) -> String {
        ladder::render(&self.trace.snapshot(), &self.topology)
    }

    /// Stops the phone and every element.
    pub async fn shutdown(&mut self) {
        if let Err(e) = self.dut.stop().await {
            tracing::warn!("stopping the DUT: {e}");
        }
        self.captures.stop_all();
        // Waited for, not only aborted: the next lab on the same addresses (`--lab`, a pinned
        // block) binds them at once.
        for task in self.tasks.drain(..) {
            task.abort();
            let _ = task.await;
        }
        for element in self.elements.values() {
            element.connections.shutdown().await;
        }
        self.dns.connections.shutdown().await;
    }

    /// Ends every task of the lab: listeners, the DNS, and every connection's (none outlives it).
    fn stop_tasks(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        for element in self.elements.values() {
            element.connections.abort_all();
        }
        self.dns.connections.abort_all();
    }

    /// The connection tasks the lab's elements and DNS are running (each connection, each
    /// delayed answer).
    pub fn live_connection_tasks(&self) -> usize {
        self.elements.values().map(|e| e.connections.live()).sum::<usize>() + self.dns.connections.live()
    }

    /// How long the case has waited on the phone so far (expectations and observation windows).
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// How long the case may run before the watchdog stops it.
    pub fn budget(&self) -> Duration {
        self.timing.case_budget()
    }
}

/// A lab's tasks while it starts: aborted when dropped before the lab holds them.
#[derive(Default)]
struct AbortOnDrop(Vec<JoinHandle<()>>);

impl AbortOnDrop {
    fn push(&mut self, task: JoinHandle<()>) {
        self.0.push(task);
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop_tasks();
    }
}
