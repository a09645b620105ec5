//! The harness's two failure types: a `Violation` (the phone broke a requirement) and a `HarnessError` (the environment broke).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::requirement::Requirement;

/// Something went wrong in the harness or its environment: nothing was learned about the phone.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("no free loopback block after {attempts} attempts (last error: {last})")]
    NoFreeAddresses { attempts: u32, last: std::io::Error },
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind { what: String, addr: std::net::SocketAddr, source: std::io::Error },
    #[error("zone file {path}: {detail}")]
    Zone { path: PathBuf, detail: String },
    #[error("the DUT could not be started: {0}")]
    DutStart(String),
    #[error("the DUT could not be provisioned: {0}")]
    Provision(String),
    #[error("bad DUT profile {profile:?}: {detail}")]
    Profile { profile: String, detail: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("watchdog: the case ran longer than its budget of {budget_s:.1} s")]
    Watchdog { budget_s: f64 },
    #[error("{0}")]
    Other(String),
}

/// The phone broke a requirement: what was expected, what arrived instead.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// The requirement the check cites.
    pub requirement: Requirement,
    pub expected: String,
    pub arrived: String,
    pub message: String,
    /// The lab time the check watched: from when its wait began to its deadline (or to the end of
    /// an observation window). `None` for a check over the whole trace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<CheckWindow>,
    /// The trace positions (the ladder's message numbers, `#N`) of what arrived instead.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<usize>,
}

impl Violation {
    pub fn new(requirement: Requirement, expected: String, arrived: String, message: String) -> Violation {
        Violation { requirement, expected, arrived, message, window: None, messages: Vec::new() }
    }

    /// The lab time the check watched.
    pub fn watched(mut self, from: Duration, until: Duration) -> Violation {
        self.window = Some(CheckWindow { from, until });
        self
    }

    /// The trace positions of what arrived instead.
    pub fn pointing_at(mut self, messages: Vec<usize>) -> Violation {
        self.messages = messages;
        self
    }
}

/// A span of lab time (since the lab started) a check watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckWindow {
    pub from: Duration,
    pub until: Duration,
}

impl serde::Serialize for CheckWindow {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut window = serializer.serialize_struct("CheckWindow", 2)?;
        window.serialize_field("from_ms", &self.from.as_millis())?;
        window.serialize_field("until_ms", &self.until.as_millis())?;
        window.end()
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}\n    expected: {}\n    arrived:  {}",
            self.requirement, self.message, self.expected, self.arrived
        )?;
        if let Some(window) = self.window {
            write!(
                f,
                "\n    watched:  {:.2} s to {:.2} s of the trace",
                window.from.as_secs_f64(),
                window.until.as_secs_f64()
            )?;
        }
        Ok(())
    }
}

/// Why a case stopped early: the phone failed a check, or the harness broke.
#[derive(Debug)]
pub enum CaseError {
    Violation(Box<Violation>),
    Harness(HarnessError),
}

impl From<Violation> for CaseError {
    fn from(v: Violation) -> CaseError {
        CaseError::Violation(Box::new(v))
    }
}

impl From<HarnessError> for CaseError {
    fn from(e: HarnessError) -> CaseError {
        CaseError::Harness(e)
    }
}

impl From<std::io::Error> for CaseError {
    fn from(e: std::io::Error) -> CaseError {
        CaseError::Harness(HarnessError::Io(e))
    }
}

impl fmt::Display for CaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaseError::Violation(v) => write!(f, "{v}"),
            CaseError::Harness(e) => write!(f, "harness error: {e}"),
        }
    }
}
