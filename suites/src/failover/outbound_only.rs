//! Row 3 of the seed's table: only a backup outbound proxy; registration and subscriptions go through it while the primary is down.

use harness::{Case, CaseFuture, Configuration, Element, Fault, HarnessError, Lab, Needs};

use super::matrix;
use crate::steps::{Placement, starts_at};

const THROUGH_PRIMARY: Placement = Placement {
    registrar: Element::RegistrarA,
    aor_of: Element::ProxyA,
    proxy: Element::ProxyA,
    via: Some(Element::OutboundA),
};
const THROUGH_BACKUP: Placement = Placement { via: Some(Element::OutboundB), ..THROUGH_PRIMARY };

pub fn cases() -> Vec<Case> {
    matrix(
        Configuration::OutboundOnly,
        "primary-outbound-fails",
        &["R3.1", "R3.2", "R3.3"],
        Needs { subscriptions: true, ..Needs::default() },
        primary_outbound_fails,
    )
}

/// R3.2: the primary outbound proxy fails; registration and subscriptions go through the backup
/// outbound proxy (same registrar, proxy and AOR). R3.3: it returns; they go through it again.
fn primary_outbound_fails(lab: &mut Lab, fault: Option<Fault>) -> CaseFuture<'_> {
    Box::pin(async move {
        let fault = fault.ok_or_else(|| HarnessError::Other("this case needs a fault".into()))?;
        let timing = lab.timing().clone();
        // R3.1: everything through the primary outbound proxy first.
        starts_at(lab, THROUGH_PRIMARY, true, "R3.1").await?;
        lab.fail(Element::OutboundA, fault);
        let why = format!(
            "next request within one refresh period, {fault} detected in {:.1} s, jitter",
            timing.detect(fault).as_secs_f64()
        );
        // R3.2: the same registration and subscriptions, through outbound-b.
        lab.expect_all(THROUGH_BACKUP.everything(true, "R3.2", timing.outbound_failover(fault), &why)).await?;
        lab.restore(Element::OutboundA);
        // R3.3: through outbound-a again.
        let why = format!("probed every {} s, one transaction, jitter", timing.timers.failback_probe.as_secs_f64());
        lab.expect_all(THROUGH_PRIMARY.everything(true, "R3.3", timing.failback(), &why)).await?;
        Ok(())
    })
}
