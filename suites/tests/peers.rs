//! Peers no one here wrote (SIPp, baresip) register and subscribe through `sipharness serve`, configured with one server: proof that the lab's servers serve any phone.

// Each test starts its own `serve` (which claims the first free address block, so tests and
// processes never collide), runs the peer bound to the block's phone address, reads the ladder
// `serve` streams on stdout, and stops both at the end whatever happens (`kill_on_drop`; the
// peers also carry their own time limits, so none outlives a killed test run). baresip and
// sipp come from Debian (`baresip-core`, `sip-tester`); `cargo xtask test` installs them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::watch;
use tokio::time::Instant;

/// How long `serve` may take to print `ready`.
const READY_DEADLINE: Duration = Duration::from_secs(10);
/// SIPp's own global limit (`-timeout`); the test waits a little longer for it to exit.
const SIPP_TIMEOUT_S: u64 = 20;
/// How long baresip may take to register and subscribe: it starts both at once, after two DNS
/// lookups and a digest challenge, all on loopback.
const BARESIP_DEADLINE: Duration = Duration::from_secs(15);
/// baresip's own limit (`-t`), a guard in case the test process is killed before it can kill it.
const BARESIP_LIFETIME_S: u64 = 120;

/// The lab's registered user (the lab's default provisioning).
const USER: &str = "1001";
const PASSWORD: &str = "secret-1001";

/// A running `sipharness serve`, its addresses, and the ladder it has printed so far.
struct Served {
    child: Child,
    stdin: ChildStdin,
    sockets: Vec<(String, String, SocketAddr)>,
    zone: String,
    ladder: Arc<Mutex<Vec<String>>>,
    ladder_len: watch::Receiver<usize>,
    stderr: Arc<Mutex<String>>,
}

impl Served {
    /// Starts `serve` with its default configuration and reads its sockets up to `ready`; from
    /// then on a task collects the ladder lines (so its stdout pipe never fills).
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
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut stderr_lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let collected = stderr.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr_lines.next_line().await {
                let mut text = collected.lock().unwrap();
                if text.len() < 64 * 1024 {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
        });
        let mut sockets = Vec::new();
        let mut zone = String::new();
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let line = tokio::time::timeout_at(deadline, stdout.next_line())
                .await
                .unwrap_or_else(|_| panic!("serve not ready in time; stderr:\n{}", stderr.lock().unwrap()))
                .unwrap()
                .unwrap_or_else(|| panic!("serve ended before ready; stderr:\n{}", stderr.lock().unwrap()));
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["ready"] => break,
                ["zone", name] => zone = name.to_string(),
                [element, transport, addr] => {
                    if let Ok(addr) = addr.parse() {
                        sockets.push((element.to_string(), transport.to_string(), addr));
                    }
                }
                // Anything else before `ready` (credentials, notes) is for people.
                _ => {}
            }
        }
        assert!(!zone.is_empty(), "serve printed no zone");
        let ladder = Arc::new(Mutex::new(Vec::new()));
        let (ladder_tx, ladder_len) = watch::channel(0);
        let lines = ladder.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                let mut lines = lines.lock().unwrap();
                // Column padding varies with the names; one space between words reads the same.
                lines.push(line.split_whitespace().collect::<Vec<_>>().join(" "));
                ladder_tx.send_replace(lines.len());
            }
        });
        Served { child, stdin, sockets, zone, ladder, ladder_len, stderr }
    }

    fn socket(&self, element: &str, transport: &str) -> SocketAddr {
        self.sockets
            .iter()
            .find(|(e, t, _)| e == element && t == transport)
            .map(|(_, _, a)| *a)
            .unwrap_or_else(|| panic!("serve listed no {element} {transport}: {:?}", self.sockets))
    }

    /// The phone's address in the served block: the block's base + 10 (the DNS is at + 1).
    fn phone_ip(&self) -> IpAddr {
        let IpAddr::V4(dns) = self.socket("dns", "udp").ip() else { panic!("an IPv4 lab") };
        let [a, b, c, d] = dns.octets();
        IpAddr::V4(Ipv4Addr::new(a, b, c, d - 1 + 10))
    }

    fn ladder_text(&self) -> String {
        self.ladder.lock().unwrap().join("\n")
    }

    /// Waits until the ladder holds a line for each of `wanted` (each a list of fragments the
    /// line contains), or fails at the deadline with what it holds and `peer_log`.
    async fn ladder_shows(&mut self, wanted: &[&[&str]], within: Duration, peer_log: impl Fn() -> String) {
        let deadline = Instant::now() + within;
        loop {
            let missing: Vec<String> = {
                let lines = self.ladder.lock().unwrap();
                wanted
                    .iter()
                    .filter(|fragments| !lines.iter().any(|l| fragments.iter().all(|f| l.contains(f))))
                    .map(|fragments| fragments.join(" … "))
                    .collect()
            };
            if missing.is_empty() {
                return;
            }
            if tokio::time::timeout_at(deadline, self.ladder_len.changed()).await.is_err() {
                panic!(
                    "within {within:?} the ladder showed no line with {missing:?}\nladder:\n{}\nserve's stderr:\n{}\npeer:\n{}",
                    self.ladder_text(),
                    self.stderr.lock().unwrap(),
                    peer_log()
                );
            }
        }
    }

    /// Asks `serve` to quit and waits for it; it is killed on drop if it does not.
    async fn quit(mut self) {
        let _ = self.stdin.write_all(b"quit\n").await;
        let _ = self.stdin.flush().await;
        let status = tokio::time::timeout(READY_DEADLINE, self.child.wait()).await;
        assert!(matches!(status, Ok(Ok(s)) if s.success()), "serve did not quit cleanly: {status:?}");
    }
}

