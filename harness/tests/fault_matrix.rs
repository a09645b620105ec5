//! Every lasting fault kind on every SIP element and every transport, as a phone observes it, then lifted.

mod common;

use std::time::Duration;

use common::{ANSWER_DEADLINE, PhoneFlow, Read, SILENCE_WINDOW, lab};
use harness::{Element, Fault, Lab, Transport};
use sip::Method;

const TRANSPORTS: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Tls];

async fn options(lab: &Lab, flow: &mut PhoneFlow, element: Element, window: Duration) -> Read {
    let request = flow.request(lab, Method::Options, element);
    if flow.send(&request).await.is_err() {
        return Read::Closed(std::io::ErrorKind::BrokenPipe);
    }
    flow.read(window).await
}

/// Retries until `check` holds: faults apply as the element's tasks notice them.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + ANSWER_DEADLINE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
    }
}

async fn observe(element: Element, fault: Fault) {
    let mut lab = lab().await;
    let mut before = Vec::new();
    for transport in TRANSPORTS {
        let mut flow = PhoneFlow::open(&lab, element, transport).await.unwrap();
        let answer = options(&lab, &mut flow, element, ANSWER_DEADLINE).await.message();
        assert_eq!(answer.status(), Some(200), "{element}/{transport} serves before the fault");
        before.push(flow);
    }
    lab.fail(element, fault);
    for (transport, old) in TRANSPORTS.into_iter().zip(before.iter_mut()) {
        let at = format!("{element}/{transport} under {fault}");
        match fault {
            Fault::Silent => {
                assert!(matches!(options(&lab, old, element, SILENCE_WINDOW).await, Read::Nothing), "{at}: old flow");
                let new = tokio::time::timeout(SILENCE_WINDOW, PhoneFlow::open(&lab, element, transport)).await;
                match (transport, new) {
                    (Transport::Tls, new) => assert!(new.is_err(), "{at}: the TLS handshake must hang"),
                    (_, Ok(Ok(mut new))) => {
                        assert!(
                            matches!(options(&lab, &mut new, element, SILENCE_WINDOW).await, Read::Nothing),
                            "{at}: new flow"
                        )
                    }
                    (_, other) => panic!("{at}: connection not accepted: {:?}", other.map(|r| r.err())),
                }
            }
            Fault::Refuse => {
                if transport == Transport::Udp {
                    let deadline = tokio::time::Instant::now() + ANSWER_DEADLINE;
                    while !matches!(
                        options(&lab, old, element, Duration::from_millis(100)).await,
                        Read::Closed(std::io::ErrorKind::ConnectionRefused)
                    ) {
                        assert!(tokio::time::Instant::now() < deadline, "{at}: no ICMP port unreachable");
                    }
                } else {
                    assert!(matches!(old.read(ANSWER_DEADLINE).await, Read::Closed(_)), "{at}: old flow not reset");
                    eventually(&format!("{at}: connect not refused"), || async {
                        PhoneFlow::open(&lab, element, transport)
                            .await
                            .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
                    })
                    .await;
                }
            }
            Fault::Reject { code, retry_after } => {
                let answer = options(&lab, old, element, ANSWER_DEADLINE).await.message();
                assert_eq!(answer.status(), Some(code), "{at}");
                assert_eq!(answer.retry_after().unwrap().map(|r| r.seconds), retry_after, "{at}");
            }
            Fault::Delay { ms } => {
                // Nothing in the first half of the delay; the answer after it.
                let half = Duration::from_millis(u64::from(ms) / 2);
                let request = old.request(&lab, Method::Options, element);
                old.send(&request).await.unwrap();
                assert!(matches!(old.read(half).await, Read::Nothing), "{at}: answered early");
                let answer = old.read(ANSWER_DEADLINE).await.message();
                assert_eq!(answer.status(), Some(200), "{at}: answered late");
            }
            Fault::Stall => {
                assert!(
                    matches!(options(&lab, old, element, SILENCE_WINDOW).await, Read::Nothing),
                    "{at}: old flow answered"
                );
                let mut new = PhoneFlow::open(&lab, element, transport).await.unwrap();
                let answer = options(&lab, &mut new, element, ANSWER_DEADLINE).await.message();
                assert_eq!(answer.status(), Some(200), "{at}: a new flow is served");
            }
        }
    }
    lab.restore(element);
    for transport in TRANSPORTS {
        let at = format!("{element}/{transport} after restore from {fault}");
        eventually(&at, || async {
            match PhoneFlow::open(&lab, element, transport).await {
                Ok(mut flow) => matches!(options(&lab, &mut flow, element, Duration::from_millis(300)).await,
                    Read::Message(m) if m.status() == Some(200)),
                Err(_) => false,
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_on_every_element_and_transport() {
    let faults = [
        Fault::Silent,
        Fault::Refuse,
        Fault::Reject { code: 503, retry_after: Some(7) },
        Fault::reject(408),
        Fault::Stall,
        Fault::Delay { ms: 300 },
    ];
    let mut runs = tokio::task::JoinSet::new();
    for element in Element::SIP {
        for fault in faults {
            runs.spawn(observe(element, fault));
        }
    }
    while let Some(joined) = runs.join_next().await {
        if let Err(e) = joined {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}
