//! refphone, the reference phone: an executable model of the vendor's SIP phone that the harness's suites run against in CI.
//!
//! [`config`] reads the vendor's cfg files; [`core`] is the sans-IO phone (every decision, time
//! as an input; the failover state machine of the seed's three rows is [`core::routing`]); [`io`]
//! runs the core on tokio sockets (UDP, TCP, TLS), a DNS resolver, timers and the XML push
//! listener; [`push`] parses the vendor's XML push; [`state`] keeps the `+sip.instance` across
//! restarts; [`quirks`] are the deliberate breakages that prove each conformance case can fail.

pub mod config;
pub mod core;
pub mod error;
pub mod io;
pub mod push;
pub mod quirks;
pub mod state;

pub use error::PhoneError;

/// The User-Agent the phone sends: `refphone/<version>`.
pub fn user_agent() -> String {
    format!("refphone/{}", env!("CARGO_PKG_VERSION"))
}
