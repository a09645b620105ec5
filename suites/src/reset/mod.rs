//! Connections reset under the phone: an element's TCP/TLS flows are reset (RST) while it keeps listening, so the phone reconnects to the same element and moves nothing.

use std::sync::Arc;

use harness::{Case, CaseError, Configuration, Element, Event, Lab, Needs, Requirement, Timers, Transport};

use crate::steps::{Placement, settle, starts_at, stays_at};

/// Where each row starts, and the element whose flows the case resets.
const RESETS: [(Configuration, &str, Element, Placement, Requirement); 4] = [
    (Configuration::NoOutbound, "primary-registrar-resets", Element::RegistrarA, ROW_1, Requirement::R1_1),
    (Configuration::NoOutbound, "primary-proxy-resets", Element::ProxyA, ROW_1, Requirement::R1_1),
    (Configuration::FullBackup, "primary-outbound-resets", Element::OutboundA, ROW_2, Requirement::R2_1),
    (Configuration::OutboundOnly, "primary-outbound-resets", Element::OutboundA, ROW_2, Requirement::R3_1),
];

const ROW_1: Placement =
    Placement { registrar: Element::RegistrarA, aor_of: Element::ProxyA, proxy: Element::ProxyA, via: None };
const ROW_2: Placement = Placement {
    registrar: Element::RegistrarA,
    aor_of: Element::ProxyA,
    proxy: Element::ProxyA,
    via: Some(Element::OutboundA),
};

pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (configuration, behaviour, element, placement, requirement) in RESETS {
        for transport in [Transport::Tcp, Transport::Tls] {
            let needs = Needs {
                backup_registrar: configuration.has_backups(),
                backup_proxy: configuration.has_backups(),
                subscriptions: true,
                ..Needs::default()
            };
            cases.push(Case {
                id: format!("failover.{}.{behaviour}.reset.{transport}", configuration.id_segment()),
                requirements: [
                    vec![requirement, Requirement::C1],
                    crate::failover::outbound_requirements(configuration),
                ]
                .concat(),
                configuration,
                transport,
                fault: None,
                needs,
                timers: Timers::fast(),
                lab: harness::standard_lab,
                run: Arc::new(move |lab| Box::pin(reset_flows(lab, element, placement, requirement))),
            });
        }
    }
    cases
}

/// A reset connection is no failed server: the element still listens, so the phone's next
/// requests reach it over a new connection and everything stays at the primaries ("primary
/// first": R1.1, R2.1, R3.1).
async fn reset_flows(
    lab: &mut Lab,
    element: Element,
    placement: Placement,
    requirement: Requirement,
) -> Result<(), CaseError> {
    starts_at(lab, placement, true, requirement).await?;
    settle(lab, placement, requirement).await?;
    lab.event(element, Event::Reset);
    let timing = lab.timing().clone();
    // From the reset on: nothing to the other elements (a phone that takes the reset for a
    // failure moves at once), bindings only at the primary.
    stays_at(lab, placement, requirement).await?;
    // Still served by the primaries, over new connections.
    let deadline = timing
        .next_register()
        .plus("a new connection (one transaction)", timing.transaction_timeout())
        .plus("scheduling jitter", timing.jitter());
    lab.expect_all(placement.everything(true, requirement, &deadline)).await?;
    Ok(())
}
