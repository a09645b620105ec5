//! The baresip driver: a private config dir per case (Debian's `baresip-core` 1.0), baresip started as a child on the phone's address, dialled through its `ctrl_tcp` module, and what it was measured to do declared as capabilities and expected failures.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::child::{ChildPhone, on_path};
use super::{Capabilities, Dut, LabAddresses, Stimulus, TimeoutModel, TimerFloors};
use crate::error::HarnessError;
use crate::provision::Provisioning;
use crate::trace::Transport;

/// The port baresip's `ctrl_tcp` module listens on, on the phone's address.
pub const CTRL_PORT: u16 = 4444;

/// How long a `ctrl_tcp` command may take to be answered.
const CTRL_TIMEOUT: Duration = Duration::from_secs(5);

/// Finds `baresip` on PATH (Debian's `baresip-core`; `cargo xtask test` installs it).
pub fn find_baresip() -> Result<PathBuf, HarnessError> {
    on_path("baresip").ok_or_else(|| {
        HarnessError::DutStart(
            "baresip not found on PATH; install Debian's baresip-core (`cargo xtask test` does, as root)".into(),
        )
    })
}

/// What baresip 1.0 has, as the lab provisions it (`phone_config::baresip`), measured against
/// the lab: one account whose outbound proxy is the row's first hop (the registrar in row 1).
/// `outbound2` is only a second RFC 5626 flow (`sipnat=outbound`), never a backup route, so row 1
/// has no backup registrar or proxy. MWI but no BLF (its `presence` module subscribes to
/// presence, not `dialog`); dialling through `ctrl_tcp`; no reboot command. libre fixes T1 at
/// 500 ms (a request times out after 64*T1 = 32 s), reads ICMP on UDP (it moved to the next SRV
/// target at once when the first refused), and re-registers at 90% of the granted expiry.
pub fn capabilities() -> Capabilities {
    Capabilities {
        backup_registrar: false,
        backup_proxy: false,
        outbound_proxies: true,
        sip_outbound: true,
        transports: vec![Transport::Udp, Transport::Tcp, Transport::Tls],
        subscriptions: false,
        dial: true,
        reboot: false,
        // No registrar setting: its AOR's domain (proxy-a) in the Request-URI, its outbound proxy
        // (the registrar, in row 1) as the route.
        names_registrar_in_request_uri: false,
        reads_icmp: true,
        // libre connects TCP (and TLS) unbound, whatever `sip_listen` says: the kernel picks 127.0.0.1.
        phone_alias: Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
        timeout_model: TimeoutModel::SixtyFourT1,
        startup: Duration::from_secs(3),
        reaction: Duration::ZERO,
        // libre re-registers at `rwait`, 90% of the granted expiry unless the account says otherwise.
        refresh_share: 0.9,
        floors: TimerFloors { t1: Duration::from_millis(500), ..TimerFloors::default() },
        expected_failures: EXPECTED_FAILURES
            .iter()
            .map(|(case, why)| ((*case).to_owned(), (*why).to_owned()))
            .collect(),
        unstable: vec![(
            "dns.no-outbound.next-srv-target.refuse.t*".to_owned(),
            "when registrar-a's TCP or TLS connection is reset, baresip 1.0 sometimes re-registers at \
             registrar-b at once and sometimes sends nothing within the refresh deadline, depending on \
             whether the reset or its refresh timer comes first (measured: 10 passes, 3 failures under load)"
                .to_owned(),
        )],
    }
}

/// Where baresip 1.0 was measured to break what the cases check, each with what it does.
const EXPECTED_FAILURES: &[(&str, &str)] = &[
    (
        "dns.no-outbound.next-srv-target.silent.*",
        "baresip 1.0 sends the REGISTER answering registrar-b's 401 to registrar-a again, the first SRV \
         target, which is down: RFC 3263 §4.3 ends the search at the server that answered, whose nonce it is",
    ),
    (
        // Over TCP and TLS the refused connection sends it on to registrar-b again, and it passes.
        "dns.no-outbound.next-srv-target.refuse.udp",
        "baresip 1.0 sends the REGISTER answering registrar-b's 401 to registrar-a again, the first SRV \
         target, which is down: RFC 3263 §4.3 ends the search at the server that answered, whose nonce it is",
    ),
    (
        "dns.no-outbound.dns-fails.*",
        "baresip 1.0 keeps no stale records (RFC 8767): once the TTL ran out with the DNS down, it asks \
         again and again and registers nowhere",
    ),
    (
        "outbound.*",
        "baresip 1.0 registers over both outbound proxies at once (reg-id 1 and 2), where the vendor keeps \
         one flow, and names its AOR's domain in the Request-URI, so its REGISTER reaches registrar-a \
         through proxy-a rather than via outbound-a alone",
    ),
];

/// Drives one baresip process per case.
pub struct BaresipDriver {
    binary: PathBuf,
    name: String,
    capabilities: Capabilities,
    dir: Option<PathBuf>,
    /// Where commands come from (the lab's console) and where `ctrl_tcp` listens.
    ctrl: Option<(IpAddr, SocketAddr)>,
    child: Option<ChildPhone>,
}

