//! DUT drivers: one trait for every phone the harness can drive, the profiles that name them, and what each declares about itself.

mod refphone;
mod scripted;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub use refphone::{RefphoneDriver, find_refphone};
pub use scripted::ScriptedPhone;

use crate::error::HarnessError;
use crate::provision::Provisioning;
use crate::trace::Transport;

/// How the phone decides that a request timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutModel {
    /// The vendor's `sip transaction timer`.
    TransactionTimer,
    /// RFC 3261 Timer F: 64*T1.
    SixtyFourT1,
}

/// What a phone has and how it times out (BRIEF §6); deadlines derive from it.
#[derive(Debug, Clone)]
pub struct Capabilities {
    pub backup_registrar: bool,
    pub backup_proxy: bool,
    pub transports: Vec<Transport>,
    /// Whether the phone reads ICMP port unreachable (connected UDP sockets or IP_RECVERR).
    pub reads_icmp: bool,
    pub timeout_model: TimeoutModel,
    /// How long after start the phone sends its first request.
    pub startup: Duration,
    /// Case ids (or globs) the profile expects to fail, each with its reason.
    pub expected_failures: Vec<(String, String)>,
}

impl Capabilities {
    /// What the reference phone declares: both backups, every transport it speaks, ICMP read,
    /// the vendor's transaction timer.
    pub fn reference(transports: Vec<Transport>, startup: Duration) -> Capabilities {
        Capabilities {
            backup_registrar: true,
            backup_proxy: true,
            transports,
            reads_icmp: true,
            timeout_model: TimeoutModel::TransactionTimer,
            startup,
            expected_failures: Vec::new(),
        }
    }
}

/// Where the phone must find the lab.
#[derive(Debug, Clone)]
pub struct LabAddresses {
    /// The address the phone binds (BRIEF §4).
    pub phone: std::net::IpAddr,
    pub dns: SocketAddr,
    /// The lab CA's certificate (PEM), for phones that speak TLS.
    pub ca_file: std::path::PathBuf,
}

/// Something the harness asks the phone to do, as a user would at its keypad.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stimulus {
    Dial(String),
    Reset,
}

/// A phone under test. The harness drives it only through this trait, and judges it only by
/// what crosses the network.
#[async_trait::async_trait]
pub trait Dut: Send + Sync {
    /// The profile's name, as given on the command line.
    fn name(&self) -> &str;
    fn capabilities(&self) -> &Capabilities;
    /// Serves the phone its cfg files for a case (written under `dir`).
    async fn provision(&mut self, provisioning: &Provisioning, lab: &LabAddresses, dir: &Path) -> Result<(), HarnessError>;
    async fn start(&mut self) -> Result<(), HarnessError>;
    async fn stimulate(&mut self, stimulus: Stimulus) -> Result<(), HarnessError>;
    /// Whether the phone is still running; `Err` carries why it stopped (its log's tail).
    fn check_alive(&mut self) -> Result<(), HarnessError>;
    async fn stop(&mut self) -> Result<(), HarnessError>;
}

/// A parsed `--phone NAME[:key=value,...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub options: Vec<(String, String)>,
}

impl Profile {
    pub fn parse(text: &str) -> Result<Profile, HarnessError> {
        let bad = |detail: String| HarnessError::Profile { profile: text.to_owned(), detail };
        let (name, rest) = match text.split_once(':') {
            Some((n, r)) => (n, Some(r)),
            None => (text, None),
        };
        if name.is_empty() {
            return Err(bad("empty profile name".into()));
        }
        let mut options = Vec::new();
        for item in rest.into_iter().flat_map(|r| r.split(',')) {
            let (k, v) = item.split_once('=').ok_or_else(|| bad(format!("expected key=value, got {item:?}")))?;
            if k.is_empty() || v.is_empty() {
                return Err(bad(format!("expected key=value, got {item:?}")));
            }
            options.push((k.to_owned(), v.to_owned()));
        }
        let profile = Profile { name: name.to_owned(), options };
        match profile.name.as_str() {
            "refphone" => {
                for (k, _) in &profile.options {
                    if k != "quirk" {
                        return Err(bad(format!("refphone takes only quirk=NAME options, not {k:?}")));
                    }
                }
                Ok(profile)
            }
            "baresip" | "aastra" | "manual" => Err(bad(format!("the {name} profile is not available yet; use refphone"))),
            other => Err(bad(format!("unknown phone {other:?}; known: refphone"))),
        }
    }

    pub fn values(&self, key: &str) -> impl Iterator<Item = &str> {
        self.options.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A fresh driver for one case.
    pub fn driver(&self) -> Result<Box<dyn Dut>, HarnessError> {
        match self.name.as_str() {
            "refphone" => Ok(Box::new(RefphoneDriver::new(
                find_refphone()?,
                self.values("quirk").map(str::to_owned).collect(),
                self.to_string(),
            ))),
            other => Err(HarnessError::Profile { profile: other.into(), detail: "no driver".into() }),
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        for (i, (k, v)) in self.options.iter().enumerate() {
            write!(f, "{}{k}={v}", if i == 0 { ":" } else { "," })?;
        }
        Ok(())
    }
}
