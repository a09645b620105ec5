//! The timing of a client transaction (RFC 3261 §17.1): when to retransmit over UDP, when to give up, for INVITE and non-INVITE.

use std::time::{Duration, Instant};

use crate::config::SipTimers;

/// Which state machine of RFC 3261 §17.1 a client transaction follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionKind {
    /// Figure 5: Timer A doubles without a cap, Timer B; a provisional response stops both.
    Invite,
    /// Figure 6: Timer E doubles up to T2 (every T2 once a provisional arrived), Timer F.
    NonInvite,
}

/// Where a client transaction stands; it ends with its final response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionState {
    /// Sent, nothing heard yet.
    Trying,
    /// A provisional response arrived.
    Proceeding,
}

/// How long an INVITE client transaction stays in Completed after a non-2xx final response, to
/// ACK each retransmission of it (Timer D, RFC 3261 §17.1.1.2): 64*T1 on UDP (32 s at the default
/// T1, the RFC's minimum; lab timers shorten it with T1), zero on TCP/TLS, where nothing is retransmitted.
pub fn timer_d(reliable: bool, timers: &SipTimers) -> Duration {
    if reliable { Duration::ZERO } else { timers.t1 * 64 }
}

/// The retransmission schedule and deadline of one client transaction; holds no message and does no I/O.
#[derive(Debug, Clone)]
pub struct ClientTransactionTimer {
    kind: TransactionKind,
    state: TransactionState,
    /// Over TCP or TLS nothing is retransmitted (RFC 3261 §17.1.1.2, §17.1.2.2).
    reliable: bool,
    t2: Duration,
    /// The current Timer A or E interval.
    interval: Duration,
    next_retransmit: Instant,
    /// Timer B or F: the vendor's `sip transaction timer` from the first transmission; `None`
    /// once an INVITE got a provisional response (the caller then decides when to give up).
    deadline: Option<Instant>,
}

impl ClientTransactionTimer {
    /// A non-INVITE transaction over UDP whose request was first sent at `now`.
    pub fn start(now: Instant, timers: &SipTimers) -> ClientTransactionTimer {
        ClientTransactionTimer::start_of(TransactionKind::NonInvite, false, now, timers)
    }

    /// A transaction of `kind`, over a reliable transport or not, first sent at `now`.
    pub fn start_of(kind: TransactionKind, reliable: bool, now: Instant, timers: &SipTimers) -> ClientTransactionTimer {
        ClientTransactionTimer {
            kind,
            state: TransactionState::Trying,
            reliable,
            t2: timers.t2,
            interval: timers.t1,
            next_retransmit: now + timers.t1,
            deadline: Some(now + timers.transaction_timer),
        }
    }

    pub fn state(&self) -> TransactionState {
        self.state
    }

    /// When the request is next retransmitted, unless the transaction times out first.
    pub fn next_retransmit(&self) -> Option<Instant> {
        if self.reliable || (self.kind == TransactionKind::Invite && self.state == TransactionState::Proceeding) {
            return None;
        }
        match self.deadline {
            Some(deadline) => (self.next_retransmit < deadline).then_some(self.next_retransmit),
            None => Some(self.next_retransmit),
        }
    }

    /// When the transaction gives up (Timer B or F), if it still may.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The retransmission timer fired at `now`: whether to retransmit now. Moves the next retransmission on.
    pub fn on_retransmit_timer(&mut self, now: Instant) -> bool {
        if self.next_retransmit().is_none() || now < self.next_retransmit || self.has_timed_out(now) {
            return false;
        }
        self.interval = match (self.kind, self.state) {
            (TransactionKind::Invite, _) => self.interval * 2,
            (TransactionKind::NonInvite, TransactionState::Trying) => (self.interval * 2).min(self.t2),
            (TransactionKind::NonInvite, TransactionState::Proceeding) => self.t2,
        };
        self.next_retransmit = now + self.interval;
        true
    }

    /// A provisional response arrived. An INVITE transaction stops retransmitting and no longer times out.
    pub fn on_provisional(&mut self) {
        self.state = TransactionState::Proceeding;
        if self.kind == TransactionKind::Invite {
            self.deadline = None;
        }
    }

    /// The transaction must end by `deadline` whatever it hears before (an INVITE after its
    /// CANCEL, RFC 3261 §9.1).
    pub fn give_up_at(&mut self, deadline: Instant) {
        self.deadline = Some(self.deadline.map_or(deadline, |earlier| earlier.min(deadline)));
    }

    /// Whether Timer B or F has run out at `now`.
    pub fn has_timed_out(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|deadline| now >= deadline)
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
            ..SipTimers::default()
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
        assert_eq!(timer.deadline(), Some(start + Duration::from_secs(4)));
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

    #[test]
    fn an_invite_doubles_timer_a_without_the_t2_cap() {
        let start = Instant::now();
        let timer = ClientTransactionTimer::start_of(TransactionKind::Invite, false, start, &timers(100, 400, 3200));
        assert_eq!(schedule(timer, start), vec![100, 300, 700, 1500, 3100]);
    }

    #[test]
    fn a_provisional_response_stops_an_invite_retransmitting_and_timing_out() {
        let start = Instant::now();
        let mut timer =
            ClientTransactionTimer::start_of(TransactionKind::Invite, false, start, &timers(100, 400, 1000));
        timer.on_provisional();
        assert_eq!(timer.next_retransmit(), None);
        assert_eq!(timer.deadline(), None);
        assert!(!timer.has_timed_out(start + Duration::from_secs(60)));
    }

    #[test]
    fn timer_d_is_64_t1_on_udp_and_zero_on_a_reliable_transport() {
        assert_eq!(timer_d(false, &SipTimers::default()), Duration::from_secs(32));
        assert_eq!(timer_d(false, &timers(100, 400, 1000)), Duration::from_millis(6400));
        assert_eq!(timer_d(true, &SipTimers::default()), Duration::ZERO);
    }

    #[test]
    fn nothing_is_retransmitted_over_a_reliable_transport_but_the_timer_still_runs() {
        let start = Instant::now();
        let timer = ClientTransactionTimer::start_of(TransactionKind::NonInvite, true, start, &timers(100, 400, 1000));
        assert_eq!(timer.next_retransmit(), None);
        assert!(timer.has_timed_out(start + Duration::from_millis(1000)));
    }
}
