//! The sipharness engine: plays every server a phone talks to, breaks them on purpose, records every message, and judges the phone from the trace.

pub mod case;
pub mod cli;
pub mod coverage;
pub mod dns;
pub mod dut;
pub mod elements;
pub mod error;
pub mod expect;
pub mod faults;
pub mod lab;
pub mod ladder;
mod net;
pub mod phone_config;
pub mod provision;
pub mod report;
pub mod requirement;
pub mod runner;
pub mod serve;
pub mod steady;
pub mod timing;
pub mod tls;
pub mod topology;
pub mod trace;

pub use case::{Case, CaseFn, CaseFuture, CaseResult, Needs, Verdict};
pub use coverage::{Catalog, LegalVariant, PendingQuirk, QuirkCatch};
pub use elements::ElementCommand;
pub use error::{CaseError, CheckWindow, HarnessError, Violation};
pub use expect::{Expect, Invite, Register, Request, Subscribe};
pub use faults::{Event, Fault, FaultTarget};
pub use lab::{BlockChoice, Lab, LabSpec, standard_lab};
pub use provision::{Configuration, OutboundTimers, Timers};
pub use requirement::Requirement;
pub use steady::SteadyRules;
pub use timing::{Deadline, Timing};
pub use topology::{Element, Party, Topology};
pub use trace::{Trace, TraceEvent, Transport};
