//! The aastra driver through a real failover case against a fake of the vendor's phone: its XML push and HTTP provisioning in front of refphone, all in this process.
//!
//! The fake phone listens for pushes on `<phone ip>:8080`, as the vendor's phone does. On
//! `Command: Reset` it fetches `aastra.cfg` and `<MAC>.cfg` from its provisioning URL (what an
//! engineer sets on a real phone once; the test passes it), writes them to its own directory and
//! (re)starts refphone with them; `Dial:` is passed on to refphone's own push port. What the
//! engineer also sets on a real phone by hand, its DNS server and the CA it trusts, reaches the
//! fake through a relay around the driver, which hands on the lab's addresses and otherwise only
//! forwards every call to the real `AastraDriver`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::dut::aastra::PROVISIONING_PORT;
use harness::dut::{Capabilities, Dut, LabAddresses, PUSH_PORT, Profile, Stimulus};
use harness::provision::Provisioning;
use harness::runner::run_case_on;
use harness::{HarnessError, Verdict};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;

const MAC: &str = "00085D000001";
/// A full-backup (row 2) failover over UDP.
const CASE: &str = "failover.full-backup.primary-outbound-fails.silent.udp";
/// refphone's own push port behind the fake, which holds the vendor's port.
const REFPHONE_PUSH_PORT: u16 = 8090;
/// How long one HTTP exchange on loopback may take.
const HTTP_DEADLINE: Duration = Duration::from_secs(5);

/// What an engineer sets on the phone by hand besides its provisioning URL.
#[derive(Debug, Clone)]
struct PhoneSettings {
    dns: SocketAddr,
    ca: PathBuf,
}

/// The real driver, with the lab's addresses handed to the fake phone on the way.
struct Relay {
    driver: Box<dyn Dut>,
    settings: watch::Sender<Option<PhoneSettings>>,
}

#[async_trait::async_trait]
impl Dut for Relay {
    fn name(&self) -> &str {
        self.driver.name()
    }

    fn capabilities(&self) -> &Capabilities {
        self.driver.capabilities()
    }

    async fn provision(
        &mut self,
        provisioning: &Provisioning,
        lab: &LabAddresses,
        dir: &Path,
    ) -> Result<(), HarnessError> {
        self.settings.send_replace(Some(PhoneSettings { dns: lab.dns, ca: lab.ca_file.clone() }));
        self.driver.provision(provisioning, lab, dir).await
    }

    async fn start(&mut self) -> Result<(), HarnessError> {
        self.driver.start().await
    }

    async fn stimulate(&mut self, stimulus: Stimulus) -> Result<(), HarnessError> {
        self.driver.stimulate(stimulus).await
    }

    fn check_alive(&mut self) -> Result<(), HarnessError> {
        self.driver.check_alive()
    }

    async fn stop(&mut self) -> Result<(), HarnessError> {
        self.driver.stop().await
    }
}

/// The vendor's phone as the driver sees it over the network.
struct FakePhone {
    ip: IpAddr,
    provisioning_url: SocketAddr,
    refphone: PathBuf,
    dir: PathBuf,
    settings: watch::Receiver<Option<PhoneSettings>>,
    /// What happened, in order: pushes taken, files fetched, refphone (re)started.
    log: Arc<Mutex<Vec<String>>>,
    child: Option<tokio::process::Child>,
}

impl FakePhone {
    fn note(&self, what: String) {
        self.log.lock().unwrap().push(what);
    }

    /// Takes pushes one at a time until the task is aborted (which drops refphone, killing it).
    async fn serve(mut self, listener: TcpListener) {
        loop {
            let Ok((mut stream, peer)) = listener.accept().await else { continue };
            let item = match tokio::time::timeout(HTTP_DEADLINE, read_push(&mut stream)).await {
                Ok(Some(item)) => item,
                _ => {
                    let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").await;
                    continue;
                }
            };
            self.note(format!("push {item} from {}", peer.ip()));
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
            drop(stream);
            if item == "Command: Reset" {
                if let Err(e) = self.reboot().await {
                    self.note(format!("reboot failed: {e}"));
                }
            } else if item.starts_with("Dial:") {
                let refphone = SocketAddr::new(self.ip, REFPHONE_PUSH_PORT);
                match harness::dut::xml_push(self.ip, refphone, &item).await {
                    Ok(status) => self.note(format!("passed {item} on: {status}")),
                    Err(e) => self.note(format!("passing {item} on failed: {e}")),
                }
            }
        }
    }

    /// What the vendor's phone does on `Command: Reset`: fetch both files, boot with them.
    async fn reboot(&mut self) -> Result<(), String> {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        let mut configs = Vec::new();
        for name in ["aastra.cfg".to_owned(), format!("{MAC}.cfg")] {
            let body = fetch(self.ip, self.provisioning_url, &name).await?;
            self.note(format!("fetched {name}"));
            let path = self.dir.join(&name);
            std::fs::write(&path, body).map_err(|e| e.to_string())?;
            configs.push(path);
        }
        let settings = self.settings.borrow().clone().ok_or("no DNS server or CA set on the phone")?;
        let state = self.dir.join("state");
        std::fs::create_dir_all(&state).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(self.dir.join("refphone.log")).map_err(|e| e.to_string())?;
        let mut command = tokio::process::Command::new(&self.refphone);
        for config in &configs {
            command.arg("--config").arg(config);
        }
        command
            .args(["--mac", MAC, "--bind", &self.ip.to_string(), "--dns", &settings.dns.to_string()])
            .arg("--ca")
            .arg(&settings.ca)
            .arg("--state-dir")
            .arg(&state)
            .args(["--http", &SocketAddr::new(self.ip, REFPHONE_PUSH_PORT).to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        self.child = Some(command.spawn().map_err(|e| format!("{}: {e}", self.refphone.display()))?);
        self.note("refphone started".into());
        Ok(())
    }
}

/// One push's ExecuteItem URI: the body `xml=<form-encoded AastraIPPhoneExecute>`.
async fn read_push(stream: &mut TcpStream) -> Option<String> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))?
                .parse()
                .ok()?;
            if bytes.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&bytes[end + 4..end + 4 + length]).to_string();
                let xml = form_decode(body.strip_prefix("xml=")?);
                let uri = xml.split("URI=\"").nth(1)?.split('"').next()?;
                return Some(uri.to_owned());
            }
        }
        if bytes.len() > 64 * 1024 {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
}

