//! Lint: judges one datagram against the RFC 3261 §25 grammar (errors) and rules the grammar allows but RFCs forbid (warnings).

use crate::error::{Diagnostic, Severity};
use crate::header::HeaderName;
use crate::{Message, BRANCH_MAGIC_COOKIE};

/// The verdict on one datagram.
#[derive(Debug, Clone)]
pub struct LintReport {
    pub diagnostics: Vec<Diagnostic>,
}

impl LintReport {
    /// Whether any diagnostic is an error: the message is malformed.
    pub fn is_malformed(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity == Severity::Error)
    }
}

/// Lints `bytes` as one UDP datagram.
pub fn lint_datagram(bytes: &[u8]) -> LintReport {
    let message = match Message::parse(bytes) {
        Ok(message) => message,
        Err(malformed) => return LintReport { diagnostics: malformed.diagnostics },
    };
    let mut diagnostics = message.diagnostics.clone();
    grammar_errors(&message, &mut diagnostics);
    rule_warnings(&message, &mut diagnostics);
    diagnostics.sort_by(|a, b| b.severity.cmp(&a.severity));
    LintReport { diagnostics }
}

/// Every header this crate has a typed view for must parse with it.
fn grammar_errors(message: &Message, out: &mut Vec<Diagnostic>) {
    let mut check = |result: Result<(), crate::Error>| {
        if let Err(e) = result {
            out.push(Diagnostic::error("grammar", e.to_string()));
        }
    };
    if let Some(uri) = message.request_uri() {
        check(uri.map(drop));
    }
    let present = |name: HeaderName| message.header(&name).is_some();
    if present(HeaderName::Via) {
        check(message.vias().map(drop));
    }
    if present(HeaderName::From) {
        check(message.from().map(drop));
    }
    if present(HeaderName::To) {
        check(message.to().map(drop));
    }
    if present(HeaderName::CallId) {
        check(message.call_id().map(drop));
    }
    if present(HeaderName::CSeq) {
        check(message.cseq().map(drop));
    }
    check(message.contacts().map(drop));
    check(message.routes().map(drop));
    check(message.record_routes().map(drop));
    check(message.paths().map(drop));
    check(message.expires().map(drop));
    check(message.min_expires().map(drop));
    check(message.max_forwards().map(drop));
    check(message.flow_timer().map(drop));
    check(message.event().map(drop));
    check(message.subscription_state().map(drop));
    check(message.retry_after().map(drop));
    check(message.challenges().map(drop));
    check(message.credentials(false).map(drop));
    check(message.credentials(true).map(drop));
}

fn rule_warnings(message: &Message, out: &mut Vec<Diagnostic>) {
    for (name, label) in [
        (HeaderName::Via, "Via"),
        (HeaderName::From, "From"),
        (HeaderName::To, "To"),
        (HeaderName::CallId, "Call-ID"),
        (HeaderName::CSeq, "CSeq"),
    ] {
        if message.header(&name).is_none() {
            out.push(Diagnostic::warning("missing-header", format!("no {label} header (RFC 3261 §8.1.1)")));
        }
    }
    if message.is_request() {
        if message.header(&HeaderName::MaxForwards).is_none() {
            out.push(Diagnostic::warning("no-max-forwards", "request without Max-Forwards (RFC 3261 §8.1.1.6)"));
        }
        if let Ok(via) = message.top_via() {
            match via.branch() {
                None => out.push(Diagnostic::warning("no-branch", "top Via has no branch (RFC 3261 §8.1.1.7)")),
                Some(b) if !b.starts_with(BRANCH_MAGIC_COOKIE) => out.push(Diagnostic::warning(
                    "branch-cookie",
                    format!("branch {b:?} lacks the magic cookie z9hG4bK (RFC 3261 §8.1.1.7)"),
                )),
                Some(_) => {}
            }
        }
        if let Ok(cseq) = message.cseq() {
            if let Some(method) = message.method() {
                if &cseq.method != method {
                    out.push(Diagnostic::warning(
                        "cseq-method",
                        format!("CSeq method {} differs from the request method {method} (RFC 3261 §8.1.1.5)", cseq.method),
                    ));
                }
            }
        }
        let reg_id = message.contacts().unwrap_or_default().iter().any(|c| c.reg_id().is_some());
        if reg_id && !message.has_option_tag(&HeaderName::Supported, "outbound") {
            out.push(Diagnostic::warning(
                "reg-id-without-outbound",
                "Contact has reg-id but Supported lacks 'outbound' (RFC 5626 §4.2.1)",
            ));
        }
    }
}
