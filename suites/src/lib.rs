//! The conformance cases, by area; each cites the requirement IDs (BRIEF §2) it checks, next to the check.

pub mod failover;
pub mod register;
pub mod steps;

use harness::Case;

/// The quirk ratchet (BRIEF §6): refphone quirks and the cases (ids or globs) each must make
/// fail, with the requirement the failure must cite. Every case is caught by at least one row;
/// a test runs every pair.
pub const QUIRK_CATCHES: &[(&str, &str, &str)] = &[
    ("late-refresh", "register.no-outbound.basic.*", "R1.1"),
    ("no-backup-registrar", "failover.no-outbound.primary-registrar-fails.*", "R1.2"),
    ("no-backup-proxy", "failover.no-outbound.primary-proxy-fails.*", "R1.3"),
    ("no-outbound-proxy-failover", "failover.full-backup.primary-outbound-fails.*", "R2.2"),
    ("no-outbound-proxy-failover", "failover.outbound-only.primary-outbound-fails.*", "R3.2"),
    ("backup-first", "failover.no-outbound.primary-registrar-fails.reject-503.udp", "R1.1"),
    ("no-failback", "failover.no-outbound.primary-registrar-fails.silent.udp", "R1.4"),
    ("no-unregister-backup", "failover.no-outbound.primary-registrar-fails.refuse.tcp", "R1.4"),
    ("udp-only", "failover.no-outbound.primary-registrar-fails.silent.tcp", "R1.1"),
    ("keep-aor", "failover.no-outbound.primary-proxy-fails.silent.udp", "R1.3"),
    ("subscriptions-stay", "failover.no-outbound.primary-proxy-fails.refuse.udp", "R1.3"),
    ("no-unsubscribe-backup", "failover.no-outbound.primary-proxy-fails.reject-503.udp", "R1.5"),
    ("reuse-subscription-dialog", "failover.no-outbound.primary-proxy-fails.refuse.tcp", "R1.3"),
    ("keep-aor", "failover.full-backup.primary-outbound-fails.refuse.tcp", "R2.2"),
    ("no-failback", "failover.full-backup.primary-outbound-fails.refuse.udp", "R2.3"),
    ("no-failback", "failover.outbound-only.primary-outbound-fails.refuse.udp", "R3.3"),
];

/// The (quirk, case id, requirement) pairs `QUIRK_CATCHES` names, globs expanded over the catalog.
pub fn quirk_pairs() -> Vec<(&'static str, String, &'static str)> {
    let catalog = catalog();
    let mut pairs = Vec::new();
    for (quirk, pattern, requirement) in QUIRK_CATCHES {
        for case in catalog.iter().filter(|c| harness::runner::filter_matches(pattern, &c.id)) {
            pairs.push((*quirk, case.id.clone(), *requirement));
        }
    }
    pairs
}

/// Every case this build knows, in listing order.
pub fn catalog() -> Vec<Case> {
    let mut cases = Vec::new();
    cases.extend(register::cases());
    cases.extend(failover::cases());
    cases
}
