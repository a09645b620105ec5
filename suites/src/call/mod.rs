//! Calls: the INVITE goes where the seed's table puts the proxy, before and after each move, and a callee's answer moves nothing.

use std::sync::Arc;

use harness::elements::InviteAnswer;
use harness::{
    Case, CaseError, Configuration, Element, ElementCommand, Fault, Invite, Lab, Needs, Requirement, Timers,
};

use crate::failover::{Calls, ROWS, TRANSPORTS, fail_and_return};
use crate::steps::{Placement, starts_at, stays_at};

pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for row in ROWS {
        for transport in TRANSPORTS {
            // R1.1, R2.1, R3.1 name INVITE: a call in each phase of the row's story.
            cases.push(Case {
                id: format!("call.{}.{}.silent.{transport}", row.configuration.id_segment(), row.behaviour),
                requirements: [
                    vec![row.start, row.moved, row.returned, Requirement::C1],
                    crate::failover::outbound_requirements(row.configuration),
                ]
                .concat(),
                configuration: row.configuration,
                transport,
                fault: Some(Fault::Silent),
                needs: Needs { dial: true, ..row.needs },
                timers: Timers::fast(),
                lab: harness::standard_lab,
                run: Arc::new(move |lab| Box::pin(fail_and_return(lab, row, Fault::Silent, None, Calls::EachPhase))),
            });
        }
    }
    for transport in TRANSPORTS {
        for (behaviour, code) in [("callee-declines", 603), ("callee-does-not-answer", 408)] {
            cases.push(Case {
                id: format!("call.no-outbound.{behaviour}.{transport}"),
                requirements: vec![Requirement::R1_1, Requirement::C1],
                configuration: Configuration::NoOutbound,
                transport,
                fault: None,
                needs: Needs {
                    backup_registrar: true,
                    backup_proxy: true,
                    subscriptions: true,
                    dial: true,
                    reboot: false,
                },
                timers: Timers::fast(),
                lab: harness::standard_lab,
                run: Arc::new(move |lab| Box::pin(callee_refuses(lab, code))),
            });
        }
    }
    cases
}

const PRIMARY: Placement =
    Placement { registrar: Element::RegistrarA, aor_of: Element::ProxyA, proxy: Element::ProxyA, via: None };

/// R1.1: a callee's 603 Decline (RFC 3261 §21.6: about the user) or 408 to an INVITE (nobody
/// answered) says nothing about the proxy: the phone stays at the primaries (RFC 3263 §4.3 moves
/// on only for 503, a timeout or a transport error).
async fn callee_refuses(lab: &mut Lab, code: u16) -> Result<(), CaseError> {
    starts_at(lab, PRIMARY, true, Requirement::R1_1).await?;
    lab.command(Element::ProxyA, ElementCommand::AnswerInvitesWith(InviteAnswer::Reject(code))).await;
    lab.stimulate(harness::dut::Stimulus::Dial(harness::provision::BLF_EXTENSION.into())).await?;
    let deadline = lab.timing().dial();
    lab.expect(Invite::at(Element::ProxyA).requirement(Requirement::R1_1).within(deadline)).await?;
    stays_at(lab, PRIMARY, Requirement::R1_1).await
}
