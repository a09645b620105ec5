//! Row 2 of the seed's table: backup proxy, backup registrar and backup outbound proxy; any connection failure moves everything to the backups.

use harness::{Case, CaseFuture, Configuration, Element, Fault, HarnessError, Lab, Needs, Register, Subscribe};

use super::matrix;
use crate::steps::{PACKAGES, Placement, new_dialogs, starts_at};

const PRIMARY: Placement = Placement {
    registrar: Element::RegistrarA,
    aor_of: Element::ProxyA,
    proxy: Element::ProxyA,
    via: Some(Element::OutboundA),
};
const BACKUP: Placement = Placement {
    registrar: Element::RegistrarB,
    aor_of: Element::ProxyB,
    proxy: Element::ProxyB,
    via: Some(Element::OutboundB),
};

pub fn cases() -> Vec<Case> {
    matrix(
        Configuration::FullBackup,
        "primary-outbound-fails",
        &["R2.1", "R2.2", "R2.3"],
        Needs { backup_registrar: true, backup_proxy: true, subscriptions: true },
        primary_outbound_fails,
    )
}

/// R2.2: the connection to the primary outbound proxy fails; the phone registers the backup AOR
/// at the backup registrar and moves every subscription to the backup proxy, through the backup
/// outbound proxy. R2.3: when the primary works again, everything moves back.
fn primary_outbound_fails(lab: &mut Lab, fault: Option<Fault>) -> CaseFuture<'_> {
    Box::pin(async move {
        let fault = fault.ok_or_else(|| HarnessError::Other("this case needs a fault".into()))?;
        let timing = lab.timing().clone();
        // R2.1: everything tries the primaries first, through the primary outbound proxy.
        let before = starts_at(lab, PRIMARY, true, "R2.1").await?;
        lab.fail(Element::OutboundA, fault);
        let why = format!(
            "next request within one refresh period, {fault} detected in {:.1} s, jitter",
            timing.detect(fault).as_secs_f64()
        );
        // R2.2: backup AOR at the backup registrar, subscriptions at the backup proxy, via outbound-b.
        let moved = lab.expect_all(BACKUP.everything(true, "R2.2", timing.outbound_failover(fault), &why)).await?;
        new_dialogs(&before, &moved, "R2.2")?;
        lab.restore(Element::OutboundA);
        // R2.3: registration and subscriptions back at the primaries, via outbound-a; the binding
        // and the subscriptions held at the backups released (the vendor's 3.3.1 failback).
        let why = format!("probed every {} s, one transaction, jitter", timing.timers.failback_probe.as_secs_f64());
        let mut back = PRIMARY.everything(true, "R2.3", timing.failback(), &why);
        back.push(
            Register::removed_at(Element::RegistrarB).any_hop().requirement("R2.3").within(timing.failback(), &why),
        );
        for package in PACKAGES {
            back.push(
                Subscribe::ended_at(Element::ProxyB, package)
                    .any_hop()
                    .requirement("R2.3")
                    .within(timing.failback(), &why),
            );
        }
        let returned = lab.expect_all(back).await?;
        new_dialogs(&moved, &returned, "R2.3")?;
        Ok(())
    })
}
