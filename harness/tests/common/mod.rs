//! A scripted phone for the harness's own tests: SIP over UDP, TCP or TLS from the phone's address, with deadlines on every read.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use harness::dut::ScriptedPhone;
use harness::{Configuration, Element, Lab, LabSpec, Transport};
use sip::{Challenge, Credentials, Frame, FramerRole, HeaderName, Message, Method, StreamFramer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};

/// How long a test waits for an answer that should come at once on loopback.
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(2);
/// The bounded observation window for "nothing comes".
pub const SILENCE_WINDOW: Duration = Duration::from_millis(500);

pub async fn lab() -> Lab {
    lab_with(LabSpec::new(Configuration::NoOutbound, Transport::Udp)).await
}

pub async fn lab_with(spec: LabSpec) -> Lab {
    Lab::start(&spec, Box::new(ScriptedPhone::default())).await.expect("lab starts")
}

/// What a read brought.
#[derive(Debug)]
pub enum Read {
    Message(Box<Message>),
    Pong,
    /// Nothing within the window.
    Nothing,
    /// The connection ended: EOF, reset, or an ICMP error on UDP.
    Closed(std::io::ErrorKind),
}

impl Read {
    pub fn message(self) -> Message {
        match self {
            Read::Message(m) => *m,
            other => panic!("expected a SIP message, got {other:?}"),
        }
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

enum Link {
    Udp(UdpSocket),
    Stream { stream: Box<dyn Stream>, framer: StreamFramer },
}

/// One flow from the phone's address to an element.
pub struct PhoneFlow {
    link: Link,
    pub local: SocketAddr,
    pub transport: Transport,
    pub cseq: u32,
    pub call_id: String,
}

fn unique() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(1);
    N.fetch_add(1, Ordering::Relaxed) * 7919 + std::process::id()
}

impl PhoneFlow {
    /// Opens a flow from the phone's address (a fresh port) to `element`.
    pub async fn open(lab: &Lab, element: Element, transport: Transport) -> std::io::Result<PhoneFlow> {
        Self::open_from(lab, element, transport, SocketAddr::new(lab.topology.phone_ip(), 0)).await
    }

    pub async fn open_from(
        lab: &Lab,
        element: Element,
        transport: Transport,
        bind: SocketAddr,
    ) -> std::io::Result<PhoneFlow> {
        let ip = lab.topology.ip(element);
        let (link, local) = match transport {
            Transport::Udp => {
                let socket = UdpSocket::bind(bind).await?;
                socket.connect(SocketAddr::new(ip, 5060)).await?;
                let local = socket.local_addr()?;
                (Link::Udp(socket), local)
            }
            Transport::Tcp | Transport::Tls => {
                let socket = TcpSocket::new_v4()?;
                socket.bind(bind)?;
                let port = if transport == Transport::Tls { 5061 } else { 5060 };
                let tcp = socket.connect(SocketAddr::new(ip, port)).await?;
                let local = tcp.local_addr()?;
                let stream: Box<dyn Stream> = if transport == Transport::Tls {
                    let connector = tokio_rustls::TlsConnector::from(lab.ca().client_config().expect("client config"));
                    let name = rustls::pki_types::ServerName::try_from(lab.topology.fqdn(element)).expect("a DNS name");
                    Box::new(connector.connect(name, tcp).await?)
                } else {
                    Box::new(tcp)
                };
                (Link::Stream { stream, framer: StreamFramer::new(FramerRole::Client) }, local)
            }
        };
        Ok(PhoneFlow { link, local, transport, cseq: 0, call_id: format!("test-{}", unique()) })
    }

