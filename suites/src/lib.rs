//! The conformance cases, by area; each cites the requirement IDs (BRIEF §2) it checks, next to the check.

pub mod failover;
pub mod register;

use harness::Case;

/// Every case this build knows, in listing order.
pub fn catalog() -> Vec<Case> {
    let mut cases = Vec::new();
    cases.extend(register::cases());
    cases.extend(failover::cases());
    cases
}
