//! Steps several cases share, each citing the requirement it checks: where the phone registers and subscribes, and that a moved subscription is a new dialog.

use harness::{CaseError, Element, Expect, Lab, Register, Subscribe, TraceEvent, Violation};

/// The event packages the harness provisions: BLF (RFC 4235) and MWI (RFC 3842).
pub const PACKAGES: [&str; 2] = ["dialog", "message-summary"];

/// Where the phone should be: its registrar, its AOR's proxy, its subscriptions' proxy, and the
/// outbound proxy everything goes through, if any.
#[derive(Debug, Clone, Copy)]
pub struct Placement {
    pub registrar: Element,
    pub aor_of: Element,
    pub proxy: Element,
    pub via: Option<Element>,
}

impl Placement {
    pub fn registration(&self, requirement: &'static str) -> Expect {
        let e = Register::at(self.registrar).aor_of(self.aor_of).requirement(requirement);
        match self.via {
            Some(outbound) => e.via(outbound),
            None => e,
        }
    }

    pub fn subscription(&self, package: &'static str, requirement: &'static str) -> Expect {
        let e = Subscribe::at(self.proxy, package).aor_of(self.aor_of).requirement(requirement);
        match self.via {
            Some(outbound) => e.via(outbound),
            None => e,
        }
    }

    /// The registration and, when `subscriptions`, both subscriptions, each within `limit`.
    pub fn everything(
        &self,
        subscriptions: bool,
        requirement: &'static str,
        limit: std::time::Duration,
        why: &str,
    ) -> Vec<Expect> {
        let mut all = vec![self.registration(requirement).within(limit, why)];
        if subscriptions {
            for package in PACKAGES {
                all.push(self.subscription(package, requirement).within(limit, why));
            }
        }
        all
    }
}

/// The phone's start: everything at the primaries (R1.1, R2.1, R3.1: "primary first").
pub async fn starts_at(
    lab: &mut Lab,
    placement: Placement,
    subscriptions: bool,
    requirement: &'static str,
) -> Result<Vec<TraceEvent>, CaseError> {
    let timing = lab.timing().clone();
    let limit = timing.startup() + timing.transaction_timeout();
    lab.expect_all(placement.everything(
        subscriptions,
        requirement,
        limit,
        "phone start-up, one authentication round trip",
    ))
    .await
}

/// A moved subscription is a new dialog: new Call-ID (BRIEF §2, RFC 6665 §4.1.2.4).
pub fn new_dialogs(before: &[TraceEvent], after: &[TraceEvent], requirement: &'static str) -> Result<(), CaseError> {
    let call_id = |e: &TraceEvent| e.sip().and_then(|m| m.call_id().ok().map(str::to_owned));
    let old: Vec<String> = before.iter().filter(|e| is_subscription(e)).filter_map(call_id).collect();
    for event in after.iter().filter(|e| is_subscription(e)) {
        if let Some(id) = call_id(event) {
            if old.contains(&id) {
                return Err(CaseError::Violation(Violation {
                    requirement: requirement.into(),
                    expected: "the moved subscription as a new dialog (a new Call-ID)".into(),
                    arrived: format!("a SUBSCRIBE at {} reusing Call-ID {id}", event.element),
                    message: "a moved subscription reused the old dialog".into(),
                }));
            }
        }
    }
    Ok(())
}

/// An accepted subscription (a 2xx to SUBSCRIBE that did not end it).
fn is_subscription(event: &TraceEvent) -> bool {
    event.sip().is_some_and(|m| {
        m.status().is_some_and(|s| (200..300).contains(&s))
            && m.cseq().is_ok_and(|c| c.method == sip::Method::Subscribe)
            && m.expires().ok().flatten() != Some(0)
    })
}
