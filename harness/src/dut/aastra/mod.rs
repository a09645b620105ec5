//! The driver for the vendor's hardware phones (`aastra:ip=ADDR,mac=MAC`): serves each case's cfg from a built-in provisioning server and drives the phone by XML push.
//!
//! What the engineer sets once on the phone, by hand (the harness cannot: a phone's local
//! settings override server cfg, and these say where the server is):
//! - its provisioning URL: download protocol HTTP, server the lab's console address (the block's
//!   base + 9, the address just below the phone's), port [`PROVISIONING_PORT`], no path, so the
//!   phone asks for `http://<console>:8081/aastra.cfg` and `http://<console>:8081/<MAC>.cfg`;
//! - the console address in its `xml application post list`, so it obeys the harness's pushes;
//! - its own address, the profile's `ip`, which must be the lab's phone address (the block's
//!   base + 10: the block is pinned from it), its DNS server the lab's DNS on port 53, and the
//!   lab CA (kept with `serve --ca-dir`) among its trusted certificates for TLS.
//!
//! A case then goes: the cfg is served from memory ([`ProvisioningServer`]: those two files for
//! that MAC, 404 for anything else); `Command: ClearLocal` clears values set at the keypad, which
//! would override the served cfg; `Command: Reset` reboots the phone, which fetches both files and
//! registers; the harness waits for both fetches, and the case for the REGISTERs. `Dial:` and
//! `Command: Reset` are pushed as the case asks.

mod http;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

pub use http::{MAX_REQUEST_BYTES, ProvisioningServer, REQUEST_TIMEOUT};

use super::{Capabilities, Dut, LabAddresses, Profile, Stimulus, TimeoutModel, TimerFloors};
use crate::error::HarnessError;
use crate::provision::Provisioning;
use crate::trace::Transport;

/// The port of the provisioning server, on the lab's console address: fixed, since the phone's
/// provisioning URL names it and is set by hand once.
pub const PROVISIONING_PORT: u16 = 8081;

/// The least the vendor's phone accepts (BRIEF §2): `sip registration retry timer` and
/// `sip registration timeout retry timer` 30 s, `sip transaction timer` 4000 ms. Chosen where
/// the brief is silent: the registration period and the subscription period 30 s (a phone
/// refreshing every few seconds is not what a lab measures), and the failback probe at the
/// retry timer's 30 s (the vendor's phone tries a failed primary again on its retry timer).
pub const VENDOR_FLOORS: TimerFloors = TimerFloors {
    // `sip T1 timer` has no floor the brief names; the transaction timer bounds a request.
    t1: Duration::ZERO,
    registration_period: Duration::from_secs(30),
    registration_retry: Duration::from_secs(30),
    transaction_timer: Duration::from_secs(4),
    subscription_period: Duration::from_secs(30),
    failback_probe: Duration::from_secs(30),
};

/// How long a hardware phone may take from `Command: Reset` to its first request: it reboots in
/// 60-90 s.
pub const STARTUP: Duration = Duration::from_secs(120);

/// The profile's options, checked: `ip` and `mac` required, `floors=vendor|none` optional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AastraOptions {
    pub ip: IpAddr,
    /// 12 hex digits, upper case.
    pub mac: String,
    /// `floors=none`: the phone takes the lab's fast timers below the vendor's minimums (a phone
    /// whose firmware allows it, or the test double in `suites/tests/aastra.rs`, which runs
    /// refphone behind the vendor's HTTP). Default `floors=vendor`: [`VENDOR_FLOORS`].
    pub vendor_floors: bool,
}

impl AastraOptions {
    /// The options of an `aastra` profile, or what is wrong with them (one line).
    pub fn of(profile: &Profile) -> Result<AastraOptions, String> {
        let one = |key: &str| -> Result<Option<&str>, String> {
            let mut values = profile.values(key);
            let first = values.next();
            if values.next().is_some() {
                return Err(format!("aastra takes one {key}="));
            }
            Ok(first)
        };
        if let Some((key, _)) = profile.options.iter().find(|(k, _)| !["ip", "mac", "floors"].contains(&k.as_str())) {
            return Err(format!("aastra takes ip=ADDR, mac=MAC and floors=vendor|none, not {key:?}"));
        }
        let ip = one("ip")?.ok_or("aastra needs ip=ADDR, the phone's address")?;
        let ip: IpAddr = ip.parse().map_err(|_| format!("ip={ip:?} is not an IP address"))?;
        let mac = one("mac")?.ok_or("aastra needs mac=MAC, the phone's MAC (12 hex digits)")?;
        let mac = crate::provision::parse_mac(mac).map_err(|e| format!("mac={e}"))?;
        let vendor_floors = floors_option(one("floors")?)?;
        Ok(AastraOptions { ip, mac, vendor_floors })
    }

