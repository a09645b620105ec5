//! The SIP message layer: parses and prints SIP messages without doing any I/O, and never panics on any input.
//!
//! Incoming bytes are parsed tolerantly into a [`Message`] that keeps its raw bytes; header values stay
//! text until a typed view ([`Via`], [`NameAddr`], [`CSeq`], ...) is asked for, so one bad header never
//! hides the rest of a message. A message that cannot be framed at all is a [`Malformed`] value with
//! diagnostics, never a crash. Stream framing ([`StreamFramer`]) and datagram classification
//! ([`classify_datagram`]) tell RFC 5626 keep-alives and STUN apart from SIP.

mod auth;
mod error;
mod framing;
mod header;
mod lint;
mod message;
mod params;
mod scan;
mod stun;
mod uri;
mod views;

pub use auth::{Challenge, Credentials, DigestInput, digest_response};
pub use error::{Diagnostic, Error, Malformed, Severity};
pub use framing::{DatagramKind, Frame, FramerRole, StreamFramer, classify_datagram};
pub use header::{Header, HeaderName};
pub use lint::{LintReport, lint_datagram};
pub use message::{Message, Method, StartLine, reason_phrase};
pub use params::{Param, Params};
pub use stun::{StunClass, StunMessage};
pub use uri::{Host, Scheme, SipUri, Uri};
pub use views::{CSeq, Contact, NameAddr, RetryAfter, SubscriptionState, Via, split_list};

/// The magic cookie every RFC 3261 branch starts with.
pub const BRANCH_MAGIC_COOKIE: &str = "z9hG4bK";
