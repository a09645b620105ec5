//! `sipharness serve` as a person at a terminal uses it: the sockets it prints answer over UDP, TCP and TLS, commands take effect at once and are marked, and its flags do what `--help` says.

use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use sip::{Frame, FramerRole, HeaderName, Message, Method, StreamFramer, StunMessage};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

const DEADLINE: Duration = Duration::from_secs(5);
const SILENCE_WINDOW: Duration = Duration::from_millis(500);

struct Served {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Lines<BufReader<ChildStderr>>,
    sockets: Vec<(String, String, SocketAddr)>,
    zone: String,
    /// `credentials ...` as printed before `ready`.
    credentials: String,
    ca: std::path::PathBuf,
}

fn serve_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sipharness"));
    command
        .arg("serve")
        .args(args)
        .env("SIPHARNESS_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

impl Served {
    /// Starts `sipharness serve ARGS` on the first free block and reads what it prints up to `ready`.
    async fn start(args: &[&str]) -> Served {
        let mut child = serve_command(args).spawn().expect("sipharness serve starts");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut sockets = Vec::new();
        let mut zone = String::new();
        let mut credentials = String::new();
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
                ["credentials", ..] => credentials = line.clone(),
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
        Served { child, stdin, stdout, stderr, sockets, zone, credentials, ca }
    }

    /// The block's base address: the DNS sits at +1.
    fn block(&self) -> std::net::Ipv4Addr {
        let IpAddr::V4(dns) = self.socket("dns", "udp").ip() else { panic!("IPv4") };
        let [a, b, c, d] = dns.octets();
        std::net::Ipv4Addr::new(a, b, c, d - 1)
    }

    async fn quit(mut self) {
        self.command("quit").await;
        let status = tokio::time::timeout(DEADLINE, self.child.wait()).await.expect("exits in time").unwrap();
        assert!(status.success());
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

    /// Waits until the streamed ladder shows a line containing `text`; every line it passes
    /// must carry its time since the lab started (`+1234ms `). Returns the line.
    async fn ladder_shows(&mut self, text: &str) -> String {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let line = tokio::time::timeout_at(deadline, self.stdout.next_line()).await.expect("ladder line in time");
            let line = line.unwrap().expect("serve still running");
            let stamp = line.strip_prefix('+').and_then(|rest| rest.split_once("ms ")).map(|(ms, _)| ms);
            assert!(stamp.is_some_and(|ms| ms.parse::<u64>().is_ok()), "no +<ms>ms stamp on {line:?}");
            if line.contains(text) {
                return line;
            }
        }
    }

    /// Waits until stderr shows a line containing `text`.
    async fn stderr_shows(&mut self, text: &str) -> String {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let line = tokio::time::timeout_at(deadline, self.stderr.next_line()).await.expect("stderr line in time");
            let line = line.unwrap().expect("serve still running");
            if line.contains(text) {
                return line;
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
    let mut served = Served::start(&[]).await;
    assert_eq!(served.credentials, "credentials user 1001 password secret-1001 realm lab.test");
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
    served.quit().await;
}

/// A REGISTER by hand over UDP from the phone's address; the status it gets.
async fn register_status(served: &Served) -> Option<u16> {
    let udp = tokio::net::UdpSocket::bind(SocketAddr::new(served.phone_ip(), 0)).await.unwrap();
    udp.connect(served.socket("registrar-a", "udp")).await.unwrap();
    let answer = udp_exchange(&udp, &register(served, "udp", udp.local_addr().unwrap()).to_bytes(), DEADLINE).await?;
    Message::parse(&answer).unwrap().status()
}

#[tokio::test]
async fn digest_off_still_prints_the_credentials_and_registers_without_them() {
    let served = Served::start(&["--digest", "off"]).await;
    assert_eq!(served.credentials, "credentials user 1001 password secret-1001 realm lab.test");
    assert_eq!(register_status(&served).await, Some(200));
    served.quit().await;
}

#[tokio::test]
async fn dns_commands_are_acknowledged_and_marked_in_the_ladder() {
    let mut served = Served::start(&[]).await;
    served.command("dns set proxy-a.lab.test. A 5 127.1.2.3").await;
    let line = served.ladder_shows("== dns set proxy-a.lab.test. A 5 127.1.2.3 ==").await;
    assert!(line.starts_with('+'), "{line}");
    served.command("dns add _sip._udp.registrar-a.lab.test. SRV 60 20 10 5060 registrar-b.lab.test.").await;
    served.ladder_shows("== dns add _sip._udp.registrar-a.lab.test. SRV 60 20 10 5060 registrar-b.lab.test. ==").await;
    served.command("dns remove proxy-b.lab.test. A").await;
    served.ladder_shows("== dns remove proxy-b.lab.test. A ==").await;
    // A DNS change that fails is said on stderr and not marked.
    served.command("dns set elsewhere.example. A 5 127.1.2.3").await;
    served.stderr_shows("sipharness serve:").await;
    served.quit().await;
}

#[tokio::test]
async fn a_pinned_block_that_is_taken_is_an_error_naming_the_address() {
    let first = Served::start(&[]).await;
    let block = first.block().to_string();
    let output = serve_command(&["--block", &block]).stdin(Stdio::null()).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&format!("--block {block} is taken")), "{stderr}");
    let proxy_a = first.socket("proxy-a", "udp").to_string();
    assert!(stderr.contains(&proxy_a), "the taken address {proxy_a} is named: {stderr}");
    assert!(String::from_utf8_lossy(&output.stdout).is_empty(), "nothing served");
    first.quit().await;
}

#[tokio::test]
async fn a_kept_ca_is_the_same_on_the_next_run_and_still_signs_for_every_element() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let ca_dir_arg = ca_dir.to_str().unwrap();

    let first = Served::start(&["--ca-dir", ca_dir_arg]).await;
    assert_eq!(first.ca, ca_dir.join("lab-ca.pem"));
    let pem = std::fs::read(&first.ca).expect("the CA written on the first run");
    let key = std::fs::read(ca_dir.join("lab-ca.key")).expect("its key beside it");
    first.quit().await;

    let second = Served::start(&["--ca-dir", ca_dir_arg]).await;
    assert_eq!(std::fs::read(&second.ca).unwrap(), pem, "the same CA");
    assert_eq!(std::fs::read(ca_dir.join("lab-ca.key")).unwrap(), key);
    // A phone that trusted the first run's CA verifies the second run's registrar.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(&pem).unwrap()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(second.phone_ip(), 0)).unwrap();
    let tcp = socket.connect(second.socket("registrar-b", "tls")).await.unwrap();
    let name = ServerName::try_from(format!("registrar-b.{}", second.zone)).unwrap();
    tokio::time::timeout(DEADLINE, tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("the kept CA's certificate verifies");
    second.quit().await;
}

#[tokio::test]
async fn phone_config_writes_what_each_phone_needs_for_the_block() {
    let dir = tempfile::tempdir().unwrap();
    let baresip = dir.path().join("baresip");
    let aastra = dir.path().join("aastra");

    let served = Served::start(&[
        "--config",
        "full-backup",
        "--outbound",
        "on",
        "--transport",
        "tcp",
        "--phone-config",
        "baresip",
        baresip.to_str().unwrap(),
    ])
    .await;
    let accounts = std::fs::read_to_string(baresip.join("accounts")).expect("accounts written");
    assert!(
        accounts.contains("<sip:1001@proxy-a.lab.test;transport=tcp>;auth_user=1001;auth_pass=secret-1001;"),
        "{accounts}"
    );
    assert!(accounts.contains(";outbound=\"sip:outbound-a.lab.test;transport=tcp\";"), "{accounts}");
    assert!(accounts.contains(";outbound2=\"sip:outbound-b.lab.test;transport=tcp\";"), "{accounts}");
    assert!(accounts.contains(";mwi=yes") && accounts.contains(";regint=") && accounts.contains(";sipnat=outbound"));
    let config = std::fs::read_to_string(baresip.join("config")).expect("config written");
    assert!(config.contains(&format!("sip_listen\t\t{}:5060\n", served.phone_ip())), "{config}");
    assert!(config.contains(&format!("dns_server\t\t{}\n", served.socket("dns", "udp"))), "{config}");
    assert!(config.contains(&format!("sip_cafile\t\t{}\n", baresip.join("lab-ca.pem").display())), "{config}");
    assert_eq!(std::fs::read(baresip.join("lab-ca.pem")).unwrap(), std::fs::read(&served.ca).unwrap());
    served.quit().await;

    let served =
        Served::start(&["--config", "outbound-only", "--phone-config", "aastra", aastra.to_str().unwrap()]).await;
    let global = std::fs::read_to_string(aastra.join("aastra.cfg")).expect("aastra.cfg written");
    assert!(global.contains("sip outbound proxy: outbound-a.lab.test\n"), "{global}");
    assert!(global.contains("sip backup outbound proxy: outbound-b.lab.test\n"), "{global}");
    assert!(global.contains("sip outbound support: 0\n"), "{global}");
    assert!(!global.contains("sip backup registrar ip"), "row 3 has no backup registrar: {global}");
    let line = std::fs::read_to_string(aastra.join("00085D0A0B0C.cfg")).expect("<MAC>.cfg written");
    assert!(line.contains("sip line1 password: secret-1001\n"), "{line}");
    served.quit().await;
}

#[tokio::test]
async fn bad_flags_and_values_are_one_line_and_exit_2() {
    for args in [
        &["--frobnicate"][..],
        &["--config", "row-4"],
        &["--outbound", "on"],
        &["--digest", "maybe"],
        &["--block", "10.0.0.16"],
        &["--block", "127.100.0.17"],
        &["--phone-config", "nokia", "/tmp"],
        &["--transport", "sctp"],
    ] {
        let output = serve_command(args).stdin(Stdio::null()).output().await.unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("sipharness: "), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}: nothing served");
    }
    let outbound = serve_command(&["--outbound", "on"]).stdin(Stdio::null()).output().await.unwrap();
    assert!(String::from_utf8_lossy(&outbound.stderr).contains("--config full-backup or outbound-only"));
}

