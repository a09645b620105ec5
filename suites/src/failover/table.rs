//! The seed's table as data: for each row, what fails, where everything must be before, after the failure and after the return, and the requirement each move checks.

use harness::{Configuration, Element, Needs, Requirement};

use crate::steps::Placement;

/// One row of the seed's table, read as BRIEF §2 reads it.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub configuration: Configuration,
    /// The behaviour segment of the case id: what fails, in kebab case.
    pub behaviour: &'static str,
    /// The element the harness breaks.
    pub fails: Element,
    /// Whether BLF and MWI are provisioned (so the subscriptions' moves are checked too).
    pub subscriptions: bool,
    /// Where everything is first ("primary first").
    pub before: Placement,
    pub start: Requirement,
    /// Where everything is once the phone noticed the failure.
    pub after: Placement,
    pub moved: Requirement,
    /// When the primary returns, the phone is back at `before`, and releases what it held at
    /// the backups (the vendor's 3.3.1 failback: un-REGISTER, un-SUBSCRIBE).
    pub returned: Requirement,
    pub releases: &'static [Release],
    pub needs: Needs,
}

/// What the phone must release at failback, over the hop that made it.
#[derive(Debug, Clone, Copy)]
pub enum Release {
    /// An un-REGISTER of the AOR of `aor_of` at `registrar`.
    Binding { registrar: Element, aor_of: Element, via: Option<Element> },
    /// An un-SUBSCRIBE of every moved subscription at `proxy`.
    Subscriptions { proxy: Element, via: Option<Element> },
}

const fn placement(registrar: Element, aor_of: Element, proxy: Element, via: Option<Element>) -> Placement {
    Placement { registrar, aor_of, proxy, via }
}

use Element::{OutboundA, OutboundB, ProxyA, ProxyB, RegistrarA, RegistrarB};

const ROW_1_PRIMARY: Placement = placement(RegistrarA, ProxyA, ProxyA, None);
const ROW_2_PRIMARY: Placement = placement(RegistrarA, ProxyA, ProxyA, Some(OutboundA));
/// Row 2 after any failure: everything at the backups, through outbound-b.
const ROW_2_BACKUPS: Placement = placement(RegistrarB, ProxyB, ProxyB, Some(OutboundB));
/// Row 2's failback releases the backup binding and subscriptions through outbound-b.
const ROW_2_RELEASES: &[Release] = &[
    Release::Binding { registrar: RegistrarB, aor_of: ProxyB, via: Some(OutboundB) },
    Release::Subscriptions { proxy: ProxyB, via: Some(OutboundB) },
];
const ALL_BACKUPS: Needs = Needs { backup_registrar: true, backup_proxy: true, subscriptions: true, ..Needs::NONE };

/// Row 2 with `fails` behind outbound-a: the same moves as when outbound-a itself fails.
const fn row_2_behind_outbound(behaviour: &'static str, fails: Element) -> Row {
    Row {
        configuration: Configuration::FullBackup,
        behaviour,
        fails,
        subscriptions: true,
        before: ROW_2_PRIMARY,
        start: Requirement::R2_1,
        after: ROW_2_BACKUPS,
        moved: Requirement::R2_2,
        returned: Requirement::R2_3,
        releases: ROW_2_RELEASES,
        needs: ALL_BACKUPS,
    }
}

/// The seed's rows (BRIEF §2): row 1's two dimensions, row 2's "any connection", row 3.
pub const ROWS: [Row; 6] = [
    Row {
        configuration: Configuration::NoOutbound,
        behaviour: "primary-registrar-fails",
        fails: RegistrarA,
        subscriptions: true,
        before: ROW_1_PRIMARY,
        start: Requirement::R1_1,
        // R1.2: the backup registrar, still the primary AOR; subscriptions stay at proxy-a.
        after: placement(RegistrarB, ProxyA, ProxyA, None),
        moved: Requirement::R1_2,
        // R1.4: back at registrar-a with the active AOR; the backup binding removed.
        returned: Requirement::R1_4,
        releases: &[Release::Binding { registrar: RegistrarB, aor_of: ProxyA, via: None }],
        needs: ALL_BACKUPS,
    },
    Row {
        configuration: Configuration::NoOutbound,
        behaviour: "primary-proxy-fails",
        fails: ProxyA,
        subscriptions: true,
        before: ROW_1_PRIMARY,
        start: Requirement::R1_1,
        // R1.3: the backup proxy's AOR at the active registrar, subscriptions at proxy-b.
        after: placement(RegistrarA, ProxyB, ProxyB, None),
        moved: Requirement::R1_3,
        // R1.5: the primary AOR again, subscriptions back; the backup's subscriptions ended and
        // no binding of the backup AOR left at the active registrar.
        returned: Requirement::R1_5,
        releases: &[
            Release::Subscriptions { proxy: ProxyB, via: None },
            Release::Binding { registrar: RegistrarA, aor_of: ProxyB, via: None },
        ],
        needs: ALL_BACKUPS,
    },
    Row {
        configuration: Configuration::FullBackup,
        behaviour: "primary-outbound-fails",
        fails: OutboundA,
        subscriptions: true,
        before: ROW_2_PRIMARY,
        start: Requirement::R2_1,
        // R2.2: the backup AOR at the backup registrar, subscriptions at the backup proxy, via outbound-b.
        after: ROW_2_BACKUPS,
        moved: Requirement::R2_2,
        // R2.3: everything back via outbound-a; what was held at the backups released via outbound-b.
        returned: Requirement::R2_3,
        releases: ROW_2_RELEASES,
        needs: ALL_BACKUPS,
    },
    // Row 2's "any connection fails" includes what lies behind the outbound proxy (BRIEF §2).
    row_2_behind_outbound("registrar-fails-behind-outbound", RegistrarA),
    row_2_behind_outbound("proxy-fails-behind-outbound", ProxyA),
    Row {
        configuration: Configuration::OutboundOnly,
        behaviour: "primary-outbound-fails",
        fails: OutboundA,
        subscriptions: true,
        before: ROW_2_PRIMARY,
        start: Requirement::R3_1,
        // R3.2: the same registrar and AOR, through outbound-b.
        after: placement(RegistrarA, ProxyA, ProxyA, Some(OutboundB)),
        moved: Requirement::R3_2,
        // R3.3: through outbound-a again. Same registrar and AOR: nothing to release.
        returned: Requirement::R3_3,
        releases: &[],
        needs: Needs { subscriptions: true, ..Needs::NONE },
    },
];
