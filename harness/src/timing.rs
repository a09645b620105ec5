//! The timing model: every deadline a case waits with, derived from the timers the harness provisioned and the behaviour the DUT profile declares.

use std::fmt;
use std::time::Duration;

use crate::dut::{Capabilities, TimeoutModel};
use crate::faults::Fault;
use crate::provision::Timers;

/// Scheduling jitter allowed on top of every derived deadline: the harness, the phone and the
/// kernel share two cores in CI. Reported with each verdict's expectation text.
pub const SCHEDULING_JITTER: Duration = Duration::from_millis(400);

/// A deadline: its limit and the named terms that sum to it, so the words of a failure can
/// never disagree with its arithmetic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deadline {
    terms: Vec<(String, Duration)>,
}

impl Deadline {
    /// A deadline of one term.
    pub fn of(what: impl Into<String>, length: Duration) -> Deadline {
        Deadline::default().plus(what, length)
    }

    /// This deadline with one more term.
    pub fn plus(mut self, what: impl Into<String>, length: Duration) -> Deadline {
        self.terms.push((what.into(), length));
        self
    }

    /// This deadline with every term of `other` appended.
    pub fn and(mut self, other: Deadline) -> Deadline {
        self.terms.extend(other.terms);
        self
    }

    /// The sum of the terms.
    pub fn limit(&self) -> Duration {
        self.terms.iter().map(|(_, d)| *d).sum()
    }

    /// The terms in words: `next refresh 1.00 s + transaction timer 0.80 s + jitter 0.40 s`.
    pub fn terms(&self) -> String {
        let parts: Vec<String> =
            self.terms.iter().map(|(what, d)| format!("{what} {:.2} s", d.as_secs_f64())).collect();
        parts.join(" + ")
    }
}

impl fmt::Display for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2} s ({})", self.limit().as_secs_f64(), self.terms())
    }
}

/// Deadlines for one case.
#[derive(Debug, Clone)]
pub struct Timing {
    pub timers: Timers,
    pub capabilities: Capabilities,
    /// Whether the phone runs RFC 5626 flows (`sip outbound support: 1`): then a failed primary
    /// is tried again on the §4.5 backoff, not on the probe interval.
    pub sip_outbound: bool,
}

impl Timing {
    pub fn new(timers: Timers, capabilities: Capabilities) -> Timing {
        Timing { timers, capabilities, sip_outbound: false }
    }

    /// The same timing for a phone with RFC 5626 flows on (or off).
    pub fn with_sip_outbound(mut self, on: bool) -> Timing {
        self.sip_outbound = on;
        self
    }

    /// The least time between two background attempts at a failed primary: the probe interval,
    /// or with RFC 5626 the least §4.5 backoff (after one failure, `base-time * 2 * 0.5`).
    pub fn probe_spacing(&self) -> Duration {
        if self.sip_outbound { self.timers.outbound.base_time } else { self.timers.failback_probe }
    }

    /// The RFC 5626 §4.5 bounds of the wait before attempt `failures + 1` at a failed flow:
    /// `min(max-time, base-time * 2^failures)` times 0.5 to 1.
    pub fn backoff_bounds(&self, failures: u32) -> (Duration, Duration) {
        let outbound = &self.timers.outbound;
        let upper = outbound.base_time.saturating_mul(1 << failures.min(30)).min(outbound.max_time);
        (upper / 2, upper)
    }

    pub fn jitter(&self) -> Duration {
        SCHEDULING_JITTER
    }

    fn with_jitter(&self, deadline: Deadline) -> Deadline {
        deadline.plus("scheduling jitter", self.jitter())
    }

    /// The phone's start: its first request (profile), one authentication round trip, jitter.
    pub fn startup(&self) -> Deadline {
        self.with_jitter(Deadline::of("start-up (profile)", self.capabilities.startup))
    }

    /// How long a non-INVITE transaction runs before the phone declares a timeout.
    pub fn transaction_timeout(&self) -> Duration {
        match self.capabilities.timeout_model {
            TimeoutModel::TransactionTimer => self.timers.transaction_timer,
            TimeoutModel::SixtyFourT1 => self.timers.t1 * 64,
        }
    }

