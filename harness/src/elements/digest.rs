//! The registrar's digest nonces (RFC 7616 §3.3-3.4, RFC 2617 §3.2): each lives a bounded time, its nonce count must grow, and the number alive is capped.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use sip::Credentials;
use tokio::time::Instant;

/// How many nonces live at once at most; the oldest go first. Sized for load: at 20k challenges
/// a second a nonce must survive the round trip of its answer, and 32768 (about 3 MB) leaves 1.6 s.
const MAX_NONCES: usize = 32768;

/// What the nonce of some credentials is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NonceCheck {
    /// Fresh, and its count grew (or no `qop`, so no count to check).
    Fresh,
    /// Expired or unknown: a new challenge with `stale=true` when the digest itself was right.
    Stale,
    /// A count not above the last one seen for this nonce: a replay.
    Replayed,
}

#[derive(Debug)]
struct NonceState {
    expires_at: Instant,
    /// The highest `nc` accepted with this nonce.
    last_count: Option<u32>,
}

#[derive(Debug)]
pub(crate) struct Nonces {
    lifetime: Duration,
    live: HashMap<String, NonceState>,
    /// Nonces in order of issue: every one lives as long, so this is also the order they expire.
    order: VecDeque<String>,
}

impl Nonces {
    pub fn new(lifetime: Duration) -> Nonces {
        Nonces { lifetime, live: HashMap::new(), order: VecDeque::new() }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(nonce) = self.order.front() {
            let gone = self.live.get(nonce).is_none_or(|n| n.expires_at <= now);
            if !gone && self.order.len() <= MAX_NONCES {
                break;
            }
            if let Some(nonce) = self.order.pop_front() {
                self.live.remove(&nonce);
            }
        }
    }

    pub fn issue(&mut self, nonce: String, now: Instant) {
        self.live.insert(nonce.clone(), NonceState { expires_at: now + self.lifetime, last_count: None });
        self.order.push_back(nonce);
        self.expire(now);
    }

    /// Checks the nonce and count of credentials whose digest is right, and takes the count.
    pub fn check(&mut self, credentials: &Credentials, now: Instant) -> NonceCheck {
        self.expire(now);
        let Some(state) = credentials.params.value("nonce").and_then(|n| self.live.get_mut(n)) else {
            return NonceCheck::Stale;
        };
        if credentials.params.value("qop").is_none() {
            return NonceCheck::Fresh;
        }
        match credentials.nonce_count() {
            Some(count) if state.last_count.is_none_or(|last| count > last) => {
                state.last_count = Some(count);
                NonceCheck::Fresh
            }
            _ => NonceCheck::Replayed,
        }
    }

    pub fn clear(&mut self) {
        self.live.clear();
        self.order.clear();
    }
}

#[cfg(test)]
mod tests {
    use sip::Challenge;

    use super::*;

    fn credentials(nonce: &str, nc: u32) -> Credentials {
        let challenge = Challenge::digest("lab.test", nonce, None, true);
        Credentials::answer(&challenge, "1001", "secret", "REGISTER", "sip:lab.test", "c0ffee", nc)
    }

    #[test]
    fn counts_must_grow_and_nonces_expire() {
        let t0 = Instant::now();
        let mut nonces = Nonces::new(Duration::from_secs(300));
        nonces.issue("n1".into(), t0);
        assert_eq!(nonces.check(&credentials("n1", 1), t0), NonceCheck::Fresh);
        assert_eq!(nonces.check(&credentials("n1", 1), t0), NonceCheck::Replayed);
        assert_eq!(nonces.check(&credentials("n1", 3), t0), NonceCheck::Fresh);
        assert_eq!(nonces.check(&credentials("n1", 2), t0), NonceCheck::Replayed);
        assert_eq!(nonces.check(&credentials("n1", 4), t0 + Duration::from_secs(300)), NonceCheck::Stale);
        assert_eq!(nonces.check(&credentials("never-issued", 1), t0), NonceCheck::Stale);
    }

    #[test]
    fn live_nonces_are_capped() {
        let t0 = Instant::now();
        let mut nonces = Nonces::new(Duration::from_secs(300));
        for n in 0..MAX_NONCES + 5 {
            nonces.issue(format!("n{n}"), t0);
        }
        assert_eq!(nonces.live.len(), MAX_NONCES);
        assert_eq!(nonces.check(&credentials("n0", 1), t0), NonceCheck::Stale, "the oldest went");
    }
}
