//! Random identifiers the phone puts on the wire: branches, tags, Call-IDs, cnonces; seeded so tests are repeatable.

use std::net::IpAddr;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Makes fresh identifiers from one seeded generator.
#[derive(Debug)]
pub struct IdGenerator {
    rng: StdRng,
}

impl IdGenerator {
    pub fn seeded(seed: u64) -> IdGenerator {
        IdGenerator { rng: StdRng::seed_from_u64(seed) }
    }

    fn hex(&mut self, bytes: usize) -> String {
        let mut out = String::with_capacity(bytes * 2);
        for _ in 0..bytes {
            let byte: u8 = self.rng.random();
            out.push_str(&format!("{byte:02x}"));
        }
        out
    }

    /// A Via branch with the RFC 3261 magic cookie.
    pub fn branch(&mut self) -> String {
        format!("{}{}", sip::BRANCH_MAGIC_COOKIE, self.hex(8))
    }

    /// A From or To tag.
    pub fn tag(&mut self) -> String {
        self.hex(5)
    }

    /// A Call-ID naming the phone's own address.
    pub fn call_id(&mut self, bind_ip: IpAddr) -> String {
        format!("{}@{}", self.hex(10), sip::Host::from(bind_ip))
    }

    /// A digest client nonce.
    pub fn cnonce(&mut self) -> String {
        self.hex(8)
    }
}

impl IdGenerator {
    /// A uniform random number in [0, 1), for the random parts of RFC 5626 timers.
    pub fn unit(&mut self) -> f64 {
        self.rng.random::<f64>()
    }

    /// A STUN transaction id.
    pub fn stun_transaction_id(&mut self) -> [u8; 12] {
        self.rng.random()
    }

    /// An SDP session id.
    pub fn session_id(&mut self) -> u32 {
        self.rng.random_range(1..u32::MAX / 2)
    }
}
