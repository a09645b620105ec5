//! The timing model: every deadline a case waits with, derived from the timers the harness provisioned and the behaviour the DUT profile declares.

use std::time::Duration;

use crate::dut::{Capabilities, TimeoutModel};
use crate::faults::Fault;
use crate::provision::Timers;

/// Scheduling jitter allowed on top of every derived deadline: the harness, the phone and the
/// kernel share two cores in CI. Reported with each verdict's expectation text.
pub const SCHEDULING_JITTER: Duration = Duration::from_millis(400);

/// Deadlines for one case.
#[derive(Debug, Clone)]
pub struct Timing {
    pub timers: Timers,
    pub capabilities: Capabilities,
}

impl Timing {
    pub fn new(timers: Timers, capabilities: Capabilities) -> Timing {
        Timing { timers, capabilities }
    }

    pub fn jitter(&self) -> Duration {
        SCHEDULING_JITTER
    }

    /// How long after start the phone may take to send its first REGISTER (profile), plus jitter.
    pub fn startup(&self) -> Duration {
        self.capabilities.startup + self.jitter()
    }

    /// How long a non-INVITE transaction runs before the phone declares a timeout.
    pub fn transaction_timeout(&self) -> Duration {
        match self.capabilities.timeout_model {
            TimeoutModel::TransactionTimer => self.timers.transaction_timer,
            TimeoutModel::SixtyFourT1 => self.timers.t1 * 64,
        }
    }

    /// How long the phone takes to notice `fault` on a request it sent.
    pub fn detect(&self, fault: Fault) -> Duration {
        match fault {
            Fault::Silent => self.transaction_timeout(),
            Fault::Refuse if self.capabilities.reads_icmp => Duration::ZERO,
            Fault::Refuse => self.transaction_timeout(),
            Fault::Reject { .. } => Duration::ZERO,
            // A stalled flow answers nothing: a request on it times out (keep-alive detection,
            // with its pong timeout, comes with RFC 5626 cases).
            Fault::Stall => self.transaction_timeout(),
        }
    }

    /// The expiry the phone asks for; a registration must be refreshed before it runs out.
    pub fn registration_expiry(&self) -> Duration {
        self.timers.registration_period
    }

    /// The longest a phone may wait before it next sends a REGISTER: it must refresh before its
    /// binding expires (RFC 3261 §10.2.4), so within one registration period.
    pub fn next_register(&self) -> Duration {
        self.timers.registration_period
    }

    /// After a fault on the active registrar: the next REGISTER, its failure detected, and the
    /// REGISTER to the backup; an authentication round trip included.
    pub fn registrar_failover(&self, fault: Fault) -> Duration {
        self.next_register() + self.detect(fault) + self.jitter()
    }

    /// After a fault on the active proxy: the next request to it (a subscription refresh, within
    /// one subscription period), its failure detected, then the new registration and subscriptions.
    pub fn proxy_failover(&self, fault: Fault) -> Duration {
        self.timers.subscription_period + self.detect(fault) + self.transaction_timeout() + self.jitter()
    }

    /// After a fault on the active outbound proxy: the next request through it (a refresh, within
    /// one registration or subscription period), its failure detected, then the moves.
    pub fn outbound_failover(&self, fault: Fault) -> Duration {
        self.timers.registration_period.max(self.timers.subscription_period)
            + self.detect(fault)
            + self.transaction_timeout()
            + self.jitter()
    }

    /// After a primary returns: the phone probes it every `failback_probe`; a probe in flight when
    /// it returned may still time out, so two probe intervals and one transaction, then the
    /// moves back with one authentication round trip.
    pub fn failback(&self) -> Duration {
        self.timers.failback_probe * 2 + self.transaction_timeout() * 2 + self.jitter()
    }

    /// The watchdog budget for a whole case: generous, so it trips only on a livelock.
    pub fn case_budget(&self) -> Duration {
        self.startup()
            + (self.next_register() + self.transaction_timeout() + self.timers.registration_retry) * 6
            + self.failback() * 2
            + Duration::from_secs(10)
    }
}
