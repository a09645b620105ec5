//! Where the phone should be (its registrar, AOR, subscriptions' proxy and outbound proxy) as a value, shared by the suites' cases and the explorer's model.

use crate::expect::{Expect, Register, Subscribe};
use crate::requirement::Requirement;
use crate::timing::Deadline;
use crate::topology::Element;

/// The event packages the harness provisions: BLF (RFC 4235) and MWI (RFC 3842).
pub const PACKAGES: [&str; 2] = ["dialog", "message-summary"];

/// Where the phone should be: its registrar, its AOR's proxy, its subscriptions' proxy, and the
/// outbound proxy everything goes through, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub registrar: Element,
    pub aor_of: Element,
    pub proxy: Element,
    pub via: Option<Element>,
}

impl Placement {
    pub fn registration(&self, requirement: Requirement) -> Expect {
        let e = Register::at(self.registrar).aor_of(self.aor_of).requirement(requirement);
        match self.via {
            Some(outbound) => e.via(outbound),
            None => e,
        }
    }

    pub fn subscription(&self, package: &'static str, requirement: Requirement) -> Expect {
        let e = Subscribe::at(self.proxy, package).aor_of(self.aor_of).requirement(requirement);
        match self.via {
            Some(outbound) => e.via(outbound),
            None => e,
        }
    }

    /// The registration and, when `subscriptions`, both subscriptions, each within `deadline`.
    pub fn everything(&self, subscriptions: bool, requirement: Requirement, deadline: &Deadline) -> Vec<Expect> {
        let mut all = vec![self.registration(requirement).within(deadline.clone())];
        if subscriptions {
            for package in PACKAGES {
                all.push(self.subscription(package, requirement).within(deadline.clone()));
            }
        }
        all
    }

    /// The elements this placement uses.
    pub fn elements(&self) -> Vec<Element> {
        let mut all = vec![self.registrar, self.proxy];
        all.extend(self.via);
        all
    }
}
