//! The lab's DNS as a phone's resolver sees it: answers from the zone, TTLs honoured by a caching resolver, records changed while a case runs.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::lab;
use harness::Element;
use harness::trace::{Direction, DnsRecord, Payload};
use hickory_resolver::Resolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

/// A caching resolver bound to the phone's address, asking only the lab's DNS.
fn resolver(lab: &harness::Lab) -> Resolver<TokioRuntimeProvider> {
    let mut server = NameServerConfig::udp(lab.topology.dns_addr().ip());
    server.connections.iter_mut().for_each(|c| {
        c.port = lab.topology.dns_addr().port();
        c.bind_addr = Some(SocketAddr::new(lab.topology.phone_ip(), 0));
    });
    let config = ResolverConfig::from_parts(None, vec![], vec![server]);
    let mut opts = ResolverOpts::default();
    opts.ip_strategy = hickory_resolver::config::LookupIpStrategy::Ipv4Only;
    let mut builder = Resolver::builder_with_config(config, TokioRuntimeProvider::default());
    *builder.options_mut() = opts;
    builder.build().expect("resolver")
}

fn queries(lab: &harness::Lab, name: &str) -> Vec<(Duration, String)> {
    lab.trace()
        .snapshot()
        .into_iter()
        .filter(|e| e.element == Element::Dns && e.direction == Direction::Sent)
        .filter_map(|e| match e.payload {
            Payload::Dns(DnsRecord::Answer { name: n, answers, .. }) if n == name => Some((e.at, answers.join(","))),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_changed_record_is_served_after_the_ttl_and_the_requery_is_logged() {
    let lab = lab().await;
    let resolver = resolver(&lab);
    let name = format!("registrar-a.{}", lab.topology.zone);
    lab.zone().set(&name, "A", 1, &[&lab.topology.ip(Element::RegistrarA).to_string()]).await.unwrap();

    let first = resolver.lookup_ip(format!("{name}.")).await.unwrap();
    assert_eq!(first.iter().collect::<Vec<_>>(), [lab.topology.ip(Element::RegistrarA)]);
    let moved = IpAddr::V4(Ipv4Addr::new(127, 99, 99, 99));
    lab.zone().set(&name, "A", 1, &[&moved.to_string()]).await.unwrap();

    // Within the 1 s TTL the cache answers without asking (a bounded observation window, polled
    // every 100 ms); once the TTL ran out, the next lookup asks again and gets the new answer.
    let first_query_at = queries(&lab, &name)[0].0;
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    while lab.trace().now() < first_query_at + Duration::from_millis(900) {
        ticks.tick().await;
        let cached = resolver.lookup_ip(format!("{name}.")).await.unwrap();
        if lab.trace().now() < first_query_at + Duration::from_millis(900) {
            assert_eq!(cached.iter().next(), Some(lab.topology.ip(Element::RegistrarA)), "served from the cache");
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        ticks.tick().await;
        let now = resolver.lookup_ip(format!("{name}.")).await.unwrap();
        if now.iter().next() == Some(moved) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the new record never arrived");
    }
    let log = queries(&lab, &name);
    assert_eq!(log.len(), 2, "one query per TTL period: {log:?}");
    assert!(log[1].0 - log[0].0 >= Duration::from_secs(1), "the re-query came after the 1 s TTL: {log:?}");
    assert!(log[0].1.contains(&lab.topology.ip(Element::RegistrarA).to_string()));
    assert!(log[1].1.contains("127.99.99.99"), "the new answer was served: {log:?}");
}

#[tokio::test]
async fn records_can_be_added_and_removed() {
    let lab = lab().await;
    let resolver = resolver(&lab);
    let name = format!("_sip._udp.registrar-b.{}", lab.topology.zone);
    lab.zone().add(&name, "SRV", 0, &format!("20 10 5070 registrar-b.{}.", lab.topology.zone)).await.unwrap();
    let srv = resolver.srv_lookup(format!("{name}.")).await.unwrap();
    let mut ports: Vec<u16> = srv
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            hickory_resolver::proto::rr::RData::SRV(s) => Some(s.port),
            _ => None,
        })
        .collect();
    ports.sort();
    assert_eq!(ports, [5060, 5070]);

    let a_name = format!("proxy-b.{}", lab.topology.zone);
    lab.zone().remove(&a_name, "A").await.unwrap();
    assert!(resolver.lookup_ip(format!("{a_name}.")).await.is_err(), "a removed A record is not served");

    assert!(
        lab.zone().set("elsewhere.example.", "A", 60, &["127.1.1.1"]).await.is_err(),
        "names outside the zone are refused"
    );
    assert!(lab.zone().set(&a_name, "A", 60, &["not-an-address"]).await.is_err());
}

/// A query for `name` and `record_type`, as a phone's resolver sends it (no EDNS).
fn raw_query(id: u16, name: &str, record_type: hickory_proto::rr::RecordType) -> Vec<u8> {
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    let mut query = Message::new(id, MessageType::Query, OpCode::Query);
    query.add_query(Query::query(hickory_proto::rr::Name::from_ascii(name).unwrap(), record_type));
    query.to_vec().unwrap()
}

/// RFC 1035 §4.1.1: a datagram with QR=1 is an answer, never answered (one spoofed datagram would
/// otherwise loop two servers for ever); it is recorded as dropped.
#[tokio::test]
async fn a_response_is_never_answered() {
    use hickory_proto::op::{Message, MessageType, OpCode};
    let lab = lab().await;
    let socket = tokio::net::UdpSocket::bind(SocketAddr::new(lab.topology.phone_ip(), 0)).await.unwrap();
    let response = Message::new(7, MessageType::Response, OpCode::Query).to_vec().unwrap();
    socket.send_to(&response, lab.topology.dns_addr()).await.unwrap();
    let mut buf = [0u8; 512];
    let answer = tokio::time::timeout(common::SILENCE_WINDOW, socket.recv_from(&mut buf)).await;
    assert!(answer.is_err(), "a response was answered");
    let dropped = lab.trace().snapshot().into_iter().any(|e| {
        e.element == Element::Dns
            && e.direction == Direction::Received
            && matches!(e.fate, harness::trace::Fate::Dropped(_))
            && matches!(&e.payload, Payload::Dns(DnsRecord::Malformed { detail }) if detail.contains("QR=1"))
    });
    assert!(dropped, "recorded as a dropped response");
}

/// RFC 1035 §4.2.1: over UDP an answer fits in 512 octets (no EDNS here) or comes truncated with
/// TC set and no records, so the resolver asks again over TCP, which carries it whole.
#[tokio::test]
async fn a_long_answer_is_truncated_over_udp_and_whole_over_tcp() {
    use hickory_proto::op::Message;
    use hickory_proto::rr::RecordType;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let lab = lab().await;
    let name = format!("many.{}", lab.topology.zone);
    let addresses: Vec<String> = (0..250).map(|i| format!("127.99.{}.{}", i / 200, i % 200 + 1)).collect();
    let addresses: Vec<&str> = addresses.iter().map(String::as_str).collect();
    lab.zone().set(&name, "A", 60, &addresses).await.unwrap();
    let query = raw_query(9, &format!("{name}."), RecordType::A);

    let socket = tokio::net::UdpSocket::bind(SocketAddr::new(lab.topology.phone_ip(), 0)).await.unwrap();
    socket.send_to(&query, lab.topology.dns_addr()).await.unwrap();
    let mut buf = vec![0u8; 65_536];
    let (n, _) = tokio::time::timeout(common::ANSWER_DEADLINE, socket.recv_from(&mut buf)).await.unwrap().unwrap();
    assert!(n <= 512, "a {n}-octet datagram: the amplification RFC 1035 §4.2.1 forbids");
    let truncated = Message::from_vec(&buf[..n]).unwrap();
    assert!(truncated.metadata.truncation, "TC set");
    assert!(truncated.answers.is_empty());

    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(lab.topology.phone_ip(), 0)).unwrap();
    let mut stream = socket.connect(lab.topology.dns_addr()).await.unwrap();
    let length = u16::try_from(query.len()).unwrap().to_be_bytes();
    stream.write_all(&length).await.unwrap();
    stream.write_all(&query).await.unwrap();
    let mut length = [0u8; 2];
    tokio::time::timeout(common::ANSWER_DEADLINE, stream.read_exact(&mut length)).await.unwrap().unwrap();
    let mut whole = vec![0u8; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut whole).await.unwrap();
    let whole = Message::from_vec(&whole).unwrap();
    assert_eq!(whole.answers.len(), 250, "the whole answer over TCP");
    assert!(!whole.metadata.truncation);
}

/// A record set no DNS message could carry (a 70,000-character TXT) is refused with a reason
/// when it is added, instead of leaving its name unanswerable.
#[tokio::test]
async fn a_record_too_long_to_serve_is_refused() {
    let lab = lab().await;
    let name = format!("long.{}", lab.topology.zone);
    let chunks: Vec<String> = (0..280).map(|_| format!("\"{}\"", "x".repeat(250))).collect();
    let error = lab.zone().add(&name, "TXT", 60, &chunks.join(" ")).await.expect_err("refused");
    assert!(error.contains("octets"), "{error}");
    lab.zone().add(&name, "TXT", 60, "\"short\"").await.expect("a short TXT is served");
}

/// A DNS TCP connection that brings no query is closed after the idle timeout (RFC 7766 §6.2.3).
#[tokio::test]
async fn an_idle_dns_tcp_connection_is_closed() {
    use tokio::io::AsyncReadExt;
    let lab = lab().await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(lab.topology.phone_ip(), 0)).unwrap();
    let mut stream = socket.connect(lab.topology.dns_addr()).await.unwrap();
    let mut buf = [0u8; 16];
    let deadline = harness::dns::TCP_IDLE_TIMEOUT + common::ANSWER_DEADLINE;
    let read = tokio::time::timeout(deadline, stream.read(&mut buf)).await.expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "closed, not answered: {read:?}");
}

