//! `cargo xtask bench`: the harness's registrar (under `sipharness serve`) against Kamailio 5.6, both driven by SIPp over UDP with digest, and serve's memory under load; figures reported, never asserted.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{cargo, install_missing, note, workspace_root};

/// REGISTER requests offered per second, in ascending order. Each SIPp call is two REGISTER
/// transactions (the first challenged with 401, the second answered 200), so SIPp runs at half.
const RATES: [u32; 4] = [5_000, 10_000, 20_000, 40_000];
/// How long each rate is offered to each server.
const SECONDS_PER_RATE: u32 = 5;
/// SIPp's own address, and Kamailio's: loopback, outside the blocks labs claim (127.100.0.0 on).
const SIPP_IP: &str = "127.9.0.10";
const LATENCY_CLIENT_IP: &str = "127.9.0.11";
const KAMAILIO_IP: &str = "127.9.0.1";
/// Registrations a second in the memory workloads (4k REGISTER/s): a rate both servers answer
/// in full here, so the figures are about memory, not overload; 200k take 100 s.
const MEMORY_CALLS_PER_S: u32 = 2_000;
/// SIPp's socket buffers, asked of the kernel (capped at `net.core.rmem_max`).
const SIPP_SOCKET_BUFFER: usize = 4 << 20;
/// A SIPp call that waits longer than this for an answer fails, so a run is bounded in time.
const RECEIVE_TIMEOUT_MS: u32 = 5_000;

