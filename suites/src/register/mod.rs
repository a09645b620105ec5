//! Registration without faults: the phone registers where and as the spec says, and keeps its binding alive.

use std::sync::Arc;

use harness::{
    Case, CaseError, Configuration, Deadline, Element, Lab, Needs, Register, Requirement, Timers, Transport,
};

use crate::steps::starts_at;

pub fn cases() -> Vec<Case> {
    vec![Case {
        id: "register.no-outbound.basic.udp".into(),
        requirements: vec![Requirement::R1_1, Requirement::Rfc3261_10_2_4, Requirement::C1],
        configuration: Configuration::NoOutbound,
        transport: Transport::Udp,
        fault: None,
        needs: Needs::default(),
        timers: Timers::fast(),
        run: Arc::new(|lab| Box::pin(basic(lab))),
    }]
}

/// R1.1: with no outbound proxy, REGISTER goes to the primary registrar first, with the primary
/// proxy's AOR; RFC 3261 §10.2.4: the phone refreshes the binding before it expires.
async fn basic(lab: &mut Lab) -> Result<(), CaseError> {
    let placement = crate::steps::Placement {
        registrar: Element::RegistrarA,
        aor_of: Element::ProxyA,
        proxy: Element::ProxyA,
        via: None,
    };
    // R1.1: the first registration is at the primary registrar, with the primary AOR; nothing
    // went to the backups first.
    let registered = starts_at(lab, placement, false, Requirement::R1_1).await?;
    let expiry = lab.timing().registration_expiry();
    // RFC 3261 §10.2.4: the refresh reaches registrar-a before the binding expires.
    lab.expect(
        Register::request_at(Element::RegistrarA)
            .aor_of(Element::ProxyA)
            .requirement(Requirement::Rfc3261_10_2_4)
            .within_from(registered[0].at, Deadline::of("the granted expiry", expiry)),
    )
    .await?;
    let jitter = lab.timing().jitter();
    lab.expect(
        Register::at(Element::RegistrarA)
            .aor_of(Element::ProxyA)
            .requirement(Requirement::Rfc3261_10_2_4)
            .within(Deadline::of("one authentication round trip", jitter)),
    )
    .await?;
    Ok(())
}
