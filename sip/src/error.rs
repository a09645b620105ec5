//! The crate's one error type, and diagnostics attached to messages that parsed with complaints.

use std::fmt;

/// Why a typed view or a builder could not produce a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("header {header} is missing")]
    MissingHeader { header: &'static str },
    #[error("{what} is malformed: {detail}")]
    Syntax { what: &'static str, detail: String },
}

impl Error {
    pub(crate) fn syntax(what: &'static str, detail: impl Into<String>) -> Error {
        Error::Syntax { what, detail: detail.into() }
    }
}

/// How bad a diagnostic is (BRIEF §5): an `Error` breaks the RFC 3261 §25 grammar or framing;
/// `Invalid` parses but breaks a rule that makes a receiving element reject it with 400; a
/// `Warning` breaks a rule a receiver tolerates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Invalid,
    Error,
}

/// One complaint about a message, with a short stable code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Error, code, message: message.into() }
    }
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Invalid, code, message: message.into() }
    }
    pub fn warning(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, code, message: message.into() }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Warning => "warning",
            Severity::Invalid => "invalid",
            Severity::Error => "error",
        };
        write!(f, "{level}[{}]: {}", self.code, self.message)
    }
}

/// Bytes that could not be parsed into a message at all, kept with the reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub raw: Vec<u8>,
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for diagnostic in &self.diagnostics {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}
