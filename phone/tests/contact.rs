//! The Contact on the wire, against servers played here: over TLS it names the connection the phone opened (Via `;alias`), and a new connection is registered again at once with the old Contact released; over TCP it names a listener that accepts a server's own connection.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use phone::config::PhoneConfig;
use phone::core::CoreSettings;
use phone::io::ShellOptions;
use phone::quirks::Quirks;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sip::{Frame, FramerRole, HeaderName, Message, Method, SipUri, StreamFramer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;

/// How long any one step may take: far above what it needs, so only a phone that never acts fails.
const DEADLINE: Duration = Duration::from_secs(10);

/// Claims a server address and a phone address in `127.<second>.<n>.0/24` by binding the server's
/// listener and, briefly, the phone's listening port; moves on to the next block when either is taken.
async fn claim(second: u8, server_port: u16, phone_port: u16) -> (TcpListener, IpAddr) {
    let start = (std::process::id() % 200) as u8;
    for offset in 0..=255u8 {
        let third = start.wrapping_add(offset);
        let server = Ipv4Addr::new(127, second, third, 1);
        let phone = IpAddr::V4(Ipv4Addr::new(127, second, third, 10));
        let Ok(listener) = TcpListener::bind((server, server_port)).await else { continue };
        let free = std::net::UdpSocket::bind((phone, phone_port)).is_ok()
            && std::net::TcpListener::bind((phone, phone_port)).is_ok();
        if free {
            return (listener, phone);
        }
    }
    panic!("no free loopback block in 127.{second}.0.0/16");
}

/// refphone's shell running in this process until the sender is dropped.
fn start_phone(cfg: &str, bind: IpAddr, ca: Option<&Path>) -> oneshot::Sender<()> {
    let mut config = PhoneConfig::default();
    config.apply(Path::new("test.cfg"), cfg).expect("a valid cfg");
    let instance = "urn:uuid:00000000-0000-4000-8000-00000000c0de".to_owned();
    let settings = CoreSettings::from_config(&config, bind, Quirks::none(), instance, 11);
    let options = ShellOptions { ca: ca.map(Path::to_owned), ..ShellOptions::default() };
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        phone::io::run(settings, options, shutdown).await.expect("the phone's shell starts");
    });
    stop
}

/// One SIP connection as the server sees it.
struct Connection<S> {
    stream: S,
    framer: StreamFramer,
    peer: SocketAddr,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    fn new(stream: S, peer: SocketAddr, role: FramerRole) -> Connection<S> {
        Connection { stream, framer: StreamFramer::new(role), peer }
    }

    async fn next_message(&mut self) -> Message {
        let mut buffer = vec![0u8; 16 * 1024];
        tokio::time::timeout(DEADLINE, async {
            loop {
                while let Some(frame) = self.framer.next_frame() {
                    if let Frame::Message(message) = frame {
                        return message;
                    }
                }
                let length = self.stream.read(&mut buffer).await.expect("the connection reads");
                assert!(length > 0, "the phone closed the connection");
                self.framer.push(&buffer[..length]);
            }
        })
        .await
        .expect("a message within the deadline")
    }

    async fn send(&mut self, message: &Message) {
        self.stream.write_all(&message.to_bytes()).await.expect("the connection writes");
    }

    /// A registrar's 200: the binding's Contact echoed with its expiry.
    async fn register_ok(&mut self, register: &Message) {
        let mut ok = Message::response_to(register, 200, Some("registrar"));
        let contact = register.header(&HeaderName::Contact).unwrap_or_default().to_owned();
        ok.push_header(HeaderName::Contact, format!("{contact};expires=60"));
        self.send(&ok).await;
    }
}

fn contact_uri(message: &Message) -> SipUri {
    let contacts = message.contacts().expect("a readable Contact");
    contacts.first().and_then(|c| c.address()).and_then(|a| a.uri.as_sip()).expect("a sip: Contact").clone()
}

fn cfg(server: IpAddr, port: u16, protocol: u8) -> String {
    format!(
        "sip proxy ip: {server}\nsip registrar ip: {server}\nsip registrar port: {port}\n\
         sip line1 user name: 1001\nsip registration period: 60\nsip transport protocol: {protocol}\n"
    )
}