fn form_decode(text: &str) -> String {
    let mut out = Vec::new();
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex: String = bytes.by_ref().take(2).map(char::from).collect();
                out.push(u8::from_str_radix(&hex, 16).unwrap_or(b'?'));
            }
            other => out.push(other),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET /<name>` from the phone's address, as the vendor's phone fetches its cfg.
async fn fetch(from: IpAddr, server: SocketAddr, name: &str) -> Result<String, String> {
    let exchange = async {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(from, 0))?;
        let mut stream = socket.connect(server).await?;
        let request = format!("GET /{name} HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(HTTP_DEADLINE, exchange)
        .await
        .map_err(|_| format!("GET /{name}: no answer"))?
        .map_err(|e| format!("GET /{name}: {e}"))?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or(format!("GET /{name}: no head"))?;
    if !head.starts_with("HTTP/1.1 200 ") {
        return Err(format!("GET /{name}: {}", head.lines().next().unwrap_or("")));
    }
    Ok(body.to_owned())
}

/// A block for this test and its phone's push listener: the phone's address taken first, in
/// 127.228.0.0-127.255.255.255, where the lab's own spread search never starts (127.100-227),
/// from a start derived from the process id; the lab then claims the rest of the block, pinned.
async fn claim_phone_address() -> (Ipv4Addr, TcpListener) {
    let pid = std::process::id();
    for attempt in 0..64u32 {
        let spot = pid.wrapping_mul(2_654_435_761).wrapping_add(attempt);
        let base =
            Ipv4Addr::new(127, 228 + (spot % 28) as u8, ((spot >> 5) % 256) as u8, ((spot >> 13) % 16 * 16) as u8);
        let phone = Ipv4Addr::from(u32::from(base) + 10);
        if let Ok(listener) = TcpListener::bind(SocketAddr::new(phone.into(), PUSH_PORT)).await {
            return (base, listener);
        }
    }
    panic!("no free block for the fake phone");
}

/// Issue 10, item 3: the aastra driver provisions over HTTP, resets the phone by XML push, and
/// the phone (fake in front, refphone behind) passes a row-2 failover case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aastra_driver_passes_a_failover_case_against_a_fake_phone() {
    let refphone = harness::dut::find_refphone().expect("refphone is built by cargo test --workspace");
    let case = suites::catalog().cases.into_iter().find(|c| c.id == CASE).expect("the case exists");
    let (base, listener) = claim_phone_address().await;
    let topology = harness::Topology::new(base, "lab.test");
    let phone = topology.phone_ip();
    let profile = Profile::parse(&format!("aastra:ip={phone},mac={MAC},floors=none")).expect("the profile parses");
    profile.check(None).expect("the profile can run");

    let dir = tempfile::tempdir().unwrap();
    let (settings_tx, settings) = watch::channel(None);
    let log = Arc::new(Mutex::new(Vec::new()));
    let fake = FakePhone {
        ip: phone,
        provisioning_url: SocketAddr::new(topology.console_ip(), PROVISIONING_PORT),
        refphone,
        dir: dir.path().to_owned(),
        settings,
        log: log.clone(),
        child: None,
    };
    let fake = tokio::spawn(fake.serve(listener));
    let relay = Relay { driver: profile.driver().expect("a driver"), settings: settings_tx };
    let result = run_case_on(&case, &profile, Box::new(relay), None).await;
    fake.abort();
    let _ = fake.await;

    let log = log.lock().unwrap().clone();
    let refphone_log = std::fs::read_to_string(dir.path().join("refphone.log")).unwrap_or_default();
    let explain = format!(
        "{:?} {:?}\n{}\nfake phone: {log:#?}\nrefphone log tail:\n{}\ntrace:\n{}",
        result.verdict,
        result.reason,
        result.failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"),
        refphone_log.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n"),
        result.full_ladder
    );
    assert_eq!(result.verdict, Verdict::Pass, "{explain}");
    let console = topology.console_ip();
    assert_eq!(
        log[..5],
        [
            format!("push Command: ClearLocal from {console}"),
            format!("push Command: Reset from {console}"),
            "fetched aastra.cfg".to_owned(),
            format!("fetched {MAC}.cfg"),
            "refphone started".to_owned(),
        ],
        "{explain}"
    );
    // The files the phone fetched are the case's, for its MAC, at no floors (floors=none).
    let global = std::fs::read_to_string(dir.path().join("aastra.cfg")).unwrap();
    assert!(global.contains(&format!("sip outbound proxy: outbound-a.{}", topology.zone)), "{global}");
    assert!(global.contains("sip backup outbound proxy: outbound-b.lab.test"), "{global}");
    assert!(global.contains("sip transport protocol: 1"), "{global}");
    let line = std::fs::read_to_string(dir.path().join(format!("{MAC}.cfg"))).unwrap();
    assert!(line.contains(&format!("MAC {MAC}")) && line.contains("sip line1 user name: 1001"), "{line}");
}
