//! `sipharness serve` as a person at a terminal uses it: the sockets it prints answer over UDP, TCP and TLS, and commands take effect at once.

use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use sip::{Frame, FramerRole, HeaderName, Message, Method, StreamFramer, StunMessage};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const DEADLINE: Duration = Duration::from_secs(5);
const SILENCE_WINDOW: Duration = Duration::from_millis(500);

struct Served {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    sockets: Vec<(String, String, SocketAddr)>,
    zone: String,
    ca: std::path::PathBuf,
}

impl Served {
    async fn start() -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sipharness"))
            .arg("serve")
            .env("SIPHARNESS_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("sipharness serve starts");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut sockets = Vec::new();
        let mut zone = String::new();
        loop {
            let line = tokio::time::timeout(DEADLINE, stdout.next_line())
                .await
                .expect("ready in time")
                .unwrap()
                .expect("a line");
            let words: Vec<&str> = line.split(' ').collect();
            match words.as_slice() {
                ["ready"] => break,
                ["zone", name] => zone = name.to_string(),
                [element, transport, addr] => {
                    sockets.push((element.to_string(), transport.to_string(), addr.parse().unwrap()))
                }
                _ => panic!("unexpected line {line:?}"),
            }
        }
        let ca = loop {
            let line = tokio::time::timeout(DEADLINE, stderr.next_line())
                .await
                .expect("the CA path in time")
                .unwrap()
                .unwrap();
            if let Some(path) = line.split("the lab CA is ").nth(1) {
                break std::path::PathBuf::from(path.trim());
            }
        };
        Served { child, stdin, stdout, sockets, zone, ca }
    }

    fn socket(&self, element: &str, transport: &str) -> SocketAddr {
        self.sockets.iter().find(|(e, t, _)| e == element && t == transport).map(|(_, _, a)| *a).expect("listed")
    }

    /// The phone's address in the served block: the block's base + 10.
    fn phone_ip(&self) -> IpAddr {
        let IpAddr::V4(dns) = self.socket("dns", "udp").ip() else { panic!("IPv4") };
        let [a, b, c, d] = dns.octets();
        IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d - 1 + 10))
    }

    async fn command(&mut self, line: &str) {
        self.stdin.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// Waits until the streamed ladder shows a line containing `text`.
    async fn ladder_shows(&mut self, text: &str) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let line = tokio::time::timeout_at(deadline, self.stdout.next_line()).await.expect("ladder line in time");
            if line.unwrap().expect("serve still running").contains(text) {
                return;
            }
        }
    }
}

fn register(served: &Served, transport: &str, local: SocketAddr) -> Message {
    let mut m = Message::request(Method::Register, format!("sip:registrar-a.{}", served.zone));
    m.push_header(
        HeaderName::Via,
        format!("SIP/2.0/{} {local};branch=z9hG4bKserve{};rport", transport.to_uppercase(), local.port()),
    );
    m.push_header(HeaderName::MaxForwards, 70);
    m.push_header(HeaderName::From, format!("<sip:1001@proxy-a.{}>;tag=by-hand", served.zone));
    m.push_header(HeaderName::To, format!("<sip:1001@proxy-a.{}>", served.zone));
    m.push_header(HeaderName::CallId, format!("by-hand-{}", local.port()));
    m.push_header(HeaderName::CSeq, "1 REGISTER");
    m.push_header(HeaderName::Contact, format!("<sip:1001@{local}>"));
    m
}

async fn udp_exchange(socket: &tokio::net::UdpSocket, bytes: &[u8], window: Duration) -> Option<Vec<u8>> {
    socket.send(bytes).await.unwrap();
    let mut buf = vec![0u8; 65_536];
    let n = tokio::time::timeout(window, socket.recv(&mut buf)).await.ok()?.ok()?;
    Some(buf[..n].to_vec())
}

async fn stream_exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
) -> Frame {
    stream.write_all(bytes).await.unwrap();
    let mut framer = StreamFramer::new(FramerRole::Client);
    let mut buf = vec![0u8; 65_536];
    loop {
        if let Some(frame) = framer.next_frame() {
            return frame;
        }
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut buf)).await.expect("an answer in time").unwrap();
        assert!(n > 0, "connection closed");
        framer.push(&buf[..n]);
    }
}

