//! Row 1 of the seed's table: no outbound proxy, backup proxy and backup registrar configured.

use harness::{Case, CaseFuture, Configuration, Element, Fault, HarnessError, Lab, Needs, Register, Transport};

pub fn cases() -> Vec<Case> {
    [Fault::Silent, Fault::Refuse, Fault::reject(503)]
        .into_iter()
        .map(|fault| Case {
            id: Case::id_of("failover", Configuration::NoOutbound, "primary-registrar-fails", Some(fault), Transport::Udp),
            requirements: vec!["R1.1", "R1.2"],
            configuration: Configuration::NoOutbound,
            transport: Transport::Udp,
            fault: Some(fault),
            needs: Needs { backup_registrar: true, ..Needs::default() },
            run: primary_registrar_fails,
        })
        .collect()
}

/// R1.2: the primary registrar fails; the phone registers at the backup registrar, keeping the primary AOR.
fn primary_registrar_fails(lab: &mut Lab, fault: Option<Fault>) -> CaseFuture<'_> {
    Box::pin(async move {
        let fault = fault.ok_or_else(|| HarnessError::Other("this case needs a fault".into()))?;
        let timing = lab.timing().clone();
        // R1.1: registered at the primary registrar first, with the primary AOR.
        lab.expect(
            Register::at(Element::RegistrarA)
                .aor_of(Element::ProxyA)
                .requirement("R1.1")
                .within(timing.startup() + timing.transaction_timeout(), "phone start-up, one authentication round trip"),
        )
        .await?;
        lab.fail(Element::RegistrarA, fault);
        // R1.2: registered at the backup registrar, still with the primary proxy's AOR.
        let limit = timing.registrar_failover(fault) + timing.transaction_timeout();
        lab.expect(
            Register::at(Element::RegistrarB).aor_of(Element::ProxyA).requirement("R1.2").within(
                limit,
                format!(
                    "next REGISTER within the {} s registration period, {fault} detected in {:.1} s, one authentication round trip, jitter",
                    timing.registration_expiry().as_secs_f64(),
                    timing.detect(fault).as_secs_f64()
                ),
            ),
        )
        .await?;
        Ok(())
    })
}
