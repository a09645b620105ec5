//! The failover state machine itself (`core/routing.rs`), every transition, without the core around it.

use crate::core::routing::{Dimension, Failover, Placement, Role, Target, Verdict};
use crate::core::*;
use crate::quirks::{Quirk, Quirks};

use super::simulated::*;

fn failover(cfg: &str, quirks: Quirks) -> Failover {
    Failover::new(&super::settings(cfg, quirks))
}

#[test]
fn the_scheme_follows_the_configured_servers() {
    assert_eq!(failover(ROW_1, Quirks::none()).scheme(), FailoverScheme::Independent);
    assert_eq!(failover(&row_2(), Quirks::none()).scheme(), FailoverScheme::AllTogether);
    assert_eq!(failover(&row_3(), Quirks::none()).scheme(), FailoverScheme::OutboundOnly);
    let single_outbound = format!("{ROW_1}sip outbound proxy: outbound-a.lab.test\n");
    assert_eq!(failover(&single_outbound, Quirks::none()).scheme(), FailoverScheme::Independent);
}

#[test]
fn row_1_transitions_touch_only_their_own_dimension() {
    let now = std::time::Instant::now();
    let mut machine = failover(ROW_1, Quirks::none());
    let primary = Placement::PRIMARY;
    assert_eq!(machine.active(), primary);
    // Registrar: Primary -> Backup.
    assert_eq!(
        machine.on_server_down(now, Target::Registrar, primary, false),
        Verdict::FailedOver(Dimension::Registrar)
    );
    let registrar_down = Placement { registrar: Role::Backup, ..primary };
    assert_eq!(machine.active(), registrar_down);
    // A failure of a request sent before the move changes nothing more.
    assert_eq!(machine.on_server_down(now, Target::Registrar, primary, false), Verdict::AlreadyMoved);
    // Proxy: Primary -> Backup, registrar untouched.
    assert_eq!(
        machine.on_server_down(now, Target::Proxy, registrar_down, false),
        Verdict::FailedOver(Dimension::Proxy)
    );
    let both_down = Placement { registrar: Role::Backup, proxy: Role::Backup, outbound: Role::Primary };
    assert_eq!(machine.active(), both_down);
    assert_eq!(machine.aor_host(both_down).unwrap().to_string(), "proxy-b.lab.test");
    // Registrar returns: only the registrar moves back.
    assert!(machine.on_primary_back(Dimension::Registrar));
    assert_eq!(machine.active(), Placement { proxy: Role::Backup, ..primary });
    assert!(!machine.on_primary_back(Dimension::Registrar), "already back");
    // The backup proxy fails too: the primary proxy is first again.
    let proxy_down = machine.active();
    assert_eq!(
        machine.on_server_down(now, Target::Proxy, proxy_down, false),
        Verdict::BackupFailedToo(Dimension::Proxy)
    );
    assert_eq!(machine.active(), primary);
}

#[test]
fn without_a_usable_backup_a_failure_means_retry_the_same_server() {
    let now = std::time::Instant::now();
    let no_backups: String = ROW_1.lines().filter(|l| !l.contains("backup")).map(|l| format!("{l}\n")).collect();
    let mut machine = failover(&no_backups, Quirks::none());
    assert_eq!(
        machine.on_server_down(now, Target::Registrar, Placement::PRIMARY, false),
        Verdict::NoBackup(Dimension::Registrar)
    );
    assert_eq!(
        machine.on_server_down(now, Target::Proxy, Placement::PRIMARY, false),
        Verdict::NoBackup(Dimension::Proxy)
    );
    let mut machine = failover(ROW_1, Quirks::none().with(Quirk::NoBackupRegistrar));
    assert_eq!(
        machine.on_server_down(now, Target::Registrar, Placement::PRIMARY, false),
        Verdict::NoBackup(Dimension::Registrar)
    );
    let mut machine = failover(ROW_1, Quirks::none().with(Quirk::NoBackupProxy));
    assert_eq!(
        machine.on_server_down(now, Target::Proxy, Placement::PRIMARY, false),
        Verdict::NoBackup(Dimension::Proxy)
    );
    assert_eq!(machine.active(), Placement::PRIMARY);
}

