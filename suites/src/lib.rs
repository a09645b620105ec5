//! The conformance cases, by area; each cites the requirement IDs (BRIEF §2) it checks, next to the check.

pub mod call;
pub mod dns;
pub mod failover;
pub mod outbound;
pub mod register;
pub mod reset;
pub mod steps;
pub mod subscribe;

use harness::Requirement::{self, *};
use harness::{Case, Catalog, LegalVariant, PendingQuirk, QuirkCatch};

const fn catch(quirk: &'static str, cases: &'static str, requirement: Requirement) -> QuirkCatch {
    QuirkCatch { quirk, cases, requirement }
}

/// The quirk ratchet (BRIEF §6): refphone quirks and the cases (ids or globs) each must make
/// fail, with the requirement the failure must cite. Every case is caught by at least one row,
/// every quirk is named here or in [`PENDING_QUIRKS`]; a test runs every pair.
pub const QUIRK_CATCHES: &[QuirkCatch] = &[
    catch("late-refresh", "register.no-outbound.basic.*", Rfc3261_10_2_4),
    // The row quirks: a phone without the row's move fails every case of the row.
    catch("no-backup-registrar", "failover.no-outbound.primary-registrar-fails.*", R1_2),
    catch("no-backup-proxy", "failover.no-outbound.primary-proxy-fails.*", R1_3),
    catch("no-outbound-proxy-failover", "failover.full-backup.primary-outbound-fails.*", R2_2),
    catch("no-outbound-proxy-failover", "failover.full-backup.*-fails-behind-outbound.*", R2_2),
    catch("no-outbound-proxy-failover", "failover.outbound-only.primary-outbound-fails.*", R3_2),
    // Row 1's two dimensions walked: each step's move, in every order.
    catch("no-backup-registrar", "failover.no-outbound.*-then-*.*", R1_2),
    catch("no-backup-registrar", "failover.no-outbound.registrar-fails-twice.*", R1_2),
    catch("no-backup-proxy", "failover.no-outbound.proxy-fails-twice.*", R1_3),
    catch("keep-aor", "failover.no-outbound.registrar-then-proxy-fail.silent.udp", R1_3),
    catch("probe-storm", "failover.no-outbound.primary-and-backup-registrar-fail.reject-503.*", R1_2),
    catch("retry-storm", "failover.no-outbound.primary-and-backup-registrar-fail.reject-503.*", R1_2),
    catch("no-backup-registrar", "failover.no-outbound.primary-and-backup-registrar-fail.silent.*", R1_2),
    catch("no-failback", "failover.no-outbound.primary-and-backup-registrar-fail.silent.udp", R1_4),
    catch("no-failback", "failover.no-outbound.proxy-then-registrar-fail.reject-503.tcp", R1_5),
    // Primary first, and a slow primary is no failed primary.
    catch("backup-first", "register.no-outbound.basic.udp", R1_1),
    catch("backup-first", "failover.full-backup.primary-outbound-fails.silent.udp", R2_1),
    catch("backup-first", "failover.outbound-only.primary-outbound-fails.silent.tcp", R3_1),
    catch("eager-failover", "failover.no-outbound.*-slow.delay.*", R1_1),
    catch("eager-failover", "failover.full-backup.*-slow*.delay.*", R2_1),
    catch("eager-failover", "failover.outbound-only.*-slow.delay.*", R3_1),
    // Steady state while the primary is down: stay, leave it alone but for sparse probes, and
    // not before its Retry-After.
    catch("flap", "failover.no-outbound.primary-registrar-fails.reject-503.udp", R1_2),
    catch("flap", "failover.no-outbound.primary-registrar-fails.silent.tcp", R1_2),
    catch("probe-storm", "failover.no-outbound.primary-registrar-fails.reject-408.udp", R1_2),
    catch("probe-storm", "failover.no-outbound.primary-registrar-fails.reject-503.tcp", R1_2),
    catch("ignore-retry-after", "failover.*.reject-503-retry-after.udp", Rfc3261_21_5_4),
    catch("probe-outbound-only", "failover.full-backup.registrar-fails-behind-outbound.silent.udp", R2_2),
    catch("probe-outbound-only", "failover.full-backup.registrar-fails-behind-outbound.reject-503.tcp", R2_2),
    catch("probe-outbound-only", "failover.full-backup.proxy-fails-behind-outbound.reject-408.udp", R2_2),
    // The moves back and what they release.
    catch("no-failback", "failover.no-outbound.primary-registrar-fails.silent.udp", R1_4),
    catch("no-failback", "failover.no-outbound.primary-proxy-fails.reject-408.tcp", R1_5),
    catch("no-failback", "failover.full-backup.primary-outbound-fails.refuse.udp", R2_3),
    catch("no-failback", "failover.outbound-only.primary-outbound-fails.refuse.udp", R3_3),
    catch("no-unregister-backup", "failover.no-outbound.primary-registrar-fails.refuse.tcp", R1_4),
    catch("register-both", "failover.no-outbound.primary-registrar-fails.silent.udp", R1_4),
    catch("register-both", "failover.no-outbound.primary-registrar-fails.reject-503.tls", R1_4),
    catch("no-unsubscribe-backup", "failover.no-outbound.primary-proxy-fails.reject-503.udp", R1_5),
    catch("no-unsubscribe-backup", "failover.full-backup.primary-outbound-fails.silent.tls", R2_3),
    catch("stale-backup-aor", "failover.no-outbound.primary-proxy-fails.refuse.udp", R1_5),
    catch("unregister-bypasses-outbound", "failover.full-backup.primary-outbound-fails.silent.udp", R2_3),
    catch("unregister-bypasses-outbound", "failover.full-backup.registrar-fails-behind-outbound.reject-503.tls", R2_3),
    // The AOR and the subscriptions move with the proxy, as new dialogs.
    catch("keep-aor", "failover.no-outbound.primary-proxy-fails.silent.udp", R1_3),
    catch("keep-aor", "failover.full-backup.primary-outbound-fails.refuse.tcp", R2_2),
    catch("subscriptions-stay", "failover.no-outbound.primary-proxy-fails.refuse.udp", R1_3),
    catch("reuse-subscription-dialog", "failover.no-outbound.primary-proxy-fails.refuse.tcp", R1_3),
    catch("same-from-tag", "failover.no-outbound.primary-proxy-fails.silent.tcp", R1_3),
    catch("same-from-tag", "failover.outbound-only.primary-outbound-fails.reject-503.udp", R3_2),
    // Calls go where the proxy is; a callee's answer moves nothing.
    catch("call-to-failed-proxy", "call.no-outbound.primary-proxy-fails.*", R1_3),
    catch("call-to-failed-proxy", "call.full-backup.*", R2_2),
    catch("no-backup-registrar", "call.no-outbound.primary-registrar-fails.*", R1_2),
    catch("no-outbound-proxy-failover", "call.outbound-only.*", R3_2),
    catch("failover-on-decline", "call.no-outbound.callee-*", R1_1),
    catch("failover-on-430", "failover.full-backup.primary-outbound-answers-430.*", R2_1),
    // A proxy that forgot the dialog: a new subscription there (RFC 6665 §4.1.2.4); a registrar
    // that forgot the binding gets it at the next refresh, and neither is a failure.
    // (Over TCP and TLS the restart also resets the phone's connection, and a phone may rightly
    // subscribe anew on its new connection before any 481: the 481 is certain only over UDP.)
    catch("ignore-481", "subscribe.no-outbound.proxy-restarts.*.udp", Rfc6665_4_1_2_4),
    catch("no-resubscribe-on-481", "subscribe.no-outbound.proxy-restarts.*.udp", Rfc6665_4_1_2_4),
    catch("backup-first", "subscribe.no-outbound.proxy-restarts.*.t*", R1_1),
    catch("backup-first", "register.no-outbound.registrar-restarts.*", R1_1),
    // A reset connection is no failed server.
    catch("failover-on-reset", "failover.no-outbound.*-resets.reset.*", R1_1),
    catch("failover-on-reset", "failover.full-backup.*-resets.reset.*", R2_1),
    catch("failover-on-reset", "failover.outbound-only.*-resets.reset.*", R3_1),
    // The cfg's transport, and ICMP read as the profile declares.
    catch("udp-only", "failover.no-outbound.primary-registrar-fails.silent.tcp", C1),
    catch("ignore-icmp", "failover.no-outbound.primary-registrar-fails.refuse.udp", R1_2),
    // Rows 2 and 3 with RFC 5626 flows.
    catch("no-outbound-proxy-failover", "failover.full-backup-rfc5626.*", R2_2),
    catch("no-outbound-proxy-failover", "failover.outbound-only-rfc5626.*", R3_2),
    // F2-F4: the instance, the keep-alives, the flows re-established.
    catch("new-instance-each-boot", "outbound.*.instance-kept-across-reboot.*", F2),
    catch("no-keepalive", "outbound.*.keepalives.*", F3),
    catch("keepalive-too-slow", "outbound.*.keepalives.*", F3),
    catch("keepalive-without-require", "outbound.*.no-require-no-keepalives.*", F3),
    catch("no-keepalive", "outbound.*.flow-fails-between-requests.*", F3),
    catch("no-flow-recovery", "outbound.*.flow-reestablished.*", F4),
    catch("backoff-too-eager", "outbound.*.flow-reestablished.*", F4),
    // F5: SRV priority, and answers used past their TTL.
    catch("ignore-srv-priority", "dns.*.srv-priority.*", F5),
    catch("ignore-srv-priority", "dns.*.next-srv-target.*", F5),
    catch("ignore-dns-ttl", "dns.*.record-changes.*", F5),
    catch("ignore-dns-ttl", "dns.*.dns-fails.*", F5),
];

/// Quirks no case catches yet, each with the reason; a test fails when one of these is caught
/// already (move it to [`QUIRK_CATCHES`]) or does not exist.
pub const PENDING_QUIRKS: &[PendingQuirk] = &[];

/// Quirks within the spec: every case they name must pass with them (BRIEF §2: re-querying the DNS
/// early is allowed).
pub const LEGAL_VARIANTS: &[LegalVariant] = &[LegalVariant {
    quirk: "requery-dns",
    cases: "dns.*",
    allowed_by: "F5 allows re-querying before the TTL runs out; a case must not fail a legal phone",
}];

/// Every case this build knows, in listing order.
pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    cases.extend(register::cases());
    cases.extend(subscribe::cases());
    cases.extend(failover::cases());
    cases.extend(reset::cases());
    cases.extend(call::cases());
    cases.extend(outbound::cases());
    cases.extend(dns::cases());
    cases
}

/// The cases and the ratchet, for the CLI and the tests.
pub fn catalog() -> Catalog {
    Catalog {
        cases: cases(),
        catches: QUIRK_CATCHES.to_vec(),
        pending: PENDING_QUIRKS.to_vec(),
        legal: LEGAL_VARIANTS.to_vec(),
    }
}
