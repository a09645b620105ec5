//! Registration without faults: the phone registers where and as the spec says, and keeps its binding alive.

use harness::{Case, CaseFuture, Configuration, Element, Fault, Lab, Needs, Register, Transport};

pub fn cases() -> Vec<Case> {
    vec![Case {
        id: Case::id_of("register", Configuration::NoOutbound, "basic", None, Transport::Udp),
        requirements: vec!["R1.1"],
        configuration: Configuration::NoOutbound,
        transport: Transport::Udp,
        fault: None,
        needs: Needs::default(),
        run: basic,
    }]
}

/// R1.1: with no outbound proxy, REGISTER goes to the primary registrar first, with the primary
/// proxy's AOR; the phone refreshes the binding before it expires (RFC 3261 §10.2.4).
fn basic(lab: &mut Lab, _fault: Option<Fault>) -> CaseFuture<'_> {
    Box::pin(async move {
        let timing = lab.timing().clone();
        // R1.1: the first registration is at the primary registrar, with the primary AOR.
        let registered = lab
            .expect(Register::at(Element::RegistrarA).aor_of(Element::ProxyA).requirement("R1.1").within(
                timing.startup() + timing.transaction_timeout(),
                "phone start-up, one authentication round trip",
            ))
            .await?;
        // R1.1: nothing went to the backup registrar first.
        lab.expect_none_so_far(
            &Register::request_at(Element::RegistrarB).requirement("R1.1"),
            "no REGISTER at registrar-b while registrar-a works",
        )?;
        // R1.1 (RFC 3261 §10.2.4): the refresh reaches registrar-a before the binding expires.
        let expiry = registered.at + timing.registration_expiry();
        lab.expect(Register::request_at(Element::RegistrarA).aor_of(Element::ProxyA).requirement("R1.1").before(
            expiry,
            format!("the binding granted for {} s expires then", timing.registration_expiry().as_secs_f64()),
        ))
        .await?;
        lab.expect(
            Register::at(Element::RegistrarA)
                .aor_of(Element::ProxyA)
                .requirement("R1.1")
                .within(timing.transaction_timeout() + timing.jitter(), "one authentication round trip"),
        )
        .await?;
        Ok(())
    })
}