#[tokio::test]
async fn help_says_who_serves_what_how_to_point_a_phone_and_the_commands() {
    let output = serve_command(&["--help"]).stdin(Stdio::null()).output().await.unwrap();
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "registrar-a, registrar-b  REGISTER",
        "proxy-a, proxy-b          SUBSCRIBE",
        "registrar-a is 127.100.0.20:5060",
        "credentials user",
        "fail <element>",
        "dns set|add",
        "--phone-config",
        "--ca-dir",
        "--block",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
}

/// After a burst of a few thousand datagrams, with nobody reading the ladder (its pipe full),
/// `quit` still ends `serve` within the deadline: printing never holds the exit.
#[tokio::test]
async fn quit_ends_serve_after_a_burst_with_the_ladder_unread() {
    let mut served = Served::start(&[]).await;
    let socket = tokio::net::UdpSocket::bind(SocketAddr::new(served.phone_ip(), 0)).await.unwrap();
    socket.connect(served.socket("registrar-a", "udp")).await.unwrap();
    let local = socket.local_addr().unwrap();
    for n in 0..3000u32 {
        let mut options = register(&served, "udp", local);
        options.start =
            sip::StartLine::Request { method: Method::Options, uri: format!("sip:registrar-a.{}", served.zone) };
        options.set_header(HeaderName::CSeq, format!("{n} OPTIONS"));
        options.set_header(HeaderName::Via, format!("SIP/2.0/UDP {local};branch=z9hG4bKburst{n};rport"));
        let _ = socket.send(&options.to_bytes()).await;
        if n % 100 == 99 {
            // Paced in hundreds, each answered, so the burst is served (and its ladder lines
            // pile up in the unread pipe) before `quit`.
            let mut buf = vec![0u8; 65_536];
            let mut answered = 0;
            while answered < 100 {
                match tokio::time::timeout(DEADLINE, socket.recv(&mut buf)).await {
                    Ok(Ok(_)) => answered += 1,
                    _ => break,
                }
            }
        }
    }
    served.command("quit").await;
    let status = tokio::time::timeout(DEADLINE, served.child.wait()).await.expect("serve ended in time").unwrap();
    assert!(status.success(), "{status:?}");
}
