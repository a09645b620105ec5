//! refphone, the reference phone: an executable model of the vendor's SIP phone that the harness's suites run against in CI.
//!
//! [`config`] reads the vendor's cfg files; [`core`] is the sans-IO phone (every decision, time
//! as an input); [`io`] runs the core on tokio sockets, a DNS resolver and timers; [`quirks`] are
//! the deliberate breakages that prove each conformance case can fail.

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
