//! Registration without faults: the phone registers where and as the spec says, and keeps its binding alive.

use std::sync::Arc;

use harness::{
    Case, CaseError, Configuration, Deadline, Element, Lab, Needs, Register, Requirement, Timers, Transport,
};

use crate::steps::starts_at;

pub fn cases() -> Vec<Case> {
    let mut cases = vec![Case {
        id: "register.no-outbound.basic.udp".into(),
        requirements: vec![Requirement::R1_1, Requirement::Rfc3261_10_2_4, Requirement::C1],
        configuration: Configuration::NoOutbound,
        transport: Transport::Udp,
        fault: None,
        needs: Needs::default(),
        timers: Timers::fast(),
        lab: harness::standard_lab,
        run: Arc::new(|lab| Box::pin(basic(lab))),
    }];
    for transport in crate::failover::TRANSPORTS {
        cases.push(Case {
            id: format!("register.no-outbound.registrar-restarts.restart.{transport}"),
            requirements: vec![Requirement::R1_1, Requirement::C1],
            configuration: Configuration::NoOutbound,
            transport,
            fault: None,
            needs: Needs { backup_registrar: true, ..Needs::default() },
            timers: Timers::fast(),
            lab: harness::standard_lab,
            run: Arc::new(|lab| Box::pin(registrar_restarts(lab))),
        });
    }
    cases
}

/// RFC 3261 §10.3: a registrar that lost its bindings gets the binding back at the phone's next
/// refresh; forgetting is no failure, so the phone stays at the primary (R1.1).
async fn registrar_restarts(lab: &mut Lab) -> Result<(), CaseError> {
    let placement = PRIMARY;
    starts_at(lab, placement, false, Requirement::R1_1).await?;
    crate::steps::settle(lab, placement, Requirement::R1_1).await?;
    lab.event(Element::RegistrarA, harness::Event::Restart);
    let timing = lab.timing().clone();
    let deadline = timing.next_register().plus("scheduling jitter", timing.jitter());
    lab.expect(placement.registration(Requirement::R1_1).within(deadline)).await?;
    crate::steps::stays_at(lab, placement, Requirement::R1_1).await
}

const PRIMARY: crate::steps::Placement = crate::steps::Placement {
    registrar: Element::RegistrarA,
    aor_of: Element::ProxyA,
    proxy: Element::ProxyA,
    via: None,
};

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
