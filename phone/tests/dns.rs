//! F5 and RFC 3263 against a live authoritative DNS (a tiny one played here): the shell's resolver never uses an answer past its TTL (`ignore-dns-ttl` does), serves the last answer while the DNS does not answer, and follows NAPTR, SRV priority (`ignore-srv-priority` reverses it) and A records.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_resolver::proto::op::{Message, OpCode};
use hickory_resolver::proto::rr::rdata::{A, NAPTR, SRV};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use phone::core::{Lookup, Transport};
use phone::io::dns::SipResolver;
use phone::quirks::{Quirk, Quirks};
use tokio::net::UdpSocket;

const TTL_SECONDS: u32 = 1;
const FIRST: Ipv4Addr = Ipv4Addr::new(127, 77, 0, 11);
const SECOND: Ipv4Addr = Ipv4Addr::new(127, 77, 0, 12);

/// An authoritative server answering A queries for registrar-a with `answer` (TTL `ttl`, 1 s
/// unless changed; no data when `answer` is none) and other queries from `records`, counting
/// queries; `silent` swallows them, `stop` closes its port.
struct TinyDns {
    address: SocketAddr,
    answer: Arc<Mutex<Option<Ipv4Addr>>>,
    ttl: Arc<AtomicU32>,
    silent: Arc<AtomicBool>,
    queries: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TinyDns {
    async fn start(own_address: Ipv4Addr) -> TinyDns {
        TinyDns::with_records(own_address, Vec::new()).await
    }

    async fn with_records(own_address: Ipv4Addr, records: Vec<Record>) -> TinyDns {
        let socket = UdpSocket::bind((own_address, 0)).await.expect("the DNS binds a loopback address");
        let address = socket.local_addr().unwrap();
        let answer = Arc::new(Mutex::new(Some(FIRST)));
        let ttl = Arc::new(AtomicU32::new(TTL_SECONDS));
        let silent = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(AtomicUsize::new(0));
        let (answer_of_task, ttl_of_task, silent_of_task, queries_of_task) =
            (answer.clone(), ttl.clone(), silent.clone(), queries.clone());
        let task = tokio::spawn(async move {
            let mut buffer = [0u8; 1500];
            loop {
                let Ok((length, from)) = socket.recv_from(&mut buffer).await else { return };
                let Ok(query) = Message::from_vec(&buffer[..length]) else { continue };
                queries_of_task.fetch_add(1, Ordering::SeqCst);
                if silent_of_task.load(Ordering::SeqCst) {
                    continue;
                }
                let mut response = Message::response(query.metadata.id, OpCode::Query);
                response.metadata.authoritative = true;
                for question in &query.queries {
                    response.add_query(question.clone());
                    let listed: Vec<Record> = records
                        .iter()
                        .filter(|r| r.name == *question.name() && r.record_type() == question.query_type())
                        .cloned()
                        .collect();
                    if !listed.is_empty() {
                        response.add_answers(listed);
                    } else if question.query_type() == RecordType::A
                        && question.name().to_ascii() == "registrar-a.lab.test."
                        && let Some(ip) = *answer_of_task.lock().unwrap()
                    {
                        let ttl = ttl_of_task.load(Ordering::SeqCst);
                        response.add_answer(Record::from_rdata(question.name().clone(), ttl, RData::A(A(ip))));
                    }
                }
                let _ = socket.send_to(&response.to_vec().unwrap(), from).await;
            }
        });
        TinyDns { address, answer, ttl, silent, queries, task }
    }

    fn change_answer(&self, ip: Ipv4Addr) {
        *self.answer.lock().unwrap() = Some(ip);
    }

    /// Answers for registrar-a carry `seconds` as their TTL from now on.
    fn set_ttl(&self, seconds: u32) {
        self.ttl.store(seconds, Ordering::SeqCst);
    }

    fn remove_answer(&self) {
        *self.answer.lock().unwrap() = None;
    }

    fn set_silent(&self, silent: bool) {
        self.silent.store(silent, Ordering::SeqCst);
    }

    /// Closes the DNS's port: queries get ICMP port unreachable (the harness's `refuse`).
    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

fn registrar() -> Lookup {
    Lookup::Address { host: "registrar-a.lab.test".into(), port: 5060 }
}

async fn resolved_ip(resolver: &SipResolver) -> Ipv4Addr {
    match resolver.resolve(&registrar()).await.expect("resolves")[0] {
        SocketAddr::V4(v4) => *v4.ip(),
        SocketAddr::V6(v6) => panic!("IPv6 {v6}"),
    }
}

#[tokio::test]
async fn an_answer_is_used_only_for_its_ttl_then_asked_again() {
    let dns = TinyDns::start(Ipv4Addr::new(127, 77, 1, 53)).await;
    let resolver =
        SipResolver::new(dns.address, "127.77.1.20".parse().unwrap(), Duration::from_secs(1), &Quirks::none()).unwrap();
    let asked_at = Instant::now();
    assert_eq!(resolved_ip(&resolver).await, FIRST);
    assert_eq!(dns.queries(), 1);
    dns.change_answer(SECOND);
    assert_eq!(resolved_ip(&resolver).await, FIRST, "within the TTL the cached answer serves");
    assert_eq!(dns.queries(), 1);
    // A bounded observation: the new answer must be in use within the TTL and a little scheduling slack.
    let mut ticks = tokio::time::interval(Duration::from_millis(50));
    loop {
        ticks.tick().await;
        if resolved_ip(&resolver).await == SECOND {
            break;
        }
        assert!(
            asked_at.elapsed() < Duration::from_millis(2500),
            "still the old answer {:?} after the 1 s TTL",
            asked_at.elapsed()
        );
    }
    assert!(
        asked_at.elapsed() >= Duration::from_millis(900),
        "asked again before the TTL ran out (allowed, but not expected)"
    );
    assert_eq!(dns.queries(), 2);
}

#[tokio::test]
async fn quirk_ignore_dns_ttl_keeps_the_first_answer_for_ever() {
    let dns = TinyDns::start(Ipv4Addr::new(127, 77, 2, 53)).await;
    let resolver = SipResolver::new(
        dns.address,
        "127.77.2.20".parse().unwrap(),
        Duration::from_secs(1),
        &Quirks::none().with(Quirk::IgnoreDnsTtl),
    )
    .unwrap();
    assert_eq!(resolved_ip(&resolver).await, FIRST);
    dns.change_answer(SECOND);
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    while started.elapsed() < Duration::from_millis(2000) {
        ticks.tick().await;
        assert_eq!(resolved_ip(&resolver).await, FIRST);
    }
    assert_eq!(dns.queries(), 1);
}

fn record(name: &str, data: RData) -> Record {
    Record::from_rdata(Name::from_ascii(name).unwrap(), 60, data)
}

fn naptr(order: u16, preference: u16, service: &str, replacement: &str) -> RData {
    RData::NAPTR(NAPTR::new(
        order,
        preference,
        b"S".to_vec().into_boxed_slice(),
        service.as_bytes().to_vec().into_boxed_slice(),
        Vec::new().into_boxed_slice(),
        Name::from_ascii(replacement).unwrap(),
    ))
}

fn srv(priority: u16, weight: u16, port: u16, target: &str) -> RData {
    RData::SRV(SRV::new(priority, weight, port, Name::from_ascii(target).unwrap()))
}

fn a(ip: [u8; 4]) -> RData {
    RData::A(A(Ipv4Addr::from(ip)))
}

#[tokio::test]
async fn port_zero_follows_naptr_for_the_transport_then_srv_by_priority_then_a() {
    let records = vec![
        record("lab.test.", naptr(10, 10, "SIP+D2U", "_sip._udp.lab.test.")),
        record("lab.test.", naptr(10, 20, "SIP+D2T", "_sip._tcp.lab.test.")),
        record("lab.test.", naptr(10, 30, "SIPS+D2T", "_sips._tcp.lab.test.")),
        record("_sip._tcp.lab.test.", srv(20, 0, 5062, "proxy-b.lab.test.")),
        record("_sip._tcp.lab.test.", srv(10, 0, 5070, "proxy-a.lab.test.")),
        record("_sip._udp.lab.test.", srv(10, 0, 5099, "proxy-c.lab.test.")),
        record("_sips._tcp.lab.test.", srv(10, 0, 5061, "proxy-a.lab.test.")),
        record("proxy-a.lab.test.", a([127, 77, 3, 1])),
        record("proxy-b.lab.test.", a([127, 77, 3, 2])),
        record("proxy-c.lab.test.", a([127, 77, 3, 3])),
    ];
    let dns = TinyDns::with_records(Ipv4Addr::new(127, 77, 3, 53), records).await;
    let resolver =
        SipResolver::new(dns.address, "127.77.3.20".parse().unwrap(), Duration::from_secs(1), &Quirks::none()).unwrap();
    let tcp = resolver.resolve(&Lookup::Service { host: "lab.test".into(), transport: Transport::Tcp }).await.unwrap();
    assert_eq!(tcp, vec!["127.77.3.1:5070".parse::<SocketAddr>().unwrap(), "127.77.3.2:5062".parse().unwrap()]);
    let udp = resolver.resolve(&Lookup::Service { host: "lab.test".into(), transport: Transport::Udp }).await.unwrap();
    assert_eq!(udp, vec!["127.77.3.3:5099".parse::<SocketAddr>().unwrap()]);
    let tls = resolver.resolve(&Lookup::Service { host: "lab.test".into(), transport: Transport::Tls }).await.unwrap();
    assert_eq!(tls, vec!["127.77.3.1:5061".parse::<SocketAddr>().unwrap()]);
}

#[tokio::test]
async fn without_naptr_srv_is_asked_and_without_srv_the_address_on_the_default_port() {
    let records = vec![
        record("_sip._tcp.proxy-a.lab.test.", srv(10, 0, 5072, "proxy-a.lab.test.")),
        record("proxy-a.lab.test.", a([127, 77, 4, 1])),
        record("proxy-b.lab.test.", a([127, 77, 4, 2])),
    ];
    let dns = TinyDns::with_records(Ipv4Addr::new(127, 77, 4, 53), records).await;
    let resolver =
        SipResolver::new(dns.address, "127.77.4.20".parse().unwrap(), Duration::from_secs(1), &Quirks::none()).unwrap();
    let by_srv = resolver
        .resolve(&Lookup::Service { host: "proxy-a.lab.test".into(), transport: Transport::Tcp })
        .await
        .unwrap();
    assert_eq!(by_srv, vec!["127.77.4.1:5072".parse::<SocketAddr>().unwrap()]);
    let by_a = resolver
        .resolve(&Lookup::Service { host: "proxy-b.lab.test".into(), transport: Transport::Tls })
        .await
        .unwrap();
    assert_eq!(by_a, vec!["127.77.4.2:5061".parse::<SocketAddr>().unwrap()]);
    let with_port = resolver.resolve(&Lookup::Address { host: "proxy-a.lab.test".into(), port: 5080 }).await.unwrap();
    assert_eq!(with_port, vec!["127.77.4.1:5080".parse::<SocketAddr>().unwrap()], "a port means A records only");
}

/// The shell's lookup timeout in these tests: short, so a test waits for it only once.
const QUERY_TIMEOUT: Duration = Duration::from_millis(300);

/// A resolver asking `dns` with [`QUERY_TIMEOUT`], the TTL of registrar-a's answers 0 s: every
/// lookup asks the DNS, so no test waits for a TTL to run out.
fn resolver_without_cache(dns: &TinyDns, phone: &str, quirks: &Quirks) -> SipResolver {
    dns.set_ttl(0);
    SipResolver::new(dns.address, phone.parse().unwrap(), QUERY_TIMEOUT, quirks).unwrap()
}

/// Resolves registrar-a, and how long it took.
async fn timed_resolution(resolver: &SipResolver) -> (Result<Vec<SocketAddr>, String>, Duration) {
    let started = Instant::now();
    let answer = resolver.resolve(&registrar()).await;
    (answer, started.elapsed())
}

fn at(ip: Ipv4Addr) -> Vec<SocketAddr> {
    vec![SocketAddr::new(ip.into(), 5060)]
}

#[tokio::test]
async fn a_silent_dns_costs_one_query_timeout_and_the_last_answer_serves_until_it_answers_again() {
    let dns = TinyDns::start(Ipv4Addr::new(127, 77, 5, 53)).await;
    let resolver = resolver_without_cache(&dns, "127.77.5.20", &Quirks::none());
    assert_eq!(resolver.resolve(&registrar()).await.unwrap(), at(FIRST));
    dns.set_silent(true);
    for _ in 0..2 {
        let queries = dns.queries();
        let (answer, took) = timed_resolution(&resolver).await;
        assert_eq!(answer.unwrap(), at(FIRST), "the last answer, past its TTL");
        assert!(dns.queries() > queries, "the DNS was asked first");
        assert!(took >= QUERY_TIMEOUT - Duration::from_millis(20), "gave up after {took:?}");
        assert!(took < QUERY_TIMEOUT * 2, "one query timeout, not {took:?}");
    }
    dns.set_silent(false);
    dns.change_answer(SECOND);
    let (answer, took) = timed_resolution(&resolver).await;
    assert_eq!(answer.unwrap(), at(SECOND), "the DNS answers again: its answer, at once");
    assert!(took < QUERY_TIMEOUT, "{took:?}");
}

#[tokio::test]
async fn a_silent_dns_without_an_earlier_answer_fails_the_lookup_after_one_timeout() {
    let dns = TinyDns::start(Ipv4Addr::new(127, 77, 6, 53)).await;
    let resolver = resolver_without_cache(&dns, "127.77.6.20", &Quirks::none());
    dns.set_silent(true);
    let (answer, took) = timed_resolution(&resolver).await;
    assert!(answer.is_err(), "{answer:?}");
    assert!(took < QUERY_TIMEOUT * 2, "{took:?}");
}

#[tokio::test]
async fn a_closed_dns_port_serves_the_last_answer_too() {
    let dns = TinyDns::start(Ipv4Addr::new(127, 77, 7, 53)).await;
    let resolver = resolver_without_cache(&dns, "127.77.7.20", &Quirks::none());
    assert_eq!(resolver.resolve(&registrar()).await.unwrap(), at(FIRST));
    dns.stop().await;
    let (answer, took) = timed_resolution(&resolver).await;
    assert_eq!(answer.unwrap(), at(FIRST));
    assert!(took < QUERY_TIMEOUT * 2, "{took:?}");
}

#[tokio::test]
async fn a_name_the_dns_says_is_gone_is_not_served_from_the_last_answer() {
    let dns = TinyDns::start(Ipv4Addr::new(127, 77, 8, 53)).await;
    let resolver = resolver_without_cache(&dns, "127.77.8.20", &Quirks::none());
    assert_eq!(resolver.resolve(&registrar()).await.unwrap(), at(FIRST));
    dns.remove_answer();
    assert!(resolver.resolve(&registrar()).await.is_err(), "the DNS answered: no such records");
    dns.set_silent(true);
    assert!(resolver.resolve(&registrar()).await.is_err(), "nothing to serve: the last answer was 'none'");
}

#[tokio::test]
async fn quirk_requery_dns_asks_the_dns_within_the_ttl_and_uses_its_answer() {
    let dns = TinyDns::start(Ipv4Addr::new(127, 77, 9, 53)).await;
    dns.set_ttl(60);
    let requery = Quirks::none().with(Quirk::RequeryDns);
    let resolver = SipResolver::new(dns.address, "127.77.9.20".parse().unwrap(), QUERY_TIMEOUT, &requery).unwrap();
    assert_eq!(resolver.resolve(&registrar()).await.unwrap(), at(FIRST));
    dns.change_answer(SECOND);
    assert_eq!(resolver.resolve(&registrar()).await.unwrap(), at(SECOND), "within the 60 s TTL, asked again");
    assert_eq!(dns.queries(), 2);
    dns.set_silent(true);
    assert_eq!(resolver.resolve(&registrar()).await.unwrap(), at(SECOND), "and serves the last answer when silent");
}

#[tokio::test]
async fn within_the_ttl_the_cache_serves_without_asking() {
    let dns = TinyDns::start(Ipv4Addr::new(127, 77, 10, 53)).await;
    dns.set_ttl(60);
    let resolver =
        SipResolver::new(dns.address, "127.77.10.20".parse().unwrap(), QUERY_TIMEOUT, &Quirks::none()).unwrap();
    assert_eq!(resolver.resolve(&registrar()).await.unwrap(), at(FIRST));
    dns.change_answer(SECOND);
    assert_eq!(resolver.resolve(&registrar()).await.unwrap(), at(FIRST));
    assert_eq!(dns.queries(), 1);
}

fn srv_records(prefix: [u8; 3]) -> Vec<Record> {
    let [p0, p1, p2] = prefix;
    vec![
        record("lab.test.", naptr(10, 10, "SIP+D2U", "_sip._udp.lab.test.")),
        record("_sip._udp.lab.test.", srv(10, 60, 5060, "registrar-a.lab.test.")),
        record("_sip._udp.lab.test.", srv(20, 60, 5060, "registrar-b.lab.test.")),
        record("registrar-a.lab.test.", a([p0, p1, p2, 1])),
        record("registrar-b.lab.test.", a([p0, p1, p2, 2])),
    ]
}

#[tokio::test]
async fn srv_priority_is_strict_and_quirk_ignore_srv_priority_reverses_it() {
    let dns = TinyDns::with_records(Ipv4Addr::new(127, 77, 11, 53), srv_records([127, 77, 11])).await;
    let service = Lookup::Service { host: "lab.test".into(), transport: Transport::Udp };
    let (first, second): (SocketAddr, SocketAddr) =
        ("127.77.11.1:5060".parse().unwrap(), "127.77.11.2:5060".parse().unwrap());
    let plain = SipResolver::new(dns.address, "127.77.11.20".parse().unwrap(), QUERY_TIMEOUT, &Quirks::none()).unwrap();
    let reversed = SipResolver::new(
        dns.address,
        "127.77.11.21".parse().unwrap(),
        QUERY_TIMEOUT,
        &Quirks::none().with(Quirk::IgnoreSrvPriority),
    )
    .unwrap();
    for _ in 0..5 {
        assert_eq!(plain.resolve(&service).await.unwrap(), vec![first, second]);
        assert_eq!(reversed.resolve(&service).await.unwrap(), vec![second, first]);
    }
}

#[tokio::test]
async fn a_silent_dns_costs_one_timeout_for_a_whole_naptr_srv_a_lookup() {
    let dns = TinyDns::with_records(Ipv4Addr::new(127, 77, 12, 53), srv_records([127, 77, 12])).await;
    let service = Lookup::Service { host: "lab.test".into(), transport: Transport::Udp };
    let resolver = SipResolver::new(
        dns.address,
        "127.77.12.20".parse().unwrap(),
        QUERY_TIMEOUT,
        &Quirks::none().with(Quirk::RequeryDns),
    )
    .unwrap();
    let answer = resolver.resolve(&service).await.unwrap();
    assert_eq!(answer.len(), 2);
    dns.set_silent(true);
    let started = Instant::now();
    assert_eq!(resolver.resolve(&service).await.unwrap(), answer, "the last answer of the whole lookup");
    assert!(started.elapsed() < QUERY_TIMEOUT * 2, "{:?}", started.elapsed());
}
