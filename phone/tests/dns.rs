//! F5 and RFC 3263 against a live authoritative DNS (a tiny one played here): the shell's resolver never uses an answer past its TTL (`ignore-dns-ttl` does), and follows NAPTR, SRV priority and A records.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_resolver::proto::op::{Message, OpCode};
use hickory_resolver::proto::rr::rdata::{A, NAPTR, SRV};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use phone::core::{Lookup, Transport};
use phone::io::dns::SipResolver;
use tokio::net::UdpSocket;

const TTL_SECONDS: u32 = 1;
const FIRST: Ipv4Addr = Ipv4Addr::new(127, 77, 0, 11);
const SECOND: Ipv4Addr = Ipv4Addr::new(127, 77, 0, 12);

/// An authoritative server answering A queries with `answer` (1 s TTL) and other queries from
/// `records`, counting queries.
struct TinyDns {
    address: SocketAddr,
    answer: Arc<Mutex<Ipv4Addr>>,
    queries: Arc<AtomicUsize>,
}

impl TinyDns {
    async fn start(own_address: Ipv4Addr) -> TinyDns {
        TinyDns::with_records(own_address, Vec::new()).await
    }

    async fn with_records(own_address: Ipv4Addr, records: Vec<Record>) -> TinyDns {
        let socket = UdpSocket::bind((own_address, 0)).await.expect("the DNS binds a loopback address");
        let address = socket.local_addr().unwrap();
        let answer = Arc::new(Mutex::new(FIRST));
        let queries = Arc::new(AtomicUsize::new(0));
        let (answer_of_task, queries_of_task) = (answer.clone(), queries.clone());
        tokio::spawn(async move {
            let mut buffer = [0u8; 1500];
            loop {
                let Ok((length, from)) = socket.recv_from(&mut buffer).await else { return };
                let Ok(query) = Message::from_vec(&buffer[..length]) else { continue };
                queries_of_task.fetch_add(1, Ordering::SeqCst);
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
                    {
                        let ip = *answer_of_task.lock().unwrap();
                        response.add_answer(Record::from_rdata(question.name().clone(), TTL_SECONDS, RData::A(A(ip))));
                    }
                }
                let _ = socket.send_to(&response.to_vec().unwrap(), from).await;
            }
        });
        TinyDns { address, answer, queries }
    }

    fn change_answer(&self, ip: Ipv4Addr) {
        *self.answer.lock().unwrap() = ip;
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
        SipResolver::new(dns.address, "127.77.1.20".parse().unwrap(), Duration::from_secs(1), false).unwrap();
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
    let resolver = SipResolver::new(dns.address, "127.77.2.20".parse().unwrap(), Duration::from_secs(1), true).unwrap();
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
        SipResolver::new(dns.address, "127.77.3.20".parse().unwrap(), Duration::from_secs(1), false).unwrap();
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
        SipResolver::new(dns.address, "127.77.4.20".parse().unwrap(), Duration::from_secs(1), false).unwrap();
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
