//! The fault kinds of BRIEF §2 as named, reusable behaviours, and where they apply.

use std::fmt;

use crate::topology::Element;
use crate::trace::Transport;

/// A lasting fault, in force until `restore`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Everything is swallowed; the phone finds out by its transaction timer.
    Silent,
    /// The ports are closed: ICMP port unreachable on UDP, RST on TCP.
    Refuse,
    /// Every request is answered with `code` (503 or 408), with an optional Retry-After.
    Reject { code: u16, retry_after: Option<u32> },
    /// Existing flows are black-holed while new ones are served: TCP/TLS connections open at the
    /// fault get nothing (no answers, no pongs); on UDP, sources seen before the fault are dropped.
    Stall,
    /// Every request is answered `ms` milliseconds late: a healthy but slow server, which a phone
    /// must not treat as failed while the answer comes within its transaction timer.
    Delay { ms: u32 },
}

/// A one-off event: it happens once and leaves nothing to restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// Every existing TCP/TLS flow is reset (RST); listening goes on.
    Reset,
    /// The element drops all its state (bindings, subscriptions) and its flows, and serves on.
    Restart,
}

impl Event {
    pub fn id_segment(self) -> &'static str {
        match self {
            Event::Reset => "reset",
            Event::Restart => "restart",
        }
    }
}

impl Fault {
    /// `reject 503` as a named behaviour: `registrar.reject(503)`.
    pub fn reject(code: u16) -> Fault {
        Fault::Reject { code, retry_after: None }
    }

    /// The case-id segment (BRIEF §5): `silent`, `refuse`, `reject-503`, `reject-503-retry-after`, `delay`.
    pub fn id_segment(&self) -> String {
        match self {
            Fault::Silent => "silent".into(),
            Fault::Refuse => "refuse".into(),
            Fault::Reject { code, retry_after: None } => format!("reject-{code}"),
            Fault::Reject { code, retry_after: Some(_) } => format!("reject-{code}-retry-after"),
            Fault::Stall => "stall".into(),
            Fault::Delay { .. } => "delay".into(),
        }
    }

    /// Parses the words of `fail <target> <fault...>`: `silent`, `refuse`, `reject 503 [retry-after=N]`.
    pub fn parse_words(words: &[&str]) -> Result<Fault, String> {
        match words {
            ["silent"] => Ok(Fault::Silent),
            ["refuse"] => Ok(Fault::Refuse),
            ["stall"] => Ok(Fault::Stall),
            ["delay", ms] => {
                let ms = ms
                    .parse()
                    .ok()
                    .filter(|ms| (1..=600_000).contains(ms))
                    .ok_or_else(|| format!("delay needs milliseconds 1-600000, got {ms:?}"))?;
                Ok(Fault::Delay { ms })
            }
            ["reject", code, rest @ ..] => {
                let code: u16 = code
                    .parse()
                    .ok()
                    .filter(|c| (300..=699).contains(c))
                    .ok_or_else(|| format!("reject needs a status code 300-699, got {code:?}"))?;
                let retry_after = match rest {
                    [] => None,
                    [ra] => Some(
                        ra.strip_prefix("retry-after=")
                            .and_then(|s| s.parse().ok())
                            .ok_or_else(|| format!("expected retry-after=<seconds>, got {ra:?}"))?,
                    ),
                    _ => return Err("too many words after reject CODE".into()),
                };
                Ok(Fault::Reject { code, retry_after })
            }
            _ => Err(format!(
                "unknown fault {:?}: expected silent, refuse, stall, delay MS or reject CODE [retry-after=N]",
                words.join(" ")
            )),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Silent => f.write_str("silent"),
            Fault::Refuse => f.write_str("refuse"),
            Fault::Stall => f.write_str("stall"),
            Fault::Delay { ms } => write!(f, "delay {ms}"),
            Fault::Reject { code, retry_after: None } => write!(f, "reject {code}"),
            Fault::Reject { code, retry_after: Some(s) } => write!(f, "reject {code} retry-after={s}"),
        }
    }
}

/// What a fault applies to: a whole element or one of its transports (`registrar-a/udp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FaultTarget {
    pub element: Element,
    pub transport: Option<Transport>,
}

impl FaultTarget {
    pub fn parse(s: &str) -> Result<FaultTarget, String> {
        let (name, transport) = match s.split_once('/') {
            Some((n, t)) => (n, Some(Transport::parse(t).ok_or_else(|| format!("unknown transport {t:?}"))?)),
            None => (s, None),
        };
        let element = Element::parse(name).ok_or_else(|| format!("unknown element {name:?}"))?;
        Ok(FaultTarget { element, transport })
    }

    pub fn covers(&self, transport: Transport) -> bool {
        self.transport.is_none_or(|t| t == transport)
    }
}

impl From<Element> for FaultTarget {
    fn from(element: Element) -> FaultTarget {
        FaultTarget { element, transport: None }
    }
}

impl fmt::Display for FaultTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.transport {
            Some(t) => write!(f, "{}/{t}", self.element),
            None => write!(f, "{}", self.element),
        }
    }
}
