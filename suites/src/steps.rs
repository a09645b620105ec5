//! Steps several cases share, each citing the requirement it checks: where the phone registers and subscribes, and that a moved subscription is a new dialog.

use harness::{CaseError, Element, Lab, Request, Requirement, TraceEvent, Violation};

pub use harness::placement::{PACKAGES, Placement};

/// The phone's start: everything at the primaries, and nothing at any other element first
/// (R1.1, R2.1, R3.1: "primary first").
pub async fn starts_at(
    lab: &mut Lab,
    placement: Placement,
    subscriptions: bool,
    requirement: Requirement,
) -> Result<Vec<TraceEvent>, CaseError> {
    let deadline = lab.timing().startup();
    let found = lab.expect_all(placement.everything(subscriptions, requirement, &deadline)).await?;
    let used = placement.elements();
    for element in Element::SIP.into_iter().filter(|e| !used.contains(e)) {
        lab.expect_none_so_far(
            &Request::at(element).requirement(requirement),
            &format!("nothing at {element} while the primaries work"),
        )?;
    }
    Ok(found)
}

/// The phone stays at `placement` for a steady window (BRIEF §2): nothing to any other element,
/// bindings only at its registrar; a breach violates `requirement`.
pub async fn stays_at(lab: &mut Lab, placement: Placement, requirement: Requirement) -> Result<(), CaseError> {
    let window = lab.timing().steady_window();
    stays_at_for(lab, placement, requirement, window).await
}

/// [`stays_at`] over a window of the case's choosing.
pub async fn stays_at_for(
    lab: &mut Lab,
    placement: Placement,
    requirement: Requirement,
    window: std::time::Duration,
) -> Result<(), CaseError> {
    let timing = lab.timing().clone();
    let mut rules = harness::SteadyRules::new(placement.registrar, requirement, timing.probe_spacing());
    for other in Element::SIP.into_iter().filter(|e| !placement.elements().contains(e)) {
        rules = rules.unused(other, requirement);
    }
    lab.hold(rules, window).await
}

/// Lets the phone's start-up exchanges settle before a one-off event (`reset`, `restart`): a
/// request in flight on a connection the event resets fails with a transport error, which RFC
/// 3263 lets a phone take for a failed server, so the event must meet an idle phone to judge
/// what the phone does with an idle connection lost. The wait is an observation window: the
/// phone stays where it is meanwhile.
pub async fn settle(lab: &mut Lab, placement: Placement, requirement: Requirement) -> Result<(), CaseError> {
    let timing = lab.timing().clone();
    let rules = harness::SteadyRules::new(placement.registrar, requirement, timing.probe_spacing());
    lab.hold(rules, timing.steady_window() / 4).await
}

/// A moved subscription is a new dialog: a new Call-ID and a new From tag (BRIEF §2, RFC 6665
/// §4.1.2.4). `before` and `after` are the subscriptions' accepting 2xx responses.
pub fn new_dialogs(before: &[TraceEvent], after: &[TraceEvent], requirement: Requirement) -> Result<(), CaseError> {
    let old: Vec<(String, String)> = before.iter().filter(|e| is_subscription(e)).filter_map(dialog_of).collect();
    for event in after.iter().filter(|e| is_subscription(e)) {
        let Some((call_id, tag)) = dialog_of(event) else { continue };
        let reused = if old.iter().any(|(c, _)| *c == call_id) {
            Some(format!("Call-ID {call_id}"))
        } else {
            old.iter().any(|(_, t)| *t == tag).then(|| format!("From tag {tag}"))
        };
        if let Some(what) = reused {
            return Err(CaseError::from(
                Violation::new(
                    requirement,
                    "the moved subscription as a new dialog: a new Call-ID and a new From tag".into(),
                    format!(
                        "#{} a subscription accepted by {} reusing the old dialog's {what}",
                        event.index, event.element
                    ),
                    format!("a moved subscription reused the old dialog's {what}"),
                )
                .pointing_at(vec![event.index]),
            ));
        }
    }
    Ok(())
}

/// The Call-ID and From tag of a message.
fn dialog_of(event: &TraceEvent) -> Option<(String, String)> {
    let message = event.sip()?;
    let from = message.from().ok()?;
    Some((message.call_id().ok()?.to_owned(), from.tag()?.to_owned()))
}

/// An accepted subscription (a 2xx to SUBSCRIBE that did not end it).
fn is_subscription(event: &TraceEvent) -> bool {
    event.sip().is_some_and(|m| {
        m.status().is_some_and(|s| (200..300).contains(&s))
            && m.cseq().is_ok_and(|c| c.method == sip::Method::Subscribe)
            && m.expires().ok().flatten() != Some(0)
    })
}
