//! The refphone driver: writes the case's cfg files, starts `refphone` as a child on the phone's address, and makes sure it never outlives the run.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::child::{ChildPhone, on_path};
use super::{Capabilities, Dut, LabAddresses, Stimulus};
use crate::error::HarnessError;
use crate::provision::Provisioning;
use crate::trace::Transport;

/// Finds the refphone binary: next to our executable (or one level up, for test binaries in
/// `target/*/deps`), else on PATH, else at `SIPHARNESS_REFPHONE` (BRIEF §6).
pub fn find_refphone() -> Result<PathBuf, HarnessError> {
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let candidate = dir.join("refphone");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    if let Some(found) = on_path("refphone") {
        return Ok(found);
    }
    if let Some(path) = std::env::var_os("SIPHARNESS_REFPHONE") {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        return Err(HarnessError::DutStart(format!("SIPHARNESS_REFPHONE={} is not a file", path.display())));
    }
    Err(HarnessError::DutStart(
        "refphone not found next to this executable, on PATH, or at SIPHARNESS_REFPHONE; build it with `cargo build -p phone`".into(),
    ))
}

/// The quirks `binary --list-quirks` lists, by name.
pub fn known_quirks(binary: &Path) -> Result<Vec<String>, HarnessError> {
    let output = std::process::Command::new(binary)
        .arg("--list-quirks")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| HarnessError::DutStart(format!("{} --list-quirks: {e}", binary.display())))?;
    if !output.status.success() {
        return Err(HarnessError::DutStart(format!("{} --list-quirks failed ({})", binary.display(), output.status)));
    }
    let listing = String::from_utf8_lossy(&output.stdout);
    Ok(listing.lines().filter_map(|l| l.split('\t').next()).filter(|n| !n.is_empty()).map(str::to_owned).collect())
}

/// Drives the reference phone over its command line and cfg files.
pub struct RefphoneDriver {
    binary: PathBuf,
    quirks: Vec<String>,
    name: String,
    capabilities: Capabilities,
    args: Vec<String>,
    log: Option<PathBuf>,
    child: Option<ChildPhone>,
    /// Where the harness pushes from, and the phone's HTTP server.
    push: Option<(std::net::IpAddr, std::net::SocketAddr)>,
}

impl RefphoneDriver {
    pub fn new(binary: PathBuf, quirks: Vec<String>, name: String) -> RefphoneDriver {
        RefphoneDriver {
            binary,
            quirks,
            name,
            capabilities: Capabilities::reference(
                vec![Transport::Udp, Transport::Tcp, Transport::Tls],
                Duration::from_secs(2),
            ),
            args: Vec::new(),
            log: None,
            child: None,
            push: None,
        }
    }
}

#[async_trait::async_trait]
impl Dut for RefphoneDriver {
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
        let global = dir.join("aastra.cfg");
        let mac = dir.join(format!("{}.cfg", provisioning.mac));
        let state = dir.join("state");
        std::fs::write(&global, &provisioning.global_cfg)?;
        std::fs::write(&mac, &provisioning.mac_cfg)?;
        std::fs::create_dir_all(&state)?;
        let mut args = vec![
            "--config".to_owned(),
            global.display().to_string(),
            "--config".to_owned(),
            mac.display().to_string(),
            "--mac".to_owned(),
            provisioning.mac.clone(),
            "--bind".to_owned(),
            lab.phone.to_string(),
            "--dns".to_owned(),
            lab.dns.to_string(),
            "--state-dir".to_owned(),
            state.display().to_string(),
            "--ca".to_owned(),
            lab.ca_file.display().to_string(),
            "--http".to_owned(),
            std::net::SocketAddr::new(lab.phone, super::PUSH_PORT).to_string(),
        ];
        self.push = Some((lab.console, std::net::SocketAddr::new(lab.phone, super::PUSH_PORT)));
        for quirk in &self.quirks {
            args.push("--quirk".to_owned());
            args.push(quirk.clone());
        }
        self.args = args;
        self.log = Some(dir.join("refphone.log"));
        Ok(())
    }

    async fn start(&mut self) -> Result<(), HarnessError> {
        let log = self.log.clone().ok_or_else(|| HarnessError::DutStart("start before provision".into()))?;
        let level = std::env::var("SIPHARNESS_PHONE_LOG").unwrap_or_else(|_| "info".into());
        self.child = Some(ChildPhone::spawn(&self.binary, &self.args, &[("RUST_LOG", level)], &log)?);
        Ok(())
    }

    async fn stimulate(&mut self, stimulus: Stimulus) -> Result<(), HarnessError> {
        let (from, to) = self.push.ok_or_else(|| HarnessError::Other("stimulus before provision".into()))?;
        match super::xml_push(from, to, &stimulus.execute_uri()).await? {
            200 => Ok(()),
            status => Err(HarnessError::Other(format!("refphone answered the XML push {stimulus:?} with {status}"))),
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