    /// The lab block the phone's address names (its base + 10 is the phone), if it names one.
    pub fn block(&self) -> Option<std::net::Ipv4Addr> {
        let IpAddr::V4(ip) = self.ip else { return None };
        let [a, b, c, d] = ip.octets();
        let base = std::net::Ipv4Addr::new(a, b, c, d.checked_sub(10)?);
        crate::topology::parse_block(&base.to_string()).ok()
    }
}

/// `run` needs the phone at a lab's phone address: the lab file's (`--lab`), or on loopback the
/// block's base + 10, so the lab can pin the block around it.
pub fn check_runnable(profile: &Profile, lab: Option<&crate::topology::Topology>) -> Result<(), HarnessError> {
    let bad = |detail: String| HarnessError::Profile { profile: profile.to_string(), detail };
    let options = AastraOptions::of(profile).map_err(bad)?;
    if let Some(lab) = lab {
        return if options.ip == lab.phone_ip() {
            Ok(())
        } else {
            Err(bad(format!("ip={} is not the lab file's phone address {}", options.ip, lab.phone_ip())))
        };
    }
    match options.block() {
        Some(_) => Ok(()),
        None => Err(bad(format!(
            "ip={} is not a lab phone address: the phone sits at its block's base + 10 on loopback, e.g. 127.100.0.26 for the block 127.100.0.16",
            options.ip
        ))),
    }
}

/// The lab for a case with this phone: on the block its address names, with its MAC.
pub fn adjust_lab(options: &AastraOptions, spec: &mut crate::lab::LabSpec) {
    if let Some(block) = options.block() {
        spec.block = crate::lab::BlockChoice::Pinned(block);
    }
    spec.mac = options.mac.clone();
}

/// The `floors=vendor|none` option (`aastra`, `manual`): whether the phone's timers are raised
/// to [`VENDOR_FLOORS`] (the default).
pub(crate) fn floors_option(value: Option<&str>) -> Result<bool, String> {
    match value {
        None | Some("vendor") => Ok(true),
        Some("none") => Ok(false),
        Some(other) => Err(format!("floors={other:?}: expected vendor or none")),
    }
}

/// What the vendor's phone declares: every feature of the reference phone (it is the phone
/// refphone models), ICMP not read (assumed: the firmware's UDP sockets are not known to be
/// connected), the vendor's transaction timer, a reboot's start-up, and the vendor's floors.
pub fn capabilities(vendor_floors: bool) -> Capabilities {
    Capabilities {
        reads_icmp: false,
        timeout_model: TimeoutModel::TransactionTimer,
        floors: if vendor_floors { VENDOR_FLOORS } else { TimerFloors::default() },
        ..Capabilities::reference(vec![Transport::Udp, Transport::Tcp, Transport::Tls], STARTUP)
    }
}

/// Drives one of the vendor's phones at a fixed address.
pub struct AastraDriver {
    name: String,
    options: AastraOptions,
    capabilities: Capabilities,
    /// Where the harness pushes from (the lab's console address).
    console: Option<IpAddr>,
    server: Option<ProvisioningServer>,
}

impl AastraDriver {
    pub fn new(options: AastraOptions, name: String) -> AastraDriver {
        let capabilities = capabilities(options.vendor_floors);
        AastraDriver { name, options, capabilities, console: None, server: None }
    }

    fn push_target(&self) -> SocketAddr {
        SocketAddr::new(self.options.ip, super::PUSH_PORT)
    }

    /// Pushes one ExecuteItem; anything but 200 is the environment's fault (the console is not
    /// in the phone's `xml application post list`, or the phone is not there).
    async fn push(&self, item: &str) -> Result<(), HarnessError> {
        let console = self.console.ok_or_else(|| HarnessError::Other("XML push before provision".into()))?;
        let target = self.push_target();
        match super::xml_push(console, target, item).await? {
            200 => {
                tracing::info!(phone = %target, "XML push {item:?} accepted");
                Ok(())
            }
            403 => Err(HarnessError::DutStart(format!(
                "the phone at {target} refused the XML push {item:?} (403): add {console} to its xml application post list"
            ))),
            status => Err(HarnessError::DutStart(format!(
                "the phone at {target} answered the XML push {item:?} with {status}"
            ))),
        }
    }
}