impl BaresipDriver {
    pub fn new(binary: PathBuf, name: String) -> BaresipDriver {
        BaresipDriver { binary, name, capabilities: capabilities(), dir: None, ctrl: None, child: None }
    }

    /// Sends one `ctrl_tcp` command (a netstring holding JSON) and waits for its response.
    async fn command(&self, command: &str, params: &str) -> Result<(), HarnessError> {
        let (from, to) = self.ctrl.ok_or_else(|| HarnessError::Other("baresip command before provision".into()))?;
        let failed = |e: String| HarnessError::Other(format!("baresip ctrl_tcp {to} {command} {params}: {e}"));
        let json = serde_json::json!({ "command": command, "params": params, "token": "sipharness" }).to_string();
        let exchange = async {
            let socket = if from.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() }
                .map_err(|e| failed(e.to_string()))?;
            socket.bind(SocketAddr::new(from, 0)).map_err(|e| failed(e.to_string()))?;
            let mut stream = socket.connect(to).await.map_err(|e| failed(e.to_string()))?;
            stream.write_all(format!("{}:{json},", json.len()).as_bytes()).await.map_err(|e| failed(e.to_string()))?;
            // Events arrive on the same connection: read netstrings until the response.
            let mut buffer = Vec::new();
            loop {
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await.map_err(|e| failed(e.to_string()))?;
                if n == 0 {
                    return Err(failed("closed before answering".into()));
                }
                buffer.extend_from_slice(&chunk[..n]);
                if buffer.len() > 1 << 20 {
                    return Err(failed("more than 1 MiB without a response".into()));
                }
                while let Some((message, rest)) = take_netstring(&buffer) {
                    let value: serde_json::Value = serde_json::from_slice(message).unwrap_or_default();
                    if value["response"] == true {
                        return if value["ok"] == true {
                            Ok(())
                        } else {
                            Err(failed(format!("refused: {}", value["data"])))
                        };
                    }
                    buffer = rest.to_vec();
                }
            }
        };
        tokio::time::timeout(CTRL_TIMEOUT, exchange)
            .await
            .map_err(|_| failed(format!("no answer in {CTRL_TIMEOUT:?}")))?
    }
}

/// The first netstring (`LEN:DATA,`) in `bytes` and what follows it, once it is complete.
fn take_netstring(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = bytes.iter().position(|&b| b == b':')?;
    let len: usize = std::str::from_utf8(&bytes[..colon]).ok()?.parse().ok()?;
    let end = colon.checked_add(1)?.checked_add(len)?;
    (bytes.get(end) == Some(&b',')).then(|| (&bytes[colon + 1..end], &bytes[end + 1..]))
}

#[async_trait::async_trait]
impl Dut for BaresipDriver {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn provision(
        &mut self,
        provisioning: &Provisioning,
        lab: &LabAddresses,
        dir: &Path,
    ) -> Result<(), HarnessError> {
        let dir = dir.join("baresip");
        std::fs::create_dir_all(&dir)?;
        let ctrl = SocketAddr::new(lab.phone, CTRL_PORT);
        for (name, mut text) in crate::phone_config::baresip(
            provisioning,
            &lab.topology,
            &lab.ca_file,
            crate::phone_config::RowOneRoute::Registrars,
        ) {
            if name == "config" {
                text.push_str(&format!("module_app\t\tctrl_tcp.so\nctrl_tcp_listen\t\t{ctrl}\n"));
            }
            std::fs::write(dir.join(name), text)?;
        }
        self.ctrl = Some((lab.console, ctrl));
        self.dir = Some(dir);
        Ok(())
    }

    async fn start(&mut self) -> Result<(), HarnessError> {
        let dir = self.dir.clone().ok_or_else(|| HarnessError::DutStart("start before provision".into()))?;
        let args = vec!["-f".to_owned(), dir.display().to_string()];
        self.child = Some(ChildPhone::spawn(&self.binary, &args, &[], &dir.join("baresip.log"))?);
        Ok(())
    }

    async fn stimulate(&mut self, stimulus: Stimulus) -> Result<(), HarnessError> {
        match stimulus {
            // The number alone: baresip completes it with the account's domain, as a phone's keypad does.
            Stimulus::Dial(number) => self.command("dial", &number).await,
            Stimulus::Reset => Err(HarnessError::Other("baresip has no reboot command (capabilities: reboot)".into())),
        }
    }

    fn check_alive(&mut self) -> Result<(), HarnessError> {
        self.child.as_mut().map_or(Ok(()), ChildPhone::check_alive)
    }

    async fn stop(&mut self) -> Result<(), HarnessError> {
        if let Some(child) = &mut self.child {
            child.stop().await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::take_netstring;

    #[test]
    fn netstrings_are_taken_whole_or_not_at_all() {
        assert_eq!(take_netstring(b"5:hello,6:world!,"), Some((&b"hello"[..], &b"6:world!,"[..])));
        assert_eq!(take_netstring(b"5:hel"), None);
        assert_eq!(take_netstring(b"5:hello;"), None);
        assert_eq!(take_netstring(b"x:hello,"), None);
        assert_eq!(take_netstring(b"99999999999999999999999:"), None);
    }
}
