//! Row 1's two dimensions walked: every order of registrar-a and proxy-a failing and returning, and a second failover after a failback, each step judged against the state the seed's table implies.

use std::sync::Arc;

use harness::{Case, CaseError, Configuration, Deadline, Element, Fault, Lab, Needs, Requirement, SteadyRules, Timers};

use super::{Release, release_expectations};
use crate::steps::{Placement, new_dialogs, starts_at};

/// One step of a walk: a primary fails (with the case's fault) or returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Fail(Element),
    Restore(Element),
}

use Element::{ProxyA, RegistrarA};
use Step::{Fail, Restore};

/// The walks: a name (the case id's behaviour) and its steps.
pub const WALKS: [(&str, [Step; 4]); 6] = [
    ("registrar-then-proxy-fail", [Fail(RegistrarA), Fail(ProxyA), Restore(RegistrarA), Restore(ProxyA)]),
    (
        "registrar-then-proxy-fail-reverse-return",
        [Fail(RegistrarA), Fail(ProxyA), Restore(ProxyA), Restore(RegistrarA)],
    ),
    ("proxy-then-registrar-fail", [Fail(ProxyA), Fail(RegistrarA), Restore(ProxyA), Restore(RegistrarA)]),
    (
        "proxy-then-registrar-fail-reverse-return",
        [Fail(ProxyA), Fail(RegistrarA), Restore(RegistrarA), Restore(ProxyA)],
    ),
    ("registrar-fails-twice", [Fail(RegistrarA), Restore(RegistrarA), Fail(RegistrarA), Restore(RegistrarA)]),
    ("proxy-fails-twice", [Fail(ProxyA), Restore(ProxyA), Fail(ProxyA), Restore(ProxyA)]),
];

/// The faults a walk runs with: the timer's detection path and the answer's.
pub const WALK_FAULTS: [Fault; 2] = [Fault::Silent, Fault::Reject { code: 503, retry_after: None }];

pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (name, steps) in WALKS {
        for transport in super::TRANSPORTS {
            for fault in WALK_FAULTS {
                cases.push(Case {
                    id: format!("failover.no-outbound.{name}.{}.{transport}", fault.id_segment()),
                    requirements: vec![
                        Requirement::R1_1,
                        Requirement::R1_2,
                        Requirement::R1_3,
                        Requirement::R1_4,
                        Requirement::R1_5,
                        Requirement::C1,
                    ],
                    configuration: Configuration::NoOutbound,
                    transport,
                    fault: Some(fault),
                    needs: Needs {
                        backup_registrar: true,
                        backup_proxy: true,
                        subscriptions: true,
                        ..Needs::default()
                    },
                    timers: Timers::fast(),
                    lab: harness::standard_lab,
                    run: Arc::new(move |lab| Box::pin(walk(lab, steps, fault))),
                });
            }
        }
    }
    cases
}

/// Which primaries are failed; it fixes where everything must be (BRIEF §2: row 1's two
/// independent dimensions; the AOR follows the active proxy).
#[derive(Debug, Clone, Copy, Default)]
struct State {
    registrar_failed: bool,
    proxy_failed: bool,
}

impl State {
    fn placement(self) -> Placement {
        let registrar = if self.registrar_failed { Element::RegistrarB } else { Element::RegistrarA };
        let proxy = if self.proxy_failed { Element::ProxyB } else { Element::ProxyA };
        Placement { registrar, aor_of: proxy, proxy, via: None }
    }

    fn after(mut self, step: Step) -> State {
        match step {
            Fail(RegistrarA) => self.registrar_failed = true,
            Restore(RegistrarA) => self.registrar_failed = false,
            Fail(_) => self.proxy_failed = true,
            Restore(_) => self.proxy_failed = false,
        }
        self
    }
}

/// The seed's bullet a step checks.
fn requirement_of(step: Step) -> Requirement {
    match step {
        Fail(RegistrarA) => Requirement::R1_2,
        Fail(_) => Requirement::R1_3,
        Restore(RegistrarA) => Requirement::R1_4,
        Restore(_) => Requirement::R1_5,
    }
}