/// The whole bench: throughput and response times at each rate, the added latency per message
/// at 1k messages a second, then serve's memory in three workloads.
pub fn bench(args: &[String]) -> Result<()> {
    let part = Part::parse(args)?;
    let started = Instant::now();
    install_missing(&[("sipp", "sip-tester"), ("kamailio", "kamailio")])?;
    // An optimised build; `SIPHARNESS_BENCH_BINARY` names one made otherwise (say, the dev
    // profile with `CARGO_PROFILE_DEV_OPT_LEVEL=3`, which reuses the dev build's dependencies).
    if std::env::var_os("SIPHARNESS_BENCH_BINARY").is_none() {
        cargo(&["build", "--release", "-p", "suites", "--bin", "sipharness"])?;
    }
    let dir = std::env::temp_dir().join(format!("sipharness-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    warn_if_buffers_capped()?;
    let result = run(&dir, &part);
    let _ = std::fs::remove_dir_all(&dir);
    note(&format!("bench: {:.0} s in all\n", started.elapsed().as_secs_f64()))?;
    result
}

/// The kernel caps every socket's receive buffer at `net.core.rmem_max` (often 208 KB); below
/// SIPp's ask, bursts are dropped at the client and the figures show its retransmissions.
fn warn_if_buffers_capped() -> Result<()> {
    let max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0);
    if max < SIPP_SOCKET_BUFFER {
        note(&format!(
            "bench: net.core.rmem_max is {max}, below the {SIPP_SOCKET_BUFFER} SIPp and serve ask for; answers dropped \
             at SIPp come back as retransmissions (raise it: sysctl -w net.core.rmem_max={SIPP_SOCKET_BUFFER})\n"
        ))?;
    }
    Ok(())
}

/// What one `cargo xtask bench` runs: everything, or one part while working on it.
enum Part {
    All,
    /// `throughput [RATE,...]`: the throughput lines alone, at the rates given (`10k` or `10000`).
    Throughput(Vec<u32>),
    Latency,
    Memory,
}

impl Part {
    fn parse(args: &[String]) -> Result<Part> {
        let words: Vec<&str> = args.iter().map(String::as_str).collect();
        Ok(match words.as_slice() {
            [] => Part::All,
            ["throughput"] => Part::Throughput(RATES.to_vec()),
            ["throughput", rates] => Part::Throughput(rates.split(',').map(parse_rate).collect::<Result<Vec<u32>>>()?),
            ["latency"] => Part::Latency,
            ["memory"] => Part::Memory,
            _ => bail!("usage: cargo xtask bench [throughput [RATE,...] | latency | memory]"),
        })
    }
}

fn parse_rate(text: &str) -> Result<u32> {
    let (digits, scale) = match text.strip_suffix('k') {
        Some(digits) => (digits, 1000),
        None => (text, 1),
    };
    match digits.parse::<u32>() {
        Ok(n) if n >= 2 => Ok(n * scale),
        _ => bail!("bad rate {text:?}: REGISTER requests a second, such as 10k or 10000"),
    }
}

fn run(dir: &Path, part: &Part) -> Result<()> {
    match part {
        Part::All => {
            throughput_and_latency(dir, &RATES, true)?;
            memory(dir)
        }
        Part::Throughput(rates) => throughput_and_latency(dir, rates, false),
        Part::Latency => throughput_and_latency(dir, &[], true),
        Part::Memory => memory(dir),
    }
}

fn throughput_and_latency(dir: &Path, rates: &[u32], latency: bool) -> Result<()> {
    note(
        "bench: throughput (offered = REGISTER requests per second; tx/s = REGISTER transactions completed with a final response per second)\n",
    )?;
    let serve = Serve::start(dir, "throughput")?;
    let kamailio = Kamailio::start(dir, &serve.auth)?;
    let scenario = write_scenario(dir, "register", &register_scenario("u[call_number]", 3600))?;
    for &rate in rates {
        let calls = rate / 2 * SECONDS_PER_RATE;
        let harness = sipp(dir, &scenario, &serve.registrar, rate / 2, calls, &serve.auth)?;
        let reference = sipp(dir, &scenario, &kamailio.address, rate / 2, calls, &serve.auth)?;
        let (h, k) = (harness.tx_per_s(), reference.tx_per_s());
        note(&format!(
            "offered {}k/s: harness {h:.0} tx/s, kamailio {k:.0} tx/s, ratio {:.2}; response p50/p99: harness {}/{} ms, \
             kamailio {}/{} ms; unanswered: harness {}, kamailio {}\n",
            rate / 1000,
            if k > 0.0 { h / k } else { 0.0 },
            harness.percentile(0.50),
            harness.percentile(0.99),
            reference.percentile(0.50),
            reference.percentile(0.99),
            harness.unanswered(),
            reference.unanswered(),
        ))?;
    }
    if !latency {
        return Ok(());
    }
    let registrar: SocketAddr = serve.registrar.parse()?;
    let h = options_latency(registrar, 1000, 3000)?;
    let k = options_latency(kamailio.address.parse()?, 1000, 3000)?;
    note(&format!(
        "latency per message at 1k OPTIONS/s (3000, own client, microseconds): harness p50 {} p99 {}, kamailio p50 {} p99 {}; \
         added by the harness over kamailio at p50: {} us\n",
        h.0,
        h.1,
        k.0,
        k.1,
        h.0 as i64 - k.0 as i64
    ))?;
    Ok(())
}

/// RSS of a fresh `serve` after 10k and after 200k registrations, for one AOR and Contact
/// re-registering and for distinct AORs with `Expires: 10`; then an OPTIONS flood.
fn memory(dir: &Path) -> Result<()> {
    for (name, aor, expires, calls_per_s) in [
        ("one AOR, one Contact", "u1", 3600, MEMORY_CALLS_PER_S),
        ("distinct AORs, Expires: 10", "", 10, MEMORY_CALLS_PER_S),
    ] {
        let serve = Serve::start(dir, "memory")?;
        let before = serve.rss_kib()?;
        let first = if aor.is_empty() { "a[call_number]" } else { aor };
        let second = if aor.is_empty() { "b[call_number]" } else { aor };
        let scenario = write_scenario(dir, "first", &register_scenario(first, expires))?;
        let run = sipp(dir, &scenario, &serve.registrar, calls_per_s, 10_000, &serve.auth)?;
        let at_10k = serve.rss_kib()?;
        let scenario = write_scenario(dir, "second", &register_scenario(second, expires))?;
        let rest = sipp(dir, &scenario, &serve.registrar, calls_per_s, 190_000, &serve.auth)?;
        let at_200k = serve.rss_kib()?;
        note(&format!(
            "memory, {name}: serve RSS {} MB at start, {} MB after 10k registrations, {} MB after 200k ({:.2}x); \
             unanswered {}\n",
            before / 1024,
            at_10k / 1024,
            at_200k / 1024,
            at_200k as f64 / at_10k.max(1) as f64,
            run.unanswered() + rest.unanswered()
        ))?;
    }
    let serve = Serve::start(dir, "options")?;
    let scenario = write_scenario(dir, "options", OPTIONS_SCENARIO)?;
    let first = sipp(dir, &scenario, &serve.registrar, 2_000, 4_000, &serve.auth)?;
    let at_4k = serve.rss_kib()?;
    let rest = sipp(dir, &scenario, &serve.registrar, 2_000, 36_000, &serve.auth)?;
    let at_40k = serve.rss_kib()?;
    // Server transactions live 64*T1 (T1 500 ms under serve): read again once they all ended.
    std::thread::sleep(Duration::from_secs(33));
    let expired = serve.rss_kib()?;
    note(&format!(
        "memory, 40k OPTIONS at 2k/s: serve RSS {} MB after 4k, {} MB after 40k, {} MB once their transactions \
         expired ({:.2}x of 4k); unanswered {}\n",
        at_4k / 1024,
        at_40k / 1024,
        expired / 1024,
        expired as f64 / at_4k.max(1) as f64,
        first.unanswered() + rest.unanswered()
    ))
}

/// The digest credentials `serve` printed, which Kamailio is given too.
#[derive(Debug, Clone)]
struct Auth {
    user: String,
    password: String,
    realm: String,
}

/// `sipharness serve` (release build), its stdout drained by a thread of ours; killed on drop.
struct Serve {
    child: Child,
    registrar: String,
    auth: Auth,
}

impl Serve {
    fn start(dir: &Path, name: &str) -> Result<Serve> {
        let binary = std::env::var_os("SIPHARNESS_BENCH_BINARY")
            .map_or_else(|| workspace_root().join("target/release/sipharness"), PathBuf::from);
        let log = std::fs::File::create(dir.join(format!("serve-{name}.log")))?;
        let mut child = Command::new(&binary)
            .arg("serve")
            .env("SIPHARNESS_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        let mut out = BufReader::new(child.stdout.take().context("serve's stdout")?);
        let (mut registrar, mut auth) = (None, None);
        let mut line = String::new();
        loop {
            line.clear();
            if out.read_line(&mut line)? == 0 {
                let _ = child.kill();
                bail!("serve ended before `ready`; see its log in {}", dir.display());
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["registrar-a", "udp", address] => registrar = Some(address.to_string()),
                ["credentials", "user", user, "password", password, "realm", realm] => {
                    auth =
                        Some(Auth { user: user.to_string(), password: password.to_string(), realm: realm.to_string() })
                }
                ["ready"] => break,
                _ => {}
            }
        }
        // The live ladder: read and thrown away, as a terminal would take it.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let (Some(registrar), Some(auth)) = (registrar, auth) else {
            let _ = child.kill();
            bail!("serve printed no registrar-a udp address or no credentials");
        };
        Ok(Serve { child, registrar, auth })
    }

    fn rss_kib(&self) -> Result<u64> {
        rss_kib(self.child.id())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")
}

/// Kamailio 5.6 as a registrar with usrloc in memory, two children, digest for serve's user.
struct Kamailio {
    child: Child,
    address: String,
}

impl Kamailio {
    fn start(dir: &Path, auth: &Auth) -> Result<Kamailio> {
        let cfg = dir.join("kamailio.cfg");
        std::fs::write(&cfg, kamailio_cfg(auth))?;
        let log = std::fs::File::create(dir.join("kamailio.log"))?;
        let mut child = Command::new("kamailio")
            .args(["-DD", "-E", "-m", "512", "-M", "32", "-f"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot run kamailio")?;
        let address = format!("{KAMAILIO_IP}:5060");
        let deadline = Instant::now() + Duration::from_secs(15);
        // Up once its port is taken.
        while UdpSocket::bind(&address).is_ok() {
            if child.try_wait()?.is_some() || Instant::now() > deadline {
                let _ = child.kill();
                bail!("kamailio did not come up; see {}", dir.join("kamailio.log").display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Kamailio { child, address })
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // SIGTERM first: the main process then stops its children.
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kamailio_cfg(auth: &Auth) -> String {
    format!(
        r#"#!KAMAILIO
debug=0
log_stderror=yes
children=2
listen=udp:{KAMAILIO_IP}:5060
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "textops.so"
loadmodule "auth.so"
modparam("usrloc", "db_mode", 0)
request_route {{
  if (is_method("REGISTER")) {{
    if (!pv_www_authenticate("{realm}", "{password}", "0") || $au != "{user}") {{
      www_challenge("{realm}", "1");
      exit;
    }}
    if (!save("location")) {{ sl_reply_error(); }}
    exit;
  }}
  sl_send_reply("404","Not here");
}}
"#,
        realm = auth.realm,
        password = auth.password,
        user = auth.user
    )
}

/// A REGISTER answered 401, then again with digest credentials, answered 200; `aor` is the
/// user part (SIPp keywords allowed), so one AOR or one per call. Each transaction is a
/// response-time counter (`rtd`): SIPp's trace of them is what the bench counts.
fn register_scenario(aor: &str, expires: u32) -> String {
    let request = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:[remote_ip] SIP/2.0\nVia: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n\
From: <sip:{aor}@lab.test>;tag=[call_number]\nTo: <sip:{aor}@lab.test>\nCall-ID: [call_id]\nCSeq: {cseq} REGISTER\n\
Contact: <sip:{aor}@[local_ip]:[local_port]>\n{auth}Max-Forwards: 70\nExpires: {expires}\nContent-Length: 0\n\n"
        )
    };
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register-digest">
  <send retrans="500" start_rtd="1"><![CDATA[
{}
  ]]></send>
  <recv response="401" auth="true" rtd="1"/>
  <send retrans="500" start_rtd="2"><![CDATA[
{}
  ]]></send>
  <recv response="200" rtd="2"/>
</scenario>
"#,
        request(1, ""),
        request(2, "[authentication]\n")
    )
}

const OPTIONS_SCENARIO: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="options">
  <send retrans="500" start_rtd="1"><![CDATA[
OPTIONS sip:[remote_ip] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:bench@lab.test>;tag=[call_number]
To: <sip:[remote_ip]>
Call-ID: [call_id]
CSeq: 1 OPTIONS
Max-Forwards: 70
Content-Length: 0

  ]]></send>
  <recv response="200" rtd="1"/>
</scenario>
"#;

fn write_scenario(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let path = dir.join(format!("{name}.xml"));
    std::fs::write(&path, text)?;
    Ok(path)
}

/// What one SIPp run measured: each answered transaction's response time (ms, SIPp's
/// resolution) and when it completed.
struct SippRun {
    offered: usize,
    response_ms: Vec<u32>,
    span_ms: f64,
    seconds_offered: f64,
}

impl SippRun {
    fn tx_per_s(&self) -> f64 {
        self.response_ms.len() as f64 / (self.span_ms / 1000.0).max(self.seconds_offered)
    }

    fn percentile(&self, p: f64) -> u32 {
        if self.response_ms.is_empty() {
            return 0;
        }
        let mut sorted = self.response_ms.clone();
        sorted.sort_unstable();
        sorted[((sorted.len() - 1) as f64 * p).round() as usize]
    }

    fn unanswered(&self) -> usize {
        self.offered.saturating_sub(self.response_ms.len())
    }
}

/// Runs SIPp: `calls` calls at `calls_per_s` against `target`; each scenario's transactions
/// are counted from SIPp's response-time trace.
fn sipp(dir: &Path, scenario: &Path, target: &str, calls_per_s: u32, calls: u32, auth: &Auth) -> Result<SippRun> {
    let run_dir = dir.join(format!("sipp-{}", RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    std::fs::create_dir_all(&run_dir)?;
    let text = std::fs::read_to_string(scenario)?;
    let transactions_per_call = text.matches("<recv").count();
    let seconds_offered = f64::from(calls) / f64::from(calls_per_s);
    let limit = seconds_offered as u64 + u64::from(RECEIVE_TIMEOUT_MS / 1000) + 30;
    let output = std::fs::File::create(run_dir.join("sipp.out"))?;
    let status = Command::new("sipp")
        .arg(target)
        .arg("-sf")
        .arg(scenario)
        .args(["-i", SIPP_IP, "-nostdin", "-trace_rtt", "-rtt_freq", "1"])
        .args(["-m", &calls.to_string(), "-r", &calls_per_s.to_string(), "-rp", "1000"])
        .args(["-au", &auth.user, "-ap", &auth.password])
        .args(["-recv_timeout", &RECEIVE_TIMEOUT_MS.to_string(), "-timeout", &format!("{limit}s")])
        // SIPp's own socket buffer is 64 KB by default: a burst of answers overflowed it, and each
        // answer it dropped came back as a retransmission half a second later, a p99 of 500 ms
        // that measured the client, not the server (both servers are driven the same way).
        .args(["-buff_size", &SIPP_SOCKET_BUFFER.to_string()])
        .current_dir(&run_dir)
        .stdin(Stdio::null())
        .stdout(output.try_clone()?)
        .stderr(output)
        .status()
        .context("cannot run sipp")?;
    // 0: every call succeeded; 1: some failed (counted below as unanswered).
    if !matches!(status.code(), Some(0 | 1)) {
        bail!("sipp against {target} failed: {status}; see {}", run_dir.join("sipp.out").display());
    }
    let mut response_ms = Vec::new();
    let (mut first, mut last) = (f64::MAX, 0f64);
    for entry in std::fs::read_dir(&run_dir)? {
        let path = entry?.path();
        if !path.to_string_lossy().ends_with("_rtt.csv") {
            continue;
        }
        let mut text = String::new();
        std::fs::File::open(&path)?.read_to_string(&mut text)?;
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split(';').collect();
            let (Some(at), Some(ms)) = (fields.first().and_then(|f| f.parse::<f64>().ok()), fields.get(1)) else {
                continue;
            };
            let Ok(ms) = ms.parse::<u32>() else { continue };
            first = first.min(at - f64::from(ms));
            last = last.max(at);
            response_ms.push(ms);
        }
    }
    Ok(SippRun {
        offered: calls as usize * transactions_per_call,
        response_ms,
        span_ms: (last - first).max(0.0),
        seconds_offered,
    })
}

static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// OPTIONS sent by our own client at `rate` a second (`count` of them), each timed from send to
/// its answer in microseconds: p50 and p99 of those answered.
fn options_latency(target: SocketAddr, rate: u32, count: u32) -> Result<(u64, u64)> {
    let socket = UdpSocket::bind(format!("{LATENCY_CLIENT_IP}:0"))?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let local = socket.local_addr()?;
    let sent: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; count as usize]));
    let receiver = {
        let (socket, sent) = (socket.try_clone()?, sent.clone());
        std::thread::spawn(move || {
            let mut latencies = Vec::new();
            let mut buffer = [0u8; 4096];
            let mut idle_since = None;
            loop {
                match socket.recv(&mut buffer) {
                    Ok(n) => {
                        let now = Instant::now();
                        idle_since = None;
                        let text = String::from_utf8_lossy(&buffer[..n]);
                        let number = text
                            .lines()
                            .find_map(|l| l.strip_prefix("Call-ID: lat-"))
                            .and_then(|rest| rest.split('@').next())
                            .and_then(|n| n.parse::<usize>().ok());
                        let at = number.and_then(|n| sent.lock().ok().and_then(|s| s.get(n).copied().flatten()));
                        if let Some(at) = at {
                            latencies.push(now.duration_since(at).as_micros() as u64);
                        }
                        if latencies.len() == count as usize {
                            return latencies;
                        }
                    }
                    Err(_) => {
                        let since = *idle_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > Duration::from_secs(2) {
                            return latencies;
                        }
                    }
                }
            }
        })
    };
    let start = Instant::now();
    for n in 0..count as usize {
        let due = start + Duration::from_secs_f64(n as f64 / f64::from(rate));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let message = format!(
            "OPTIONS sip:{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-lat-{n}\r\nMax-Forwards: 70\r\n\
From: <sip:bench@lab.test>;tag=lat{n}\r\nTo: <sip:{target}>\r\nCall-ID: lat-{n}@bench\r\nCSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n"
        );
        if let Ok(mut s) = sent.lock() {
            s[n] = Some(Instant::now());
        }
        socket.send_to(message.as_bytes(), target)?;
    }
    let mut latencies = receiver.join().map_err(|_| anyhow::anyhow!("the latency receiver panicked"))?;
    if latencies.is_empty() {
        bail!("no OPTIONS to {target} was answered");
    }
    latencies.sort_unstable();
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    Ok((at(0.50), at(0.99)))
}