/// The peer's path on PATH, or a failure that says how to get it (never a silent skip).
fn peer_program(program: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file()))
        .unwrap_or_else(|| {
            panic!("`{program}` (Debian package {package}) is not installed: run `cargo xtask test`, which installs it")
        })
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// Runs one SIPp scenario from `fixtures/sipp/` as the phone (bound to the phone's address)
/// against proxy-a, one call, and fails with SIPp's output and error log unless it exits 0.
async fn sipp(served: &Served, scenario: &str, transport: &str, port: u16) {
    let sipp = peer_program("sipp", "sip-tester");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let phone = served.phone_ip().to_string();
    let proxy = served.socket("proxy-a", transport);
    let mode = if transport == "udp" { "u1" } else { "t1" };
    let scenario_file = fixtures().join("sipp").join(scenario);
    let run = Command::new(sipp)
        .arg(proxy.to_string())
        .args(["-sf", &scenario_file.to_string_lossy()])
        .args(["-t", mode, "-i", &phone, "-p", &port.to_string(), "-mi", &phone, "-bind_local"])
        .args(["-key", "domain", &served.zone, "-s", USER])
        .args(["-m", "1", "-timeout", &format!("{SIPP_TIMEOUT_S}s"), "-timeout_error", "-nostdin", "-trace_err"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(SIPP_TIMEOUT_S + 5), run)
        .await
        .unwrap_or_else(|_| panic!("sipp {scenario} over {transport} outlived its own timeout"))
        .expect("sipp runs");
    if !output.status.success() {
        let mut errors = String::new();
        for entry in std::fs::read_dir(dir.path()).into_iter().flatten().flatten() {
            errors.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
        panic!(
            "sipp {scenario} over {transport} failed ({}):\n{}\n{}\nerror log:\n{errors}\nladder:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            served.ladder_text()
        );
    }
}

/// SIPp registers (digest) and subscribes to MWI at proxy-a, its one server: the REGISTER goes
/// on to registrar-a and is answered 200; proxy-a answers the SUBSCRIBE and sends a NOTIFY.
async fn sipp_registers_and_subscribes(transport: &str) {
    let mut served = Served::start().await;
    sipp(&served, "register.xml", transport, 5060).await;
    sipp(&served, "subscribe.xml", transport, 5062).await;
    served
        .ladder_shows(
            &[
                &["phone -> proxy-a", &format!("{transport} REGISTER")],
                &["registrar-a -> proxy-a udp 200 OK (REGISTER"],
                &[&format!("proxy-a -> phone {transport} 200 OK (REGISTER")],
                &[&format!("proxy-a -> phone {transport} 200 OK (SUBSCRIBE")],
                &[&format!("proxy-a -> phone {transport} NOTIFY"), "event=message-summary"],
                &[&format!("phone -> proxy-a {transport} 200 OK (NOTIFY")],
            ],
            Duration::from_secs(5),
            String::new,
        )
        .await;
    served.quit().await;
}

#[tokio::test]
async fn sipp_registers_and_subscribes_over_udp() {
    sipp_registers_and_subscribes("udp").await;
}

#[tokio::test]
async fn sipp_registers_and_subscribes_over_tcp() {
    sipp_registers_and_subscribes("tcp").await;
}

/// baresip's configuration for a phone with one server, the lab domain: SIP bound to the
/// phone's address only, the lab's DNS as its only DNS server (baresip asks the system's
/// resolvers only when none is configured, and no `dns_fallback` is), and only the modules that
/// register (account) and subscribe to MWI (mwi): no audio, video or NAT traversal modules
/// (STUN, TURN, ICE, NAT-PMP), so it sends nothing anywhere but the lab.
///
/// baresip 1.0 sends the MWI SUBSCRIBE to the AOR, found by RFC 3263 without the account's
/// transport (the lab domain's NAPTR prefers UDP), so over TCP the account names the lab domain
/// again as its outbound proxy, with `;transport=tcp`: still the one server.
fn baresip_config(served: &Served, transport: &str, dir: &Path) {
    let phone = served.phone_ip();
    let zone = &served.zone;
    let config = format!(
        "# baresip for suites/tests/peers.rs: one account, the lab's DNS only, no media modules.\n\
         poll_method\t\tepoll\n\
         module_path\t\t/usr/lib/baresip/modules\n\
         sip_listen\t\t{phone}:5060\n\
         net_interface\t\t{phone}\n\
         dns_server\t\t{dns}\n\
         module_app\t\taccount.so\n\
         module_app\t\tmwi.so\n",
        dns = served.socket("dns", "udp"),
    );
    std::fs::write(dir.join("config"), config).expect("write baresip's config");
    let outbound =
        if transport == "udp" { String::new() } else { format!(";outbound=\"sip:{zone};transport={transport}\"") };
    let account =
        format!("<sip:{USER}@{zone};transport={transport}>;auth_pass={PASSWORD}{outbound};regint=60;mwi=yes\n");
    std::fs::write(dir.join("accounts"), account).expect("write baresip's accounts");
}

/// The parties a ladder line names (sender, receiver), wherever the line starts.
fn parties(line: &str) -> Option<(&str, &str)> {
    let (before, after) = line.split_once(" -> ")?;
    Some((before.rsplit(' ').next()?, after.split(' ').next()?))
}

/// baresip with the lab domain as its one server registers (reaching registrar-a through
/// proxy-a, found by the domain's NAPTR/SRV) and subscribes to MWI, answered 200 and notified.
async fn baresip_registers_and_subscribes(transport: &str) {
    let baresip = peer_program("baresip", "baresip-core");
    let mut served = Served::start().await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    baresip_config(&served, transport, dir.path());
    let mut child = Command::new(baresip)
        .args(["-f", &dir.path().to_string_lossy(), "-t", &BARESIP_LIFETIME_S.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("baresip starts");
    let log = Arc::new(Mutex::new(String::new()));
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let log = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut text = log.lock().unwrap();
                if text.len() < 64 * 1024 {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
        });
    }
    let zone = &served.zone;
    let srv = format!("SRV _sip._{transport}.{zone}");
    let register = format!("-> proxy-a {transport} REGISTER sip:{zone}");
    let subscribe = format!("-> proxy-a {transport} SUBSCRIBE sip:{USER}@{zone}");
    let registered = format!("{transport} 200 OK (REGISTER");
    let subscribed = format!("{transport} 200 OK (SUBSCRIBE");
    let notify = format!("{transport} NOTIFY");
    let notified = format!("{transport} 200 OK (NOTIFY");
    served
        .ladder_shows(
            &[
                &["-> dns", &srv],
                &[&register, " auth "],
                &["registrar-a -> proxy-a udp 200 OK (REGISTER"],
                &["proxy-a ->", &registered],
                &[&subscribe, "event=message-summary"],
                &["proxy-a ->", &subscribed],
                &["proxy-a ->", &notify, "event=message-summary"],
                &["-> proxy-a", &notified],
            ],
            BARESIP_DEADLINE,
            || log.lock().unwrap().clone(),
        )
        .await;
    // Nothing but the lab: every line names only the lab's elements, the phone's address, and
    // 127.0.0.1, the kernel's loopback source for what baresip 1.0 does not bind: its DNS client
    // (libre binds it to 0.0.0.0) and its TCP connections (libre 1.1 connects them unbound). Over
    // UDP, SIP comes from the phone's address only.
    let ladder = served.ladder_text();
    let lab = ["phone", "dns", "proxy-a", "proxy-b", "registrar-a", "registrar-b", "outbound-a", "outbound-b"];
    let strangers: Vec<&str> = ladder
        .lines()
        .filter(|line| {
            let Some((from, to)) = parties(line) else { return false };
            let known =
                |p: &str| lab.contains(&p) || (p == "127.0.0.1" && (line.contains(" DNS ") || transport == "tcp"));
            !known(from) || !known(to)
        })
        .collect();
    assert!(strangers.is_empty(), "lines naming a party outside the lab:\n{}\nladder:\n{ladder}", strangers.join("\n"));
    let _ = child.kill().await;
    served.quit().await;
}

#[tokio::test]
async fn baresip_registers_and_subscribes_over_udp() {
    baresip_registers_and_subscribes("udp").await;
}

#[tokio::test]
async fn baresip_registers_and_subscribes_over_tcp() {
    baresip_registers_and_subscribes("tcp").await;
}