/// The socket-less answering path (`dns::QueryHandler`, what the fuzzer drives) answers as the
/// lab's DNS does: an A record from the zone, nothing for a response, each query recorded.
#[tokio::test]
async fn the_query_handler_answers_without_sockets_as_the_server_does() {
    use harness::dns::QueryHandler;
    use harness::topology::Topology;
    use harness::trace::Transport;
    use hickory_proto::op::{Message, MessageType, OpCode};
    let topology = Topology::new(Ipv4Addr::new(127, 99, 0, 0), "lab.test");
    let proxy_a = topology.ip(Element::ProxyA);
    let mut handler = QueryHandler::new(topology).unwrap();
    let source = SocketAddr::from((Ipv4Addr::new(127, 99, 0, 9), 5060));
    let query = raw_query(11, "proxy-a.lab.test.", hickory_proto::rr::RecordType::A);
    let answer = handler.answer(&query, source, Transport::Udp).await.expect("an answer");
    let answer = Message::from_vec(&answer).unwrap();
    assert_eq!(answer.metadata.id, 11);
    let addresses: Vec<String> = answer.answers.iter().map(|r| r.data.to_string()).collect();
    assert_eq!(addresses, [proxy_a.to_string()]);
    assert_eq!(handler.trace().len(), 2, "the query and its answer are recorded");

    let response = Message::new(12, MessageType::Response, OpCode::Query).to_vec().unwrap();
    assert!(handler.answer(&response, source, Transport::Udp).await.is_none(), "a response was answered");
}
