//! Requirement IDs (BRIEF §2) as a type: the seed's bullets, its feature bullets and the RFC rules the suites check, each carrying the sentence it stands for.

use std::fmt;

/// One requirement a check cites. A typo cannot compile; a failure can quote the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Requirement {
    R1_1,
    R1_2,
    R1_3,
    R1_4,
    R1_5,
    R2_1,
    R2_2,
    R2_3,
    R3_1,
    R3_2,
    R3_3,
    F1,
    F2,
    F3,
    F4,
    F5,
    /// The phone obeys its cfg (transport, timers, servers).
    C1,
    /// RFC 3261 §10.2.4: refresh a binding before it expires.
    Rfc3261_10_2_4,
    /// RFC 3261 §21.5.4: no retry before a 503's Retry-After has passed.
    Rfc3261_21_5_4,
    /// RFC 6665 §4.1.2.4: a refresh answered 481 ends the subscription; a new one is started.
    Rfc6665_4_1_2_4,
    /// RFC 5626 §4.5: reconnect backoff.
    Rfc5626_4_5,
}

impl Requirement {
    pub const ALL: [Requirement; 21] = [
        Requirement::R1_1,
        Requirement::R1_2,
        Requirement::R1_3,
        Requirement::R1_4,
        Requirement::R1_5,
        Requirement::R2_1,
        Requirement::R2_2,
        Requirement::R2_3,
        Requirement::R3_1,
        Requirement::R3_2,
        Requirement::R3_3,
        Requirement::F1,
        Requirement::F2,
        Requirement::F3,
        Requirement::F4,
        Requirement::F5,
        Requirement::C1,
        Requirement::Rfc3261_10_2_4,
        Requirement::Rfc3261_21_5_4,
        Requirement::Rfc6665_4_1_2_4,
        Requirement::Rfc5626_4_5,
    ];

    /// The ID as BRIEF §2 spells it (`R1.2`, `RFC3261-21.5.4`).
    pub fn id(self) -> &'static str {
        match self {
            Requirement::R1_1 => "R1.1",
            Requirement::R1_2 => "R1.2",
            Requirement::R1_3 => "R1.3",
            Requirement::R1_4 => "R1.4",
            Requirement::R1_5 => "R1.5",
            Requirement::R2_1 => "R2.1",
            Requirement::R2_2 => "R2.2",
            Requirement::R2_3 => "R2.3",
            Requirement::R3_1 => "R3.1",
            Requirement::R3_2 => "R3.2",
            Requirement::R3_3 => "R3.3",
            Requirement::F1 => "F1",
            Requirement::F2 => "F2",
            Requirement::F3 => "F3",
            Requirement::F4 => "F4",
            Requirement::F5 => "F5",
            Requirement::C1 => "C1",
            Requirement::Rfc3261_10_2_4 => "RFC3261-10.2.4",
            Requirement::Rfc3261_21_5_4 => "RFC3261-21.5.4",
            Requirement::Rfc6665_4_1_2_4 => "RFC6665-4.1.2.4",
            Requirement::Rfc5626_4_5 => "RFC5626-4.5",
        }
    }

    /// The sentence the ID stands for: the seed's bullet (misprints corrected as BRIEF §2 says),
    /// the feature bullet, or the RFC rule.
    pub fn sentence(self) -> &'static str {
        match self {
            Requirement::R1_1 => {
                "Outbound off, backup proxy and registrar: INVITE, REGISTER and SUBSCRIBE go to the primary proxy/registrar first."
            }
            Requirement::R1_2 => {
                "Outbound off: when the primary registrar fails, the phone registers at the backup registrar."
            }
            Requirement::R1_3 => {
                "Outbound off: when the primary proxy fails, the phone registers the backup proxy's AOR at the active registrar and moves every subscription to the backup proxy."
            }
            Requirement::R1_4 => {
                "Outbound off: when the primary registrar returns, the phone registers there with the currently active AOR."
            }
            Requirement::R1_5 => {
                "Outbound off: when the primary proxy returns, the phone registers the primary AOR at the active registrar and moves every subscription back to the primary proxy."
            }
            Requirement::R2_1 => {
                "Backup proxy, registrar and outbound proxy: all requests try the primary proxy/registrar first."
            }
            Requirement::R2_2 => {
                "Backup proxy, registrar and outbound proxy: when any connection fails, the backup AOR is registered at the backup registrar and subscriptions move to the backup proxy."
            }
            Requirement::R2_3 => {
                "Backup proxy, registrar and outbound proxy: when the primary works again, registration and subscriptions move back."
            }
            Requirement::R3_1 => {
                "Backup outbound proxy only: all requests go through the primary outbound proxy first."
            }
            Requirement::R3_2 => {
                "Backup outbound proxy only: when the primary fails, registration and subscriptions go through the backup outbound proxy."
            }
            Requirement::R3_3 => {
                "Backup outbound proxy only: when the primary returns, registration and subscriptions go through the primary outbound proxy again."
            }
            Requirement::F1 => "Backup outbound proxy support.",
            Requirement::F2 => "SIP outbound (RFC 5626) on UDP, TCP and TLS.",
            Requirement::F3 => "A configurable outbound keep-alive timer.",
            Requirement::F4 => "Failed outbound connections are re-established in the background.",
            Requirement::F5 => "The DNS cache honours each record's TTL.",
            Requirement::C1 => "The phone obeys its cfg: transport, timers and servers as provisioned.",
            Requirement::Rfc3261_10_2_4 => "A UA refreshes its binding before it expires (RFC 3261 §10.2.4).",
            Requirement::Rfc3261_21_5_4 => {
                "A server that answered 503 with Retry-After is not retried before it has passed (RFC 3261 §21.5.4)."
            }
            Requirement::Rfc6665_4_1_2_4 => {
                "A subscription refresh answered 481 ends the subscription; the subscriber starts a new one (RFC 6665 §4.1.2.4)."
            }
            Requirement::Rfc5626_4_5 => {
                "A failed flow is replaced at once, then with backoff min(max-time, base-time * 2^failures) * U(0.5, 1) (RFC 5626 §4.5)."
            }
        }
    }

    /// The seed's own bullets (R1.1-R3.3), which every build must cover with a case and a quirk.
    pub fn is_seed_bullet(self) -> bool {
        self.id().starts_with('R') && !self.id().starts_with("RFC")
    }

    pub fn parse(id: &str) -> Option<Requirement> {
        Requirement::ALL.into_iter().find(|r| r.id() == id)
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl serde::Serialize for Requirement {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_parses_back_and_has_a_sentence() {
        for requirement in Requirement::ALL {
            assert_eq!(Requirement::parse(requirement.id()), Some(requirement));
            assert!(requirement.sentence().ends_with('.'), "{requirement}");
        }
        let seed: Vec<_> = Requirement::ALL.into_iter().filter(|r| r.is_seed_bullet()).collect();
        assert_eq!(seed.len(), 11);
    }
}
