//! Subscriptions a proxy forgot: a restarted proxy answers 481 to a refresh, and the phone starts a new subscription there, as a new dialog, without failing over.

use std::sync::Arc;

use harness::{Case, CaseError, Configuration, Element, Event, Lab, Needs, Requirement, Timers};

use crate::failover::TRANSPORTS;
use crate::steps::{PACKAGES, Placement, new_dialogs, settle, starts_at, stays_at};

const PRIMARY: Placement =
    Placement { registrar: Element::RegistrarA, aor_of: Element::ProxyA, proxy: Element::ProxyA, via: None };

pub fn cases() -> Vec<Case> {
    TRANSPORTS
        .into_iter()
        .map(|transport| Case {
            id: format!("subscribe.no-outbound.proxy-restarts.restart.{transport}"),
            requirements: vec![Requirement::R1_1, Requirement::Rfc6665_4_1_2_4, Requirement::C1],
            configuration: Configuration::NoOutbound,
            transport,
            fault: None,
            needs: Needs { backup_registrar: true, backup_proxy: true, subscriptions: true, ..Needs::default() },
            timers: Timers::fast(),
            lab: harness::standard_lab,
            run: Arc::new(|lab| Box::pin(proxy_restarts(lab))),
        })
        .collect()
}

/// RFC 6665 §4.1.2.4: a refresh answered 481 ends the subscription; the subscriber starts an
/// unrelated one (a fresh Call-ID and From tag) at the same proxy. A 481 is no server failure:
/// nothing moves to the backups (R1.1).
async fn proxy_restarts(lab: &mut Lab) -> Result<(), CaseError> {
    let before = starts_at(lab, PRIMARY, true, Requirement::R1_1).await?;
    settle(lab, PRIMARY, Requirement::R1_1).await?;
    lab.event(Element::ProxyA, Event::Restart);
    let timing = lab.timing().clone();
    let deadline = timing
        .next_subscribe()
        .plus("the 481 and a new SUBSCRIBE (one transaction)", timing.transaction_timeout())
        .plus("scheduling jitter", timing.jitter());
    let renewed: Vec<_> = PACKAGES
        .into_iter()
        .map(|package| PRIMARY.subscription(package, Requirement::Rfc6665_4_1_2_4).within(deadline.clone()))
        .collect();
    let after = lab.expect_all(renewed).await?;
    new_dialogs(&before, &after, Requirement::Rfc6665_4_1_2_4)?;
    stays_at(lab, PRIMARY, Requirement::R1_1).await
}