fn status(frame: Frame) -> Option<u16> {
    match frame {
        Frame::Message(m) => m.status(),
        _ => None,
    }
}

#[tokio::test]
async fn serve_answers_by_hand_and_obeys_commands() {
    let mut served = Served::start().await;
    assert_eq!(served.zone, "lab.test");
    assert_eq!(served.sockets.len(), 6 * 3 + 2, "{:?}", served.sockets);
    let phone = served.phone_ip();

    // UDP: a REGISTER by hand is challenged; a STUN binding request is answered.
    let udp = tokio::net::UdpSocket::bind(SocketAddr::new(phone, 0)).await.unwrap();
    udp.connect(served.socket("registrar-a", "udp")).await.unwrap();
    let answer = udp_exchange(&udp, &register(&served, "udp", udp.local_addr().unwrap()).to_bytes(), DEADLINE).await;
    assert_eq!(Message::parse(&answer.expect("an answer")).unwrap().status(), Some(401));
    let stun =
        udp_exchange(&udp, &StunMessage::binding_request([7; 12]).encode(), DEADLINE).await.expect("a STUN answer");
    assert_eq!(StunMessage::decode(&stun).unwrap().mapped_address, Some(udp.local_addr().unwrap()));
    served.ladder_shows("REGISTER sip:registrar-a.lab.test").await;

    // TCP: REGISTER and a CRLF ping.
    let tcp_socket = tokio::net::TcpSocket::new_v4().unwrap();
    tcp_socket.bind(SocketAddr::new(phone, 0)).unwrap();
    let mut tcp = tcp_socket.connect(served.socket("registrar-a", "tcp")).await.unwrap();
    let local = tcp.local_addr().unwrap();
    assert_eq!(status(stream_exchange(&mut tcp, &register(&served, "tcp", local).to_bytes()).await), Some(401));
    assert_eq!(stream_exchange(&mut tcp, b"\r\n\r\n").await, Frame::Pong);

    // TLS, verified against the lab CA with the element's name.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(&served.ca).expect("the lab CA")).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tls_socket = tokio::net::TcpSocket::new_v4().unwrap();
    tls_socket.bind(SocketAddr::new(phone, 0)).unwrap();
    let tcp_for_tls = tls_socket.connect(served.socket("registrar-a", "tls")).await.unwrap();
    let local = tcp_for_tls.local_addr().unwrap();
    let name = ServerName::try_from(format!("registrar-a.{}", served.zone)).unwrap();
    let mut tls =
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp_for_tls).await.expect("TLS handshake");
    assert_eq!(status(stream_exchange(&mut tls, &register(&served, "tls", local).to_bytes()).await), Some(401));

    // `fail` and `restore` take effect at once.
    served.command("fail registrar-a silent").await;
    served.ladder_shows("== fail registrar-a silent ==").await;
    let silent =
        udp_exchange(&udp, &register(&served, "udp", udp.local_addr().unwrap()).to_bytes(), SILENCE_WINDOW).await;
    assert!(
        silent.is_none(),
        "a silent registrar answered: {:?}",
        silent.map(|b| String::from_utf8_lossy(&b).into_owned())
    );
    served.command("restore registrar-a").await;
    served.ladder_shows("== restore registrar-a ==").await;
    let again = udp_exchange(&udp, &register(&served, "udp", udp.local_addr().unwrap()).to_bytes(), DEADLINE).await;
    assert!(again.is_some(), "the restored registrar answers");

    // `dns set` changes the answer at once.
    served.command("dns set proxy-a.lab.test. A 5 127.1.2.3").await;
    let dns = tokio::net::UdpSocket::bind(SocketAddr::new(phone, 0)).await.unwrap();
    dns.connect(served.socket("dns", "udp")).await.unwrap();
    // A hand-made query for proxy-a.lab.test A (RFC 1035 §4.1).
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["proxy-a", "lab", "test"] {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let answer = udp_exchange(&dns, &query, DEADLINE).await.expect("a DNS answer");
        if answer.windows(4).any(|w| w == [127, 1, 2, 3]) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "dns set never took effect");
    }

    // A command it cannot parse changes nothing; quit ends it cleanly.
    served.command("fail the moon").await;
    served.command("quit").await;
    let status = tokio::time::timeout(DEADLINE, served.child.wait()).await.expect("exits in time").unwrap();
    assert!(status.success());
}
