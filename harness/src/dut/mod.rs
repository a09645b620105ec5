//! DUT drivers: one trait for every phone the harness can drive, the profiles that name them, and what each declares about itself.

pub mod aastra;
mod baresip;
mod capabilities;
mod child;
mod manual;
mod refphone;
mod scripted;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub use aastra::AastraDriver;
pub use baresip::{BaresipDriver, find_baresip};
pub use capabilities::{Capabilities, TimeoutModel, TimerFloors};
pub use manual::ManualDriver;
pub use refphone::{RefphoneDriver, find_refphone};
pub use scripted::ScriptedPhone;

use crate::error::HarnessError;
use crate::provision::Provisioning;

/// Where the phone must find the lab.
#[derive(Debug, Clone)]
pub struct LabAddresses {
    /// The address the phone binds (BRIEF §4).
    pub phone: std::net::IpAddr,
    pub dns: SocketAddr,
    /// The lab CA's certificate (PEM), for phones that speak TLS.
    pub ca_file: std::path::PathBuf,
    /// The address the harness drives the phone from (HTTP push).
    pub console: std::net::IpAddr,
    /// Every address of the case's lab.
    pub topology: crate::topology::Topology,
}

/// The port a phone's XML push listens on in the lab.
pub const PUSH_PORT: u16 = 8080;

/// The vendor's XML push (BRIEF §2): `AastraIPPhoneExecute` with one ExecuteItem, form-encoded
/// as `xml=...`, POSTed from `from` to the phone's HTTP server at `to`. Returns the status code.
pub async fn xml_push(from: std::net::IpAddr, to: SocketAddr, item_uri: &str) -> Result<u16, HarnessError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let xml = format!("<AastraIPPhoneExecute><ExecuteItem URI=\"{item_uri}\"/></AastraIPPhoneExecute>");
    let body = format!("xml={}", form_encode(&xml));
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {to}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let push_error = |e: std::io::Error| HarnessError::Other(format!("XML push to {to}: {e}"));
    let socket = if from.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() }
        .map_err(push_error)?;
    socket.bind(SocketAddr::new(from, 0)).map_err(push_error)?;
    let exchange = async {
        let mut stream = socket.connect(to).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.take(64 * 1024).read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| HarnessError::Other(format!("XML push to {to}: no answer in 5 s")))?
        .map_err(push_error)?;
    let status_line = String::from_utf8_lossy(&answer).lines().next().unwrap_or("").to_owned();
    status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| HarnessError::Other(format!("XML push to {to}: bad answer {status_line:?}")))
}

/// `application/x-www-form-urlencoded` encoding of a value.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => out.push(byte as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Something the harness asks the phone to do, as a user would at its keypad.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stimulus {
    Dial(String),
    Reset,
}

impl Stimulus {
    /// The ExecuteItem URI of the vendor's XML push.
    pub fn execute_uri(&self) -> String {
        match self {
            Stimulus::Dial(number) => format!("Dial:{number}"),
            Stimulus::Reset => "Command: Reset".into(),
        }
    }
}

/// A phone under test. The harness drives it only through this trait, and judges it only by
/// what crosses the network.
#[async_trait::async_trait]
pub trait Dut: Send + Sync {
    /// The profile's name, as given on the command line.
    fn name(&self) -> &str;
    fn capabilities(&self) -> &Capabilities;
    /// Serves the phone its cfg files for a case (written under `dir`).
    async fn provision(
        &mut self,
        provisioning: &Provisioning,
        lab: &LabAddresses,
        dir: &Path,
    ) -> Result<(), HarnessError>;
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
            "baresip" => match profile.options.first() {
                Some((k, _)) => Err(bad(format!("baresip takes no options, not {k:?}"))),
                None => Ok(profile),
            },
            "aastra" => aastra::AastraOptions::of(&profile).map(|_| profile).map_err(bad),
            "manual" => manual::vendor_floors(&profile).map(|_| profile).map_err(bad),
            other => Err(bad(format!("unknown phone {other:?}; known: refphone, baresip, aastra, manual"))),
        }
    }

    /// Whether the profile names one physical phone (`aastra`, or the one an engineer handles by
    /// `manual`): its cases run one at a time.
    pub fn is_one_device(&self) -> bool {
        matches!(self.name.as_str(), "aastra" | "manual")
    }

    pub fn values(&self, key: &str) -> impl Iterator<Item = &str> {
        self.options.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A fresh driver for one case.
    /// Everything the profile names exists (refphone's quirks are those `--list-quirks` lists),
    /// so a typo is an error before any case starts.
    /// `lab` is the lab file's topology (`--lab`), where a fixed phone must sit.
    pub fn check(&self, lab: Option<&crate::topology::Topology>) -> Result<(), HarnessError> {
        self.driver()?;
        if self.name == "aastra" {
            aastra::check_runnable(self, lab)?;
        }
        if self.name == "refphone" {
            let known = refphone::known_quirks(&find_refphone()?)?;
            if let Some(unknown) = self.values("quirk").find(|q| !known.iter().any(|k| k == q)) {
                return Err(HarnessError::Profile {
                    profile: self.to_string(),
                    detail: format!("refphone has no quirk {unknown:?} (refphone --list-quirks lists them)"),
                });
            }
        }
        Ok(())
    }

    pub fn driver(&self) -> Result<Box<dyn Dut>, HarnessError> {
        match self.name.as_str() {
            "refphone" => Ok(Box::new(RefphoneDriver::new(
                find_refphone()?,
                self.values("quirk").map(str::to_owned).collect(),
                self.to_string(),
            ))),
            "baresip" => Ok(Box::new(BaresipDriver::new(find_baresip()?, self.to_string()))),
            "manual" => Ok(Box::new(ManualDriver::new(
                self.to_string(),
                manual::vendor_floors(self)
                    .map_err(|detail| HarnessError::Profile { profile: self.to_string(), detail })?,
            ))),
            "aastra" => Ok(Box::new(AastraDriver::new(
                aastra::AastraOptions::of(self)
                    .map_err(|detail| HarnessError::Profile { profile: self.to_string(), detail })?,
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
