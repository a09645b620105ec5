//! The lab's servers as a real phone meets them: each test sends what a phone sends and checks the RFC rule a real server keeps.

mod common;

use std::time::Duration;

use common::{ANSWER_DEADLINE, PhoneFlow, authorize_with_count, lab};
use harness::{Element, Lab, Transport};
use sip::{Challenge, HeaderName, Message, Method};

async fn udp(lab: &Lab, element: Element) -> PhoneFlow {
    PhoneFlow::open(lab, element, Transport::Udp).await.expect("a UDP flow")
}

/// A REGISTER of `contact` for `expires` seconds, authorized with `challenge` and `nc`.
fn register(lab: &Lab, flow: &mut PhoneFlow, contact: &str, expires: u32, challenge: &Challenge, nc: u32) -> Message {
    let mut register = flow.request(lab, Method::Register, Element::RegistrarA);
    register.set_header(HeaderName::Contact, contact);
    register.push_header(HeaderName::Expires, expires);
    authorize_with_count(lab, &mut register, challenge, nc);
    register
}

/// The registrar's first challenge on this flow.
async fn challenge(lab: &Lab, flow: &mut PhoneFlow) -> Challenge {
    let register = flow.request(lab, Method::Register, Element::RegistrarA);
    let answer = flow.exchange(&register).await;
    assert_eq!(answer.status(), Some(401), "{answer:?}");
    answer.challenges().unwrap().remove(0)
}

fn contact_at(lab: &Lab, user: &str) -> String {
    format!("<sip:{user}@{}:5060>", lab.topology.phone_ip())
}

/// RFC 3261 §10.3 step 8: every live binding is listed with its remaining time; a live one never
/// shows `expires=0`, which a phone reads as removed (the remaining time is rounded up).
#[tokio::test]
async fn a_live_binding_is_never_listed_with_expires_zero() {
    const PACE: Duration = Duration::from_millis(40);
    let lab = lab().await;
    let mut flow = udp(&lab, Element::RegistrarA).await;
    let challenge = challenge(&lab, &mut flow).await;
    let short = contact_at(&lab, "short");
    let mut nc = 1;
    let ok = {
        let r = register(&lab, &mut flow, &short, 1, &challenge, nc);
        flow.exchange(&r).await
    };
    assert_eq!(ok.status(), Some(200));

    // Another contact of the same AOR, registered again and again until the short one is gone.
    let deadline = tokio::time::Instant::now() + ANSWER_DEADLINE;
    let mut pace = tokio::time::interval(PACE);
    loop {
        pace.tick().await;
        nc += 1;
        let ok = {
            let r = register(&lab, &mut flow, &contact_at(&lab, "long"), 60, &challenge, nc);
            flow.exchange(&r).await
        };
        assert_eq!(ok.status(), Some(200), "{ok:?}");
        let contacts = ok.contacts().unwrap();
        let Some(listed) = contacts.iter().find(|c| c.address().is_some_and(|a| a.uri.to_string().contains("short")))
        else {
            break;
        };
        assert!(listed.expires() >= Some(1), "a live binding listed as {listed}");
        assert!(tokio::time::Instant::now() < deadline, "the 1 s binding outlived its expiry");
    }
}

/// RFC 3261 §10.3 step 8: the registrar's 200 carries a Date (RFC 1123 form).
#[tokio::test]
async fn the_registrars_200_carries_a_date() {
    let lab = lab().await;
    let mut flow = udp(&lab, Element::RegistrarA).await;
    let ok = flow.register(&lab, Element::RegistrarA, 60).await;
    let date = ok.header(&HeaderName::from("Date")).expect("a Date header").to_owned();
    let words: Vec<&str> = date.split(' ').collect();
    assert_eq!(words.len(), 6, "{date}");
    assert!(words[0].ends_with(',') && words[5] == "GMT", "{date}");
}
