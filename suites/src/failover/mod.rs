//! Failover: the servers break, the phone must move its registration (and later its AOR and subscriptions) as the seed's table says.

mod no_outbound;

use harness::Case;

pub fn cases() -> Vec<Case> {
    no_outbound::cases()
}
