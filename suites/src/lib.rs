//! The conformance cases, by area; each cites the requirement IDs (BRIEF §2) it checks, next to the check.

pub mod failover;
pub mod register;

use harness::Case;

/// The quirk ratchet (BRIEF §6): for every case, a refphone quirk that must make it fail, and
/// the requirement the failure must cite. A test runs each row.
pub const QUIRK_CATCHES: &[(&str, &str, &str)] = &[
    ("late-refresh", "register.no-outbound.basic.udp", "R1.1"),
    ("no-backup-registrar", "failover.no-outbound.primary-registrar-fails.silent.udp", "R1.2"),
    ("no-backup-registrar", "failover.no-outbound.primary-registrar-fails.refuse.udp", "R1.2"),
    ("no-backup-registrar", "failover.no-outbound.primary-registrar-fails.reject-503.udp", "R1.2"),
];

/// Every case this build knows, in listing order.
pub fn catalog() -> Vec<Case> {
    let mut cases = Vec::new();
    cases.extend(register::cases());
    cases.extend(failover::cases());
    cases
}
