//! The timing of a non-INVITE client transaction over UDP (RFC 3261 §17.1.2): when to retransmit, when to give up.

use std::time::{Duration, Instant};

use crate::config::SipTimers;

/// Where a non-INVITE client transaction stands (RFC 3261 Figure 6); it ends with its final response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionState {
    /// Sent, nothing heard yet: retransmit at T1, doubling up to T2 (Timer E).
    Trying,
    /// A provisional response arrived: retransmit every T2.
    Proceeding,
}

/// The retransmission schedule and deadline of one client transaction; holds no message and does no I/O.
#[derive(Debug, Clone)]
pub struct ClientTransactionTimer {
    state: TransactionState,
    t2: Duration,
    /// The current Timer E interval.
    interval: Duration,
    next_retransmit: Instant,
    /// Timer F: the vendor's `sip transaction timer` from the first transmission.
    deadline: Instant,
}

impl ClientTransactionTimer {
    /// A transaction whose request was first sent at `now`.
    pub fn start(now: Instant, timers: &SipTimers) -> ClientTransactionTimer {
        ClientTransactionTimer {
            state: TransactionState::Trying,
            t2: timers.t2,
            interval: timers.t1,
            next_retransmit: now + timers.t1,
            deadline: now + timers.transaction_timer,
        }
    }

    pub fn state(&self) -> TransactionState {
        self.state
    }

    /// When the request is next retransmitted, unless the transaction times out first.
    pub fn next_retransmit(&self) -> Option<Instant> {
        (self.next_retransmit < self.deadline).then_some(self.next_retransmit)
    }

    /// When the transaction gives up (Timer F).
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Timer E fired at `now`: whether to retransmit now. Moves the next retransmission on.
    pub fn on_retransmit_timer(&mut self, now: Instant) -> bool {
        if now < self.next_retransmit || now >= self.deadline {
            return false;
        }
        self.interval = match self.state {
            TransactionState::Trying => (self.interval * 2).min(self.t2),
            TransactionState::Proceeding => self.t2,
        };
        self.next_retransmit = now + self.interval;
        true
    }

    /// A provisional response arrived.
    pub fn on_provisional(&mut self) {
        self.state = TransactionState::Proceeding;
    }

    /// Whether Timer F has run out at `now`.
    pub fn has_timed_out(&self, now: Instant) -> bool {
        now >= self.deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timers(t1: u64, t2: u64, transaction: u64) -> SipTimers {
        SipTimers {
            t1: Duration::from_millis(t1),
            t2: Duration::from_millis(t2),
            transaction_timer: Duration::from_millis(transaction),
            registration_retry: Duration::from_secs(1),
            registration_timeout_retry: Duration::from_secs(1),
        }
    }

    /// Offsets in ms from the start at which the request is retransmitted.
    fn schedule(mut timer: ClientTransactionTimer, start: Instant) -> Vec<u128> {
        let mut sent = Vec::new();
        while let Some(at) = timer.next_retransmit() {
            assert!(timer.on_retransmit_timer(at));
            sent.push((at - start).as_millis());
        }
        sent
    }

    #[test]
    fn retransmits_at_t1_doubling_up_to_t2_until_the_transaction_timer() {
        let start = Instant::now();
        let timer = ClientTransactionTimer::start(start, &timers(500, 4000, 32000));
        assert_eq!(schedule(timer, start), vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]);
    }

    #[test]
    fn the_vendor_default_gives_up_after_four_seconds() {
        let start = Instant::now();
        let timer = ClientTransactionTimer::start(start, &timers(500, 4000, 4000));
        assert_eq!(timer.deadline() - start, Duration::from_secs(4));
        assert_eq!(schedule(timer, start), vec![500, 1500, 3500]);
    }

    #[test]
    fn a_provisional_response_slows_retransmission_to_t2() {
        let start = Instant::now();
        let mut timer = ClientTransactionTimer::start(start, &timers(100, 400, 2000));
        timer.on_provisional();
        assert_eq!(timer.state(), TransactionState::Proceeding);
        assert_eq!(schedule(timer, start), vec![100, 500, 900, 1300, 1700]);
    }

    #[test]
    fn an_early_or_late_timer_does_not_retransmit() {
        let start = Instant::now();
        let mut timer = ClientTransactionTimer::start(start, &timers(100, 400, 1000));
        assert!(!timer.on_retransmit_timer(start + Duration::from_millis(50)));
        assert!(!timer.on_retransmit_timer(start + Duration::from_millis(1000)));
        assert!(timer.has_timed_out(start + Duration::from_millis(1000)));
    }
}
