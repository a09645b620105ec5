//! The phone library's one error type: what stops refphone from starting or running.

use std::path::PathBuf;

/// Why refphone cannot start or go on. Configuration and usage errors map to exit code 2.
/// Each message is complete on its own line: an I/O cause is part of it, not a separate source.
#[derive(Debug, thiserror::Error)]
pub enum PhoneError {
    /// A cfg file could not be read.
    #[error("{}: cannot read: {cause}", file.display())]
    ConfigUnreadable { file: PathBuf, cause: std::io::Error },

    /// One line of a cfg file is malformed or names an unknown key, or its value does not fit the key.
    #[error("{}:{line_number}: {key}: {reason}", file.display())]
    ConfigLine { file: PathBuf, line_number: usize, key: String, reason: String },

    /// The cfg as a whole lacks something the phone needs, or contradicts itself.
    #[error("cfg: {0}")]
    ConfigIncomplete(String),

    /// A command-line value is malformed (the flags themselves are checked by clap).
    #[error("{flag}: {reason}")]
    BadFlag { flag: &'static str, reason: String },

    /// `--quirk` named a quirk that does not exist.
    #[error("unknown quirk {name:?}; known quirks: {known}")]
    UnknownQuirk { name: String, known: String },

    /// A socket could not be opened, bound or connected.
    #[error("{context}: {cause}")]
    Socket { context: String, cause: std::io::Error },

    /// The state directory could not be written.
    #[error("{}: cannot keep the phone's state: {cause}", path.display())]
    StateDir { path: PathBuf, cause: std::io::Error },

    /// The TLS trust anchors (`--ca`) could not be read.
    #[error("{}: {reason}", file.display())]
    TrustAnchors { file: PathBuf, reason: String },

    /// The HTTP listener for the XML push could not be opened.
    #[error("XML push on {address}: {cause}")]
    PushListener { address: std::net::SocketAddr, cause: std::io::Error },

    /// The DNS resolver could not be built.
    #[error("DNS resolver: {0}")]
    Resolver(String),
}

impl PhoneError {
    /// Whether the error is the user's (bad flags, bad cfg): those exit with code 2.
    pub fn is_usage_error(&self) -> bool {
        !matches!(
            self,
            PhoneError::Socket { .. }
                | PhoneError::Resolver(_)
                | PhoneError::StateDir { .. }
                | PhoneError::PushListener { .. }
        )
    }
}
