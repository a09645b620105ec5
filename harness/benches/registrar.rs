//! Benchmark of the mock registrar: REGISTER transactions per second over UDP and over TCP, client and server on one core.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use harness::dut::ScriptedPhone;
use harness::{Configuration, Element, Lab, LabSpec, Transport};
use sip::{Frame, FramerRole, HeaderName, Message, Method, StreamFramer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Transactions per run; bounded so the trace (which keeps every message) stays small.
const TRANSACTIONS: u32 = 20_000;
/// REGISTERs in flight at once.
const WINDOW: u32 = 64;

fn register(lab: &Lab, local: SocketAddr, transport: &str, n: u32) -> Vec<u8> {
    let zone = &lab.topology.zone;
    let mut m = Message::request(Method::Register, format!("sip:registrar-a.{zone}"));
    m.push_header(HeaderName::Via, format!("SIP/2.0/{transport} {local};branch=z9hG4bKbench{n};rport"));
    m.push_header(HeaderName::MaxForwards, 70);
    m.push_header(HeaderName::From, format!("<sip:u{n}@proxy-a.{zone}>;tag=b{n}"));
    m.push_header(HeaderName::To, format!("<sip:u{n}@proxy-a.{zone}>"));
    m.push_header(HeaderName::CallId, format!("bench-{n}@{}", local.ip()));
    m.push_header(HeaderName::CSeq, "1 REGISTER");
    m.push_header(HeaderName::Contact, format!("<sip:u{n}@{local}>;expires=3600"));
    m.to_bytes()
}

async fn lab() -> Lab {
    let spec = LabSpec { digest: false, ..LabSpec::new(Configuration::NoOutbound, Transport::Udp) };
    Lab::start(&spec, Box::new(ScriptedPhone::default())).await.expect("lab")
}

async fn udp() -> (f64, u32) {
    let lab = lab().await;
    let socket = tokio::net::UdpSocket::bind(SocketAddr::new(lab.topology.phone_ip(), 0)).await.unwrap();
    socket.connect(lab.topology.sip_addr(Element::RegistrarA)).await.unwrap();
    let local = socket.local_addr().unwrap();
    let mut buf = vec![0u8; 65_536];
    let started = Instant::now();
    let (mut sent, mut done, mut lost) = (0, 0, 0);
    while done + lost < TRANSACTIONS {
        while sent < TRANSACTIONS && sent - done - lost < WINDOW {
            socket.send(&register(&lab, local, "UDP", sent)).await.unwrap();
            sent += 1;
        }
        match tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                assert_eq!(Message::parse(&buf[..n]).unwrap().status(), Some(200));
                done += 1;
            }
            // Datagrams lost in a kernel queue: reported, not counted as transactions.
            _ => lost += sent - done - lost,
        }
    }
    (f64::from(done) / started.elapsed().as_secs_f64(), lost)
}

async fn tcp() -> f64 {
    let lab = lab().await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(lab.topology.phone_ip(), 0)).unwrap();
    let mut stream = socket.connect(lab.topology.sip_addr(Element::RegistrarA)).await.unwrap();
    let local = stream.local_addr().unwrap();
    let mut framer = StreamFramer::new(FramerRole::Client);
    let mut buf = vec![0u8; 65_536];
    let started = Instant::now();
    let (mut sent, mut done) = (0, 0);
    while done < TRANSACTIONS {
        while sent < TRANSACTIONS && sent - done < WINDOW {
            stream.write_all(&register(&lab, local, "TCP", sent)).await.unwrap();
            sent += 1;
        }
        while let Some(frame) = framer.next_frame() {
            assert!(matches!(frame, Frame::Message(ref m) if m.status() == Some(200)));
            done += 1;
        }
        if done < sent {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0);
            framer.push(&buf[..n]);
        }
    }
    f64::from(TRANSACTIONS) / started.elapsed().as_secs_f64()
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing we need.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (udp, lost) = runtime.block_on(udp());
    let tcp = runtime.block_on(tcp());
    // Benchmarks report on stdout; this is a binary, not a library.
    #[allow(clippy::print_stdout)]
    {
        println!(
            "mock registrar, one core (client and server on one current-thread runtime), {TRANSACTIONS} REGISTER transactions, {WINDOW} in flight:"
        );
        println!("  udp: {udp:>9.0} transactions/s ({lost} lost)");
        println!("  tcp: {tcp:>9.0} transactions/s");
    }
}