/// A CA (its PEM file for `--ca`) and a TLS acceptor whose certificate it signed for `ip`.
fn tls_server_identity(ip: IpAddr, dir: &Path) -> (std::path::PathBuf, tokio_rustls::TlsAcceptor) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let certificate = CertificateParams::new(vec![ip.to_string()]).unwrap().signed_by(&key, &issuer).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let chain: Vec<CertificateDer<'static>> = vec![certificate.der().clone(), ca.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    (ca_file, tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn accept_tls(
    listener: &TcpListener,
    acceptor: &tokio_rustls::TlsAcceptor,
) -> Connection<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    let (tcp, peer) = tokio::time::timeout(DEADLINE, listener.accept()).await.expect("a connection").unwrap();
    let tls = acceptor.accept(tcp).await.expect("the TLS handshake");
    Connection::new(tls, peer, FramerRole::Server)
}

#[tokio::test]
async fn over_tls_the_contact_names_the_connection_and_a_new_connection_is_registered_at_once() {
    let (listener, phone_ip) = claim(79, 5061, 5061).await;
    let server_ip = listener.local_addr().unwrap().ip();
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, acceptor) = tls_server_identity(server_ip, dir.path());
    let _phone = start_phone(&cfg(server_ip, 5061, 4), phone_ip, Some(&ca_file));

    let mut first = accept_tls(&listener, &acceptor).await;
    let register = first.next_message().await;
    assert_eq!(register.method(), Some(&Method::Register));
    let contact = contact_uri(&register);
    assert_eq!(contact.to_string(), format!("sip:1001@{}:{};transport=tls", phone_ip, first.peer.port()));
    let via = register.top_via().unwrap();
    assert_eq!((via.host.to_string(), via.port), (phone_ip.to_string(), Some(first.peer.port())));
    assert!(via.params.has("alias"), "RFC 5923: {:?}", register.header(&HeaderName::Via));
    first.register_ok(&register).await;

    // The server closes the connection: the binding names a connection that is gone.
    drop(first);
    let mut second = accept_tls(&listener, &acceptor).await;
    let register = second.next_message().await;
    assert_eq!(register.expires().unwrap(), Some(60));
    assert_eq!(contact_uri(&register).port, Some(second.peer.port()), "the new connection's port");
    second.register_ok(&register).await;
    let release = second.next_message().await;
    assert_eq!(release.method(), Some(&Method::Register));
    assert_eq!(release.expires().unwrap(), Some(0));
    assert_eq!(contact_uri(&release), contact, "the old binding is released by its Contact");
}

#[tokio::test]
async fn over_tcp_the_contact_names_a_listener_that_accepts_a_new_connection() {
    let (listener, phone_ip) = claim(80, 5060, 5060).await;
    let server_ip = listener.local_addr().unwrap().ip();
    let _phone = start_phone(&cfg(server_ip, 5060, 2), phone_ip, None);

    let (tcp, peer) = tokio::time::timeout(DEADLINE, listener.accept()).await.expect("a connection").unwrap();
    let mut flow = Connection::new(tcp, peer, FramerRole::Server);
    let register = flow.next_message().await;
    let contact = contact_uri(&register);
    assert_eq!(contact.to_string(), format!("sip:1001@{phone_ip}:5060;transport=tcp"));
    assert!(!register.top_via().unwrap().params.has("alias"));
    flow.register_ok(&register).await;

    // A server opens its own connection to the Contact (bound to its own address first).
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(server_ip, 0)).unwrap();
    let target = SocketAddr::new(phone_ip, contact.port.unwrap());
    let tcp = tokio::time::timeout(DEADLINE, socket.connect(target)).await.expect("connects").expect("accepted");
    let local = tcp.local_addr().unwrap();
    let mut inbound = Connection::new(tcp, target, FramerRole::Client);
    let mut options = Message::request(Method::Options, contact.to_string());
    options.push_header(HeaderName::Via, format!("SIP/2.0/TCP {local};branch=z9hG4bKcontact1"));
    options.push_header(HeaderName::MaxForwards, 70);
    options.push_header(HeaderName::From, format!("<sip:registrar@{server_ip}>;tag=r1"));
    options.push_header(HeaderName::To, format!("<{contact}>"));
    options.push_header(HeaderName::CallId, "contact-test-1");
    options.push_header(HeaderName::CSeq, "1 OPTIONS");
    inbound.send(&options).await;
    let answer = inbound.next_message().await;
    assert_eq!(answer.status(), Some(200), "{}", String::from_utf8_lossy(&answer.to_bytes()));
}