#[async_trait::async_trait]
impl Dut for AastraDriver {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// Keeps the case's two files (also written under `dir`, for the record) and serves them
    /// on the console address.
    async fn provision(
        &mut self,
        provisioning: &Provisioning,
        lab: &LabAddresses,
        dir: &Path,
    ) -> Result<(), HarnessError> {
        if lab.phone != self.options.ip {
            return Err(HarnessError::Provision(format!(
                "the phone is at {}, but this lab's phone address is {}: the lab judges the phone by its address",
                self.options.ip, lab.phone
            )));
        }
        std::fs::write(dir.join("aastra.cfg"), &provisioning.global_cfg)?;
        std::fs::write(dir.join(format!("{}.cfg", self.options.mac)), &provisioning.mac_cfg)?;
        self.server = None;
        let server = ProvisioningServer::start(
            SocketAddr::new(lab.console, PROVISIONING_PORT),
            &self.options.mac,
            provisioning.global_cfg.clone(),
            provisioning.mac_cfg.clone(),
        )
        .await?;
        tracing::info!(
            "provisioning {} for the phone at {}: its provisioning URL must be http://{}/",
            self.options.mac,
            self.options.ip,
            server.address()
        );
        self.server = Some(server);
        self.console = Some(lab.console);
        Ok(())
    }

    /// Clears the phone's local values, reboots it, and waits (up to the start-up) until it
    /// fetched both files: a phone that never asks is an environment error, not a failed case.
    async fn start(&mut self) -> Result<(), HarnessError> {
        let server = self.server.as_ref().ok_or_else(|| HarnessError::DutStart("start before provision".into()))?;
        let mut fetched = server.fetched();
        let url = format!("http://{}/", server.address());
        self.push("Command: ClearLocal").await?;
        self.push("Command: Reset").await?;
        let both = fetched.wait_for(|files| files.contains("aastra.cfg") && files.len() == 2);
        match tokio::time::timeout(self.capabilities.startup, both).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(HarnessError::DutStart("the provisioning server stopped".into())),
            Err(_) => Err(HarnessError::DutStart(format!(
                "the phone at {} did not fetch aastra.cfg and {}.cfg within {} s of its reset: is its provisioning URL {url}?",
                self.options.ip,
                self.options.mac,
                self.capabilities.startup.as_secs()
            ))),
        }
    }

    async fn stimulate(&mut self, stimulus: Stimulus) -> Result<(), HarnessError> {
        self.push(&stimulus.execute_uri()).await
    }

    /// A hardware phone cannot be watched from here; the trace shows whether it speaks.
    fn check_alive(&mut self) -> Result<(), HarnessError> {
        Ok(())
    }

    /// Stops serving; the phone itself runs on (it is the engineer's).
    async fn stop(&mut self) -> Result<(), HarnessError> {
        self.server = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{AastraOptions, VENDOR_FLOORS};
    use crate::dut::Profile;

    fn options(text: &str) -> Result<AastraOptions, String> {
        let (name, rest) = text.split_once(':').unwrap();
        let options =
            rest.split(',').map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).unwrap()).collect();
        AastraOptions::of(&Profile { name: name.into(), options })
    }

    #[test]
    fn options_need_an_ip_and_a_mac() {
        let parsed = options("aastra:ip=127.100.0.26,mac=00:08:5d:00:00:01").unwrap();
        assert_eq!(parsed.mac, "00085D000001");
        assert!(parsed.vendor_floors);
        assert_eq!(parsed.block(), Some("127.100.0.16".parse().unwrap()));
        assert!(!options("aastra:ip=127.0.0.1,mac=00085D000001,floors=none").unwrap().vendor_floors);
        assert_eq!(options("aastra:ip=127.0.0.1,mac=00085D000001").unwrap().block(), None);
        for (bad, says) in [
            ("aastra:mac=00085D000001", "needs ip="),
            ("aastra:ip=127.0.0.1", "needs mac="),
            ("aastra:ip=phone,mac=00085D000001", "not an IP address"),
            ("aastra:ip=127.0.0.1,mac=00085D", "not a MAC"),
            ("aastra:ip=127.0.0.1,mac=00085D000001,floors=low", "vendor or none"),
            ("aastra:ip=127.0.0.1,mac=00085D000001,quirk=x", "not \"quirk\""),
            ("aastra:ip=127.0.0.1,ip=127.0.0.2,mac=00085D000001", "one ip="),
        ] {
            let error = options(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn vendor_floors_are_the_briefs() {
        assert_eq!(VENDOR_FLOORS.registration_retry.as_secs(), 30);
        assert_eq!(VENDOR_FLOORS.transaction_timer.as_millis(), 4000);
    }
}