#[test]
fn row_2_any_failure_flips_everything_and_a_return_flips_it_back() {
    let now = std::time::Instant::now();
    let mut machine = failover(&row_2(), Quirks::none());
    let all_backup = Placement { registrar: Role::Backup, proxy: Role::Backup, outbound: Role::Backup };
    for target in [Target::Registrar, Target::Proxy] {
        let mut machine = machine.clone();
        assert_eq!(
            machine.on_server_down(now, target, Placement::PRIMARY, false),
            Verdict::FailedOver(Dimension::Everything)
        );
        assert_eq!(machine.active(), all_backup);
    }
    // The phone's hop to the outbound proxy failed: the outbound proxy itself is probed.
    let mut hop_failed = machine.clone();
    hop_failed.on_server_down(now, Target::Proxy, Placement::PRIMARY, true);
    let (target, hop) = hop_failed.probe_target(Dimension::Everything).unwrap();
    assert_eq!(target.host.to_string(), "outbound-a.lab.test", "row 2 probes the primary outbound proxy");
    assert_eq!(hop.route, None);
    // The proxy failed behind it: the proxy is probed through the primary outbound proxy.
    machine.on_server_down(now, Target::Proxy, Placement::PRIMARY, false);
    let (target, hop) = machine.probe_target(Dimension::Everything).unwrap();
    assert_eq!(target.host.to_string(), "proxy-a.lab.test");
    assert_eq!(
        (hop.next_hop.host.to_string(), hop.route.map(|r| r.to_string())),
        ("outbound-a.lab.test".to_owned(), Some("sip:outbound-a.lab.test:5060;lr".to_owned()))
    );
    assert!(machine.on_primary_back(Dimension::Everything));
    assert_eq!(machine.active(), Placement::PRIMARY);
    // The backup set failing too: primary first again.
    machine.on_server_down(now, Target::Registrar, Placement::PRIMARY, false);
    assert_eq!(
        machine.on_server_down(now, Target::Registrar, all_backup, false),
        Verdict::BackupFailedToo(Dimension::Everything)
    );
    assert_eq!(machine.active(), Placement::PRIMARY);
}

#[test]
fn row_2_without_outbound_failover_flips_registrar_and_proxy_only() {
    let now = std::time::Instant::now();
    let mut machine = failover(&row_2(), Quirks::none().with(Quirk::NoOutboundProxyFailover));
    assert_eq!(
        machine.on_server_down(now, Target::Proxy, Placement::PRIMARY, false),
        Verdict::FailedOver(Dimension::Everything)
    );
    assert_eq!(machine.active(), Placement { registrar: Role::Backup, proxy: Role::Backup, outbound: Role::Primary });
}

#[test]
fn row_3_only_the_outbound_proxy_moves() {
    let now = std::time::Instant::now();
    let mut machine = failover(&row_3(), Quirks::none());
    assert_eq!(
        machine.on_server_down(now, Target::Registrar, Placement::PRIMARY, false),
        Verdict::FailedOver(Dimension::OutboundProxy)
    );
    let moved = Placement { outbound: Role::Backup, ..Placement::PRIMARY };
    assert_eq!(machine.active(), moved);
    assert_eq!(machine.aor_host(moved).unwrap().to_string(), "proxy-a.lab.test");
    assert_eq!(machine.registrar(moved).unwrap().host.to_string(), "registrar-a.lab.test");
    assert_eq!(
        machine.hop(moved, machine.registrar(moved).unwrap()).route.unwrap().to_string(),
        "sip:outbound-b.lab.test:5060;lr"
    );
    assert!(machine.on_primary_back(Dimension::OutboundProxy));
    assert_eq!(machine.active(), Placement::PRIMARY);
    let mut stuck = failover(&row_3(), Quirks::none().with(Quirk::NoOutboundProxyFailover));
    assert_eq!(
        stuck.on_server_down(now, Target::Proxy, Placement::PRIMARY, false),
        Verdict::NoBackup(Dimension::OutboundProxy)
    );
}