    /// A request from the phone's line 1 to `target` with the headers RFC 3261 §8.1.1 requires.
    pub fn request(&mut self, lab: &Lab, method: Method, target: Element) -> Message {
        self.cseq += 1;
        let transport = self.transport.name().to_ascii_uppercase();
        let mut m = Message::request(method.clone(), format!("sip:{}", lab.topology.fqdn(target)));
        m.push_header(
            HeaderName::Via,
            format!("SIP/2.0/{transport} {};branch=z9hG4bK{}x{};rport", self.local, self.cseq, unique()),
        );
        m.push_header(HeaderName::MaxForwards, 70);
        m.push_header(
            HeaderName::From,
            format!("<sip:1001@{}>;tag=t{}", lab.topology.fqdn(Element::ProxyA), self.call_id),
        );
        m.push_header(HeaderName::To, format!("<sip:1001@{}>", lab.topology.fqdn(Element::ProxyA)));
        m.push_header(HeaderName::CallId, &self.call_id);
        m.push_header(HeaderName::CSeq, format!("{} {method}", self.cseq));
        m.push_header(HeaderName::Contact, format!("<sip:1001@{}:5060>", lab.topology.phone_ip()));
        m
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match &mut self.link {
            Link::Udp(socket) => socket.send(bytes).await.map(drop),
            Link::Stream { stream, .. } => stream.write_all(bytes).await,
        }
    }

    pub async fn send(&mut self, message: &Message) -> std::io::Result<()> {
        self.send_raw(&message.to_bytes()).await
    }

    /// Reads the next message or pong within `window`.
    pub async fn read(&mut self, window: Duration) -> Read {
        let deadline = tokio::time::Instant::now() + window;
        let mut buf = vec![0u8; 65_536];
        loop {
            match &mut self.link {
                Link::Udp(socket) => {
                    return match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                        Err(_) => Read::Nothing,
                        Ok(Err(e)) => Read::Closed(e.kind()),
                        Ok(Ok(n)) => {
                            Read::Message(Box::new(Message::parse(&buf[..n]).expect("elements send well-formed SIP")))
                        }
                    };
                }
                Link::Stream { stream, framer } => {
                    if let Some(frame) = framer.next_frame() {
                        return match frame {
                            Frame::Message(m) => Read::Message(Box::new(m)),
                            Frame::Pong => Read::Pong,
                            other => panic!("unexpected frame {other:?}"),
                        };
                    }
                    match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                        Err(_) => return Read::Nothing,
                        Ok(Ok(0)) => return Read::Closed(std::io::ErrorKind::UnexpectedEof),
                        Ok(Err(e)) => return Read::Closed(e.kind()),
                        Ok(Ok(n)) => framer.push(&buf[..n]),
                    }
                }
            }
        }
    }

    /// Sends `message` and returns the first answer, which must come in time.
    pub async fn exchange(&mut self, message: &Message) -> Message {
        self.send(message).await.expect("send");
        self.read(ANSWER_DEADLINE).await.message()
    }

    /// A REGISTER answered by a 200: challenged first, then with credentials.
    pub async fn register(&mut self, lab: &Lab, registrar: Element, expires: u32) -> Message {
        let mut register = self.request(lab, Method::Register, registrar);
        register.push_header(HeaderName::Expires, expires);
        let challenge = self.exchange(&register).await;
        assert_eq!(challenge.status(), Some(401), "{challenge:?}");
        let challenge = challenge.challenges().unwrap().remove(0);
        let mut register = self.request(lab, Method::Register, registrar);
        register.push_header(HeaderName::Expires, expires);
        authorize(lab, &mut register, &challenge);
        self.exchange(&register).await
    }
}

/// Answers `challenge` in `request` with the first use of its nonce.
pub fn authorize(lab: &Lab, request: &mut Message, challenge: &Challenge) {
    authorize_with_count(lab, request, challenge, 1);
}

/// Answers `challenge` with nonce count `nc`, as a phone reusing a nonce does (it must grow).
pub fn authorize_with_count(lab: &Lab, request: &mut Message, challenge: &Challenge, nc: u32) {
    let uri = request.request_uri().unwrap().unwrap().to_string();
    let line = &lab.provisioning.line;
    let credentials = Credentials::answer(challenge, &line.auth_name, &line.password, "REGISTER", &uri, "c0ffee", nc);
    request.set_header(HeaderName::Authorization, credentials);
}

pub type Shared<T> = Arc<T>;
