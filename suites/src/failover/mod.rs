//! Failover: the servers break, the phone must move its registration, AOR and subscriptions as the seed's table says, and move them back.

mod full_backup;
mod no_outbound;
mod outbound_only;

use harness::{Case, CaseFn, Configuration, Fault, Needs, Transport};

/// The faults every failover behaviour is run with: one per detection path of the phone.
pub const FAULTS: [Fault; 3] = [Fault::Silent, Fault::Refuse, Fault::Reject { code: 503, retry_after: None }];

/// Every transport a case runs over.
pub const TRANSPORTS: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Tls];

/// One behaviour of one configuration, for every fault and transport.
fn matrix(
    configuration: Configuration,
    behaviour: &str,
    requirements: &[&'static str],
    needs: Needs,
    run: CaseFn,
) -> Vec<Case> {
    let mut cases = Vec::new();
    for transport in TRANSPORTS {
        for fault in FAULTS {
            cases.push(Case {
                id: Case::id_of("failover", configuration, behaviour, Some(fault), transport),
                requirements: requirements.to_vec(),
                configuration,
                transport,
                fault: Some(fault),
                needs,
                run,
            });
        }
    }
    cases
}

pub fn cases() -> Vec<Case> {
    let mut cases = no_outbound::cases();
    cases.extend(full_backup::cases());
    cases.extend(outbound_only::cases());
    cases
}
