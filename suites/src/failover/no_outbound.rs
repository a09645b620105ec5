//! Row 1 of the seed's table: no outbound proxy, backup proxy and backup registrar configured; the registrar and the proxy fail independently.

use harness::{Case, CaseFuture, Configuration, Element, Fault, HarnessError, Lab, Needs, Register, Subscribe};

use super::matrix;
use crate::steps::{PACKAGES, Placement, new_dialogs, starts_at};

const PRIMARY: Placement =
    Placement { registrar: Element::RegistrarA, aor_of: Element::ProxyA, proxy: Element::ProxyA, via: None };

pub fn cases() -> Vec<Case> {
    let mut cases = matrix(
        Configuration::NoOutbound,
        "primary-registrar-fails",
        &["R1.1", "R1.2", "R1.4"],
        Needs { backup_registrar: true, ..Needs::default() },
        primary_registrar_fails,
    );
    cases.extend(matrix(
        Configuration::NoOutbound,
        "primary-proxy-fails",
        &["R1.1", "R1.3", "R1.5"],
        Needs { backup_proxy: true, subscriptions: true, ..Needs::default() },
        primary_proxy_fails,
    ));
    cases
}

fn the_fault(fault: Option<Fault>) -> Result<Fault, HarnessError> {
    fault.ok_or_else(|| HarnessError::Other("this case needs a fault".into()))
}

/// R1.2: the primary registrar fails; the phone registers at the backup registrar, keeping the
/// primary AOR. R1.4: the primary registrar returns; the phone registers there with the active
/// AOR and removes its binding at the backup.
fn primary_registrar_fails(lab: &mut Lab, fault: Option<Fault>) -> CaseFuture<'_> {
    Box::pin(async move {
        let fault = the_fault(fault)?;
        let timing = lab.timing().clone();
        // R1.1: registered at the primary registrar first, with the primary AOR.
        starts_at(lab, PRIMARY, false, "R1.1").await?;
        lab.fail(Element::RegistrarA, fault);
        // R1.2: registered at the backup registrar, still with the primary proxy's AOR.
        let limit = timing.registrar_failover(fault) + timing.transaction_timeout();
        lab.expect(Register::at(Element::RegistrarB).aor_of(Element::ProxyA).requirement("R1.2").within(
            limit,
            format!(
                "next REGISTER within the {} s registration period, {fault} detected in {:.1} s, one authentication round trip, jitter",
                timing.registration_expiry().as_secs_f64(),
                timing.detect(fault).as_secs_f64()
            ),
        ))
        .await?;
        lab.restore(Element::RegistrarA);
        // R1.4: back at the primary registrar with the active (primary) AOR; the backup binding removed.
        let why = format!("probed every {} s, one transaction, jitter", timing.timers.failback_probe.as_secs_f64());
        lab.expect_all(vec![
            Register::at(Element::RegistrarA)
                .aor_of(Element::ProxyA)
                .requirement("R1.4")
                .within(timing.failback(), &why),
            Register::removed_at(Element::RegistrarB).requirement("R1.4").within(timing.failback(), &why),
        ])
        .await?;
        Ok(())
    })
}

/// R1.3: the primary proxy fails; the phone registers the backup proxy's AOR at the active
/// registrar and moves every subscription to the backup proxy. R1.5: the primary proxy returns;
/// the phone registers the primary AOR and moves every subscription back.
fn primary_proxy_fails(lab: &mut Lab, fault: Option<Fault>) -> CaseFuture<'_> {
    Box::pin(async move {
        let fault = the_fault(fault)?;
        let timing = lab.timing().clone();
        // R1.1: the registration and both subscriptions start at the primaries.
        let before = starts_at(lab, PRIMARY, true, "R1.1").await?;
        lab.fail(Element::ProxyA, fault);
        // R1.3: the backup proxy's AOR at the (still primary) registrar, subscriptions at the backup proxy.
        let backup =
            Placement { registrar: Element::RegistrarA, aor_of: Element::ProxyB, proxy: Element::ProxyB, via: None };
        let why = format!(
            "next subscription refresh within {} s, {fault} detected in {:.1} s, one transaction, jitter",
            timing.timers.subscription_period.as_secs_f64(),
            timing.detect(fault).as_secs_f64()
        );
        let moved = lab.expect_all(backup.everything(true, "R1.3", timing.proxy_failover(fault), &why)).await?;
        new_dialogs(&before, &moved, "R1.3")?;
        lab.restore(Element::ProxyA);
        // R1.5: the primary AOR again, subscriptions back at the primary proxy, the backup's ended.
        let why = format!("probed every {} s, one transaction, jitter", timing.timers.failback_probe.as_secs_f64());
        let mut back = PRIMARY.everything(true, "R1.5", timing.failback(), &why);
        for package in PACKAGES {
            back.push(
                Subscribe::ended_at(Element::ProxyB, package).requirement("R1.5").within(timing.failback(), &why),
            );
        }
        let returned = lab.expect_all(back).await?;
        new_dialogs(&moved, &returned, "R1.5")?;
        Ok(())
    })
}