    fn timeout_term(&self) -> &'static str {
        match self.capabilities.timeout_model {
            TimeoutModel::TransactionTimer => "transaction timer",
            TimeoutModel::SixtyFourT1 => "64*T1",
        }
    }

    /// How long the phone takes to notice `fault` on a request it sent.
    pub fn detect(&self, fault: Fault) -> Deadline {
        let by_timeout =
            || Deadline::of(format!("{fault} detected by the {}", self.timeout_term()), self.transaction_timeout());
        match fault {
            Fault::Silent | Fault::Stall => by_timeout(),
            Fault::Refuse if self.capabilities.reads_icmp => {
                Deadline::of("refuse detected by ICMP/RST", Duration::ZERO)
            }
            Fault::Refuse => by_timeout(),
            Fault::Reject { .. } => Deadline::of(format!("{fault} answered at once"), Duration::ZERO),
            // A slow server answers within the transaction timer: nothing to detect.
            Fault::Delay { ms } => Deadline::of(format!("{fault} answer"), Duration::from_millis(ms.into())),
        }
    }

    /// How long the phone takes to notice `fault` on an element behind an outbound proxy: the
    /// proxy relays what the element answers, but a closed port or a swallowed request there
    /// reaches the phone only as silence, so it is found by the timeout.
    pub fn detect_through_outbound(&self, fault: Fault) -> Deadline {
        match fault {
            Fault::Refuse => Deadline::of(
                format!("refuse behind the outbound proxy detected by the {}", self.timeout_term()),
                self.transaction_timeout(),
            ),
            other => self.detect(other),
        }
    }

    /// The expiry the phone asks for; a registration must be refreshed before it runs out.
    pub fn registration_expiry(&self) -> Duration {
        self.timers.registration_period
    }

    /// The longest until the phone's next REGISTER: the refresh point the profile declares (a
    /// share of the granted expiry, RFC 3261 §10.2.4).
    pub fn next_register(&self) -> Deadline {
        let share = self.capabilities.refresh_share;
        Deadline::of(
            format!("next REGISTER at {share} of the {} s expiry", self.timers.registration_period.as_secs_f64()),
            self.timers.registration_period.mul_f64(share),
        )
    }

    /// The longest until the phone's next SUBSCRIBE refresh.
    pub fn next_subscribe(&self) -> Deadline {
        let share = self.capabilities.refresh_share;
        Deadline::of(
            format!("next SUBSCRIBE at {share} of the {} s expiry", self.timers.subscription_period.as_secs_f64()),
            self.timers.subscription_period.mul_f64(share),
        )
    }

    /// After a fault on the active registrar: the next REGISTER, its failure detected (`detect`:
    /// [`Timing::detect`], or [`Timing::detect_through_outbound`]), the REGISTER to the backup
    /// and its authentication round trip (loopback: within the jitter).
    pub fn registrar_failover(&self, detect: Deadline) -> Deadline {
        self.with_jitter(self.next_register().and(detect))
    }

    /// After a fault on the active proxy: its next request (a subscription refresh), its
    /// failure detected, then the new registration and subscriptions.
    pub fn proxy_failover(&self, detect: Deadline) -> Deadline {
        self.with_jitter(self.next_subscribe().and(detect))
    }

    /// After a fault on the active outbound proxy: the next request through it (a registration
    /// or, when `subscriptions`, a subscription refresh: whichever comes first), its failure
    /// detected, then the moves.
    pub fn outbound_failover(&self, fault: Fault, subscriptions: bool) -> Deadline {
        let next = if subscriptions && self.timers.subscription_period < self.timers.registration_period {
            self.next_subscribe()
        } else {
            self.next_register()
        };
        self.with_jitter(next.and(self.detect(fault)))
    }

    /// After a primary returns: the next probe (a probe in flight when it returned may still time
    /// out first), its answer, then the moves back.
    pub fn failback(&self) -> Deadline {
        let next_attempt = if self.sip_outbound {
            Deadline::of("the RFC 5626 reconnect backoff, at most max-time", self.timers.outbound.max_time)
        } else {
            Deadline::of("probe interval", self.timers.failback_probe)
        };
        self.with_jitter(
            next_attempt
                .plus(format!("a probe in flight timing out ({})", self.timeout_term()), self.transaction_timeout()),
        )
    }

    /// After a `Dial:` push: the INVITE, with at most one DNS lookup or new flow before it.
    pub fn dial(&self) -> Deadline {
        let mut deadline = Deadline::default();
        if !self.capabilities.reaction.is_zero() {
            deadline = deadline.plus("the phone acting on the command (profile)", self.capabilities.reaction);
        }
        self.with_jitter(deadline.plus(
            format!("a DNS lookup or a new flow before the INVITE (one {})", self.timeout_term()),
            self.transaction_timeout(),
        ))
    }

    /// A window over which steady state is observed: two refresh intervals (at the declared
    /// refresh point) of the longer expiry, so at least two refreshes fall inside it.
    pub fn steady_window(&self) -> Duration {
        self.timers
            .registration_period
            .max(self.timers.subscription_period)
            .mul_f64(self.capabilities.refresh_share * 2.0)
    }

    /// The watchdog budget for a whole case: generous, so it trips only on a livelock.
    pub fn case_budget(&self) -> Duration {
        self.startup().limit()
            + (self.timers.registration_period + self.transaction_timeout() + self.timers.registration_retry) * 8
            + self.failback().limit() * 4
            + self.steady_window() * 4
            + Duration::from_secs(10)
    }
}