async fn walk(lab: &mut Lab, steps: [Step; 4], fault: Fault) -> Result<(), CaseError> {
    let mut state = State::default();
    let mut subscriptions = starts_at(lab, state.placement(), true, Requirement::R1_1).await?;
    for step in steps {
        let requirement = requirement_of(step);
        let before = state.placement();
        let timing = lab.timing().clone();
        let deadline: Deadline = match step {
            Fail(element) => {
                lab.fail(element, fault);
                if element.is_registrar() {
                    timing.registrar_failover(timing.detect(fault))
                } else {
                    timing.proxy_failover(timing.detect(fault))
                }
            }
            Restore(element) => {
                lab.restore(element);
                timing.failback()
            }
        };
        state = state.after(step);
        let now = state.placement();
        let mut expected = now.everything(true, requirement, &deadline);
        match step {
            // R1.4: the binding held at the backup registrar (of the active AOR) is released.
            Restore(RegistrarA) => expected.extend(release_expectations(
                Release::Binding { registrar: Element::RegistrarB, aor_of: now.aor_of, via: None },
                requirement,
                &deadline,
                &subscriptions,
            )),
            // R1.5: the backup's subscriptions ended, no binding of the backup AOR left.
            Restore(_) => {
                expected.extend(release_expectations(
                    Release::Subscriptions { proxy: Element::ProxyB, via: None },
                    requirement,
                    &deadline,
                    &subscriptions,
                ));
                expected.extend(release_expectations(
                    Release::Binding { registrar: now.registrar, aor_of: Element::ProxyB, via: None },
                    requirement,
                    &deadline,
                    &subscriptions,
                ));
            }
            Fail(_) => {}
        }
        let found = lab.expect_all(expected).await?;
        if now.proxy != before.proxy {
            new_dialogs(&subscriptions, &found, requirement)?;
        }
        subscriptions = found;
        // Steady in the new state: nothing but probes to what is failed, bindings at one
        // registrar, nothing to a backup no longer in use.
        let mut rules = SteadyRules::new(now.registrar, requirement, timing.probe_spacing());
        if state.registrar_failed {
            rules = rules.failed(Element::RegistrarA, requirement);
        } else {
            rules = rules.unused(Element::RegistrarB, requirement);
        }
        if state.proxy_failed {
            rules = rules.failed(Element::ProxyA, requirement);
        } else {
            rules = rules.unused(Element::ProxyB, requirement);
        }
        lab.hold(rules, timing.steady_window()).await?;
    }
    Ok(())
}

/// The primary registrar fails, then its backup while active: both down (BRIEF §2).
pub fn both_down_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for transport in super::TRANSPORTS {
        for fault in WALK_FAULTS {
            cases.push(Case {
                id: format!(
                    "failover.no-outbound.primary-and-backup-registrar-fail.{}.{transport}",
                    fault.id_segment()
                ),
                requirements: vec![Requirement::R1_1, Requirement::R1_2, Requirement::R1_4, Requirement::C1],
                configuration: Configuration::NoOutbound,
                transport,
                fault: Some(fault),
                needs: Needs { backup_registrar: true, ..Needs::default() },
                timers: Timers::fast(),
                lab: harness::standard_lab,
                run: Arc::new(move |lab| Box::pin(both_registrars_fail(lab, fault))),
            });
        }
    }
    cases
}

/// BRIEF §2: with a primary and its backup both down, the phone keeps trying, REGISTERs no
/// faster than its retry timer, and moves to whichever returns first; to the primary once both
/// are back (R1.2, R1.4).
async fn both_registrars_fail(lab: &mut Lab, fault: Fault) -> Result<(), CaseError> {
    let primary = State::default().placement();
    let backup = State { registrar_failed: true, proxy_failed: false }.placement();
    starts_at(lab, primary, false, Requirement::R1_1).await?;
    let timing = lab.timing().clone();
    lab.fail(Element::RegistrarA, fault);
    let deadline = timing.registrar_failover(timing.detect(fault));
    lab.expect(backup.registration(Requirement::R1_2).within(deadline)).await?;
    lab.fail(Element::RegistrarB, fault);
    // Both down: the phone keeps trying both, no faster than its retry timer.
    let retry = timing.timers.registration_retry;
    let rules = SteadyRules::new(Element::RegistrarA, Requirement::R1_2, timing.probe_spacing())
        .retrying(Element::RegistrarA, retry, Requirement::R1_2)
        .retrying(Element::RegistrarB, retry, Requirement::R1_2);
    lab.hold(rules, timing.steady_window()).await?;
    // The backup returns first: the phone registers there.
    lab.restore(Element::RegistrarB);
    let deadline = timing
        .next_register()
        .plus("the registration retry timer", retry)
        .and(timing.detect(fault))
        .plus("scheduling jitter", timing.jitter());
    lab.expect(backup.registration(Requirement::R1_2).within(deadline)).await?;
    // Then the primary: back there, the backup's binding released.
    lab.restore(Element::RegistrarA);
    let deadline = timing.failback();
    let mut back = vec![primary.registration(Requirement::R1_4).within(deadline.clone())];
    back.extend(release_expectations(
        Release::Binding { registrar: Element::RegistrarB, aor_of: Element::ProxyA, via: None },
        Requirement::R1_4,
        &deadline,
        &[],
    ));
    lab.expect_all(back).await?;
    Ok(())
}
