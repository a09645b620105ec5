//! Cases and their results: what a conformance case declares about itself, and the verdict it earns.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{CaseError, Violation};
use crate::faults::Fault;
use crate::lab::{Lab, LabSpec};
use crate::provision::{Configuration, Timers};
use crate::requirement::Requirement;
use crate::topology::Topology;
use crate::trace::{TraceEvent, Transport};

/// The future a case body returns.
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = Result<(), CaseError>> + Send + 'a>>;

/// A case body: drives the lab and waits for expectations. A closure, so one driver can run
/// every row of a table with the row and fault it captured.
pub type CaseFn = Arc<dyn for<'a> Fn(&'a mut Lab) -> CaseFuture<'a> + Send + Sync>;

/// What a case needs of the phone beyond its configuration and transport (which say themselves
/// whether outbound proxies, SIP outbound or TLS are needed); a phone without it skips the case.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    pub backup_registrar: bool,
    pub backup_proxy: bool,
    /// BLF and MWI subscriptions provisioned.
    pub subscriptions: bool,
    /// The case makes the phone dial.
    pub dial: bool,
    /// The case reboots the phone.
    pub reboot: bool,
}

impl Needs {
    /// Nothing beyond configuration and transport.
    pub const NONE: Needs =
        Needs { backup_registrar: false, backup_proxy: false, subscriptions: false, dial: false, reboot: false };
}

/// One conformance case.
#[derive(Clone)]
pub struct Case {
    /// `<area>.<configuration>.<behaviour>[.<fault>].<transport>` (BRIEF §5).
    pub id: String,
    /// The requirement IDs it checks.
    pub requirements: Vec<Requirement>,
    pub configuration: Configuration,
    pub transport: Transport,
    pub fault: Option<Fault>,
    pub needs: Needs,
    /// The timers the phone is provisioned with.
    pub timers: Timers,
    /// What the case changes in its lab ([`crate::lab::standard_lab`]: nothing).
    pub lab: fn(&mut LabSpec),
    pub run: CaseFn,
}

impl Case {
    /// Builds the id from its parts.
    pub fn id_of(
        area: &str,
        configuration: Configuration,
        behaviour: &str,
        fault: Option<Fault>,
        transport: Transport,
    ) -> String {
        let mut id = format!("{area}.{}.{behaviour}", configuration.id_segment());
        if let Some(fault) = fault {
            id.push('.');
            id.push_str(&fault.id_segment());
        }
        id.push('.');
        id.push_str(transport.name());
        id
    }
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case").field("id", &self.id).field("requirements", &self.requirements).finish()
    }
}

/// The verdicts of BRIEF §5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    Xfail,
    Xpass,
    Skip,
    Error,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Xfail => "XFAIL",
            Verdict::Xpass => "XPASS",
            Verdict::Skip => "SKIP",
            Verdict::Error => "ERROR",
        }
    }
}

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub id: String,
    pub verdict: Verdict,
    pub duration: Duration,
    /// Of `duration`, the time spent waiting on the phone (see [`crate::Lab::waited`]).
    pub waited: Duration,
    pub failures: Vec<Violation>,
    /// Why the case was skipped, errored, or expected to fail.
    pub reason: Option<String>,
    /// The normalised ladder up to the last matched expectation (snapshots compare this).
    pub ladder: String,
    /// The whole trace as a ladder, for reading a failure.
    pub full_ladder: String,
    /// The requirement IDs the case checks.
    pub requirements: Vec<Requirement>,
    /// What the case's lab recorded, for the reports that draw it; `None` when no lab ran (skip,
    /// an error before the lab) and once the reports were written.
    pub trace: Option<Arc<CaseTrace>>,
}

/// What a finished case's lab recorded: every event, the addresses they name, and which events
/// met the case's expectations.
#[derive(Debug)]
pub struct CaseTrace {
    pub topology: Topology,
    /// The wall-clock time the lab started: each event happened `at` after it (the pcap's times).
    pub started: std::time::SystemTime,
    pub events: Vec<TraceEvent>,
    /// Trace positions of the events that met an expectation.
    pub matched: Vec<usize>,
}

impl CaseTrace {
    /// What `lab` has recorded so far.
    pub fn of(lab: &Lab) -> CaseTrace {
        CaseTrace {
            topology: Topology::clone(&lab.topology),
            started: std::time::SystemTime::now().checked_sub(lab.trace().now()).unwrap_or(std::time::UNIX_EPOCH),
            events: lab.trace().snapshot(),
            matched: lab.matched().to_vec(),
        }
    }
}

/// The JSON Lines form of a result (BRIEF §5).
#[derive(serde::Serialize)]
pub struct JsonResult<'a> {
    pub id: &'a str,
    pub verdict: Verdict,
    pub duration_ms: u128,
    /// Time spent waiting on the phone's timers; the rest is the harness's own overhead.
    pub waited_ms: u128,
    pub failures: &'a [Violation],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
}

impl CaseResult {
    /// A result with no lab behind it: a skip, or an error before the lab ran.
    pub fn without_lab(case: &Case, verdict: Verdict, reason: String) -> CaseResult {
        CaseResult {
            id: case.id.clone(),
            verdict,
            duration: Duration::ZERO,
            waited: Duration::ZERO,
            failures: Vec::new(),
            reason: Some(reason),
            ladder: String::new(),
            full_ladder: String::new(),
            requirements: case.requirements.clone(),
            trace: None,
        }
    }

    pub fn json(&self) -> JsonResult<'_> {
        JsonResult {
            id: &self.id,
            verdict: self.verdict,
            duration_ms: self.duration.as_millis(),
            waited_ms: self.waited.as_millis(),
            failures: &self.failures,
            reason: self.reason.as_deref(),
        }
    }
}
