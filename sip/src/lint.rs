//! Lint: judges one datagram against the RFC 3261 §25 grammar (errors), the rules whose breach makes a receiving element answer 400 (invalid), and rules a receiver tolerates (warnings).
//!
//! The split follows BRIEF §5: an error means the message breaks the grammar or cannot be framed
//! (Content-Length beyond the datagram); `invalid` means it parses but a receiving element must
//! reject it with 400 (a mandatory header missing or given twice, a CSeq method that differs from
//! the request's: RFC 3261 §8.1.1, RFC 4475 §3.1.2); what a receiver tolerates (no
//! Max-Forwards, a branch without the magic cookie, `reg-id` without `Supported: outbound`) and
//! octets after the body (RFC 4475 §3.1.1.8) are warnings.

use crate::error::{Diagnostic, Severity};
use crate::header::HeaderName;
use crate::scan::{find_unquoted, is_token};
use crate::{BRANCH_MAGIC_COOKIE, Challenge, Contact, Credentials, Message};

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

    /// Whether it parses but a receiving element must reject it with 400.
    pub fn is_invalid(&self) -> bool {
        !self.is_malformed() && self.diagnostics.iter().any(|d| d.severity == Severity::Invalid)
    }
}

/// Lints `bytes` as one UDP datagram. Errors come first, each group in the order found.
pub fn lint_datagram(bytes: &[u8]) -> LintReport {
    let message = match Message::parse(bytes) {
        Ok(message) => message,
        Err(malformed) => return LintReport { diagnostics: malformed.diagnostics },
    };
    let mut diagnostics = Vec::new();
    for diagnostic in &message.diagnostics {
        if diagnostic.code == "bare-lf" {
            // The tolerant parser reads LF-only lines; the grammar ends every line with CRLF.
            diagnostics.push(Diagnostic::error("bare-lf", "a line ends with LF instead of CRLF (RFC 3261 §25)"));
        } else {
            diagnostics.push(diagnostic.clone());
        }
    }
    grammar_errors(&message, &mut diagnostics);
    rule_warnings(&message, &mut diagnostics);
    diagnostics.sort_by_key(|d| std::cmp::Reverse(d.severity));
    LintReport { diagnostics }
}

fn grammar_error(out: &mut Vec<Diagnostic>, result: Result<(), crate::Error>) {
    if let Err(e) = result {
        out.push(Diagnostic::error("grammar", e.to_string()));
    }
}

/// Every header this crate has a typed view for must parse with it; numbers must be digits.
fn grammar_errors(message: &Message, out: &mut Vec<Diagnostic>) {
    for header in &message.headers {
        if let Some(offset) = bare_control_character(&header.value) {
            out.push(Diagnostic::error(
                "control-character",
                format!("{} holds a control character at offset {offset} (RFC 3261 §25 TEXT-UTF8)", header.name),
            ));
        }
    }
    if let Some(uri) = message.request_uri() {
        grammar_error(out, uri.map(drop));
    }
    let present = |name: HeaderName| message.header(&name).is_some();
    grammar_error(out, message.vias().map(drop));
    if present(HeaderName::From) {
        grammar_error(out, message.from().map(drop));
    }
    if present(HeaderName::To) {
        grammar_error(out, message.to().map(drop));
    }
    if present(HeaderName::CallId) {
        grammar_error(out, message.call_id().map(drop));
    }
    if let Some(cseq) = message.header(&HeaderName::CSeq)
        && !cseq_grammar_ok(cseq)
    {
        grammar_error(out, message.cseq().map(drop));
    }
    grammar_error(out, message.contacts().map(drop));
    grammar_error(out, message.routes().map(drop));
    grammar_error(out, message.record_routes().map(drop));
    grammar_error(out, message.paths().map(drop));
    for (name, label) in [
        (HeaderName::Expires, "Expires"),
        (HeaderName::MinExpires, "Min-Expires"),
        (HeaderName::MaxForwards, "Max-Forwards"),
        (HeaderName::FlowTimer, "Flow-Timer"),
    ] {
        for value in message.headers.iter().filter(|h| h.name == name).map(|h| h.value.as_str()) {
            if !is_digits(value) {
                out.push(Diagnostic::error("grammar", format!("{label} is malformed: expected digits, got {value:?}")));
            }
        }
    }
    for (name, label) in [
        (HeaderName::Supported, "Supported"),
        (HeaderName::Require, "Require"),
        (HeaderName::ProxyRequire, "Proxy-Require"),
        (HeaderName::Unsupported, "Unsupported"),
    ] {
        for tag in message.header_values(&name) {
            if !is_token(tag) {
                out.push(Diagnostic::error("grammar", format!("{label} is malformed: bad option tag {tag:?}")));
            }
        }
    }
    grammar_error(out, message.event().map(drop));
    grammar_error(out, message.subscription_state().map(drop));
    grammar_error(out, message.retry_after().map(drop));
    for header in &message.headers {
        let result = match header.name {
            HeaderName::WwwAuthenticate | HeaderName::ProxyAuthenticate => Challenge::parse(&header.value).map(drop),
            HeaderName::Authorization | HeaderName::ProxyAuthorization => Credentials::parse(&header.value).map(drop),
            _ => continue,
        };
        grammar_error(out, result);
    }
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
            out.push(Diagnostic::invalid(
                "missing-header",
                format!("no {label} header: a receiver answers 400 (RFC 3261 §8.1.1)"),
            ));
        }
    }
    for (name, label) in [
        (HeaderName::From, "From"),
        (HeaderName::To, "To"),
        (HeaderName::CallId, "Call-ID"),
        (HeaderName::CSeq, "CSeq"),
        (HeaderName::MaxForwards, "Max-Forwards"),
        (HeaderName::Expires, "Expires"),
        (HeaderName::MinExpires, "Min-Expires"),
    ] {
        if message.headers.iter().filter(|h| h.name == name).count() > 1 {
            // RFC 4475 §3.1.2 (invalid messages): several values where one is required get 400.
            let text = format!("{label} appears more than once but is not a list (RFC 3261 §7.3)");
            let mandatory = matches!(name, HeaderName::From | HeaderName::To | HeaderName::CallId | HeaderName::CSeq);
            out.push(if mandatory {
                Diagnostic::invalid("duplicate-header", format!("{text}: a receiver answers 400 (RFC 4475 §3.1.2)"))
            } else {
                Diagnostic::warning("duplicate-header", text)
            });
        }
    }
    range_warnings(message, out);
    contact_warnings(message, out);
    if !message.is_request() {
        return;
    }
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
    if let (Ok(cseq), Some(method)) = (message.cseq(), message.method())
        && &cseq.method != method
    {
        out.push(Diagnostic::invalid(
            "cseq-method",
            format!(
                "CSeq method {} differs from the request method {method}: a receiver answers 400 (RFC 3261 §8.1.1.5, RFC 4475 §3.1.2)",
                cseq.method
            ),
        ));
    }
    if let Some(Ok(uri)) = message.request_uri()
        && uri.as_sip().is_some_and(|u| u.headers.is_some())
    {
        out.push(Diagnostic::warning(
            "request-uri-headers",
            "the Request-URI carries headers, which it must not (RFC 3261 §19.1.1)",
        ));
    }
    let contacts = message.contacts().unwrap_or_default();
    let with_reg_id = || contacts.iter().filter_map(Contact::address).filter(|a| a.params.has("reg-id"));
    if with_reg_id().next().is_some() && !message.has_option_tag(&HeaderName::Supported, "outbound") {
        out.push(Diagnostic::warning(
            "reg-id-without-outbound",
            "Contact has reg-id but Supported lacks 'outbound' (RFC 5626 §4.2.1)",
        ));
    }
    if with_reg_id().any(|a| !a.params.has("+sip.instance")) {
        out.push(Diagnostic::warning(
            "reg-id-without-instance",
            "Contact has reg-id but no +sip.instance (RFC 5626 §4.2.1)",
        ));
    }
}

/// Numbers the grammar allows as digits but an RFC bounds.
fn range_warnings(message: &Message, out: &mut Vec<Diagnostic>) {
    let mut out_of_range = |message: String| out.push(Diagnostic::warning("out-of-range", message));
    if let Some(value) = message.header(&HeaderName::MaxForwards).filter(|v| is_digits(v))
        && value.parse::<u8>().is_err()
    {
        out_of_range(format!("Max-Forwards {value} exceeds 255 (RFC 3261 §20.22)"));
    }
    if let Some((seq, _)) = message.header(&HeaderName::CSeq).and_then(|v| v.trim().split_once([' ', '\t']))
        && is_digits(seq)
        && !seq.parse::<u32>().is_ok_and(|n| n < 1 << 31)
    {
        out_of_range(format!("CSeq number {seq} is not below 2**31 (RFC 3261 §8.1.1.5)"));
    }
    for (name, label) in [
        (HeaderName::Expires, "Expires"),
        (HeaderName::MinExpires, "Min-Expires"),
        (HeaderName::FlowTimer, "Flow-Timer"),
    ] {
        if let Some(value) = message.header(&name).filter(|v| is_digits(v))
            && value.parse::<u32>().is_err()
        {
            out_of_range(format!("{label} {value} exceeds 2**32-1 (RFC 3261 §20.19)"));
        }
    }
}

/// Contact parameters whose values the grammar leaves generic but RFC 3261 §20.10 defines.
fn contact_warnings(message: &Message, out: &mut Vec<Diagnostic>) {
    for value in message.header_values(&HeaderName::Contact) {
        let Ok(contact) = Contact::parse(value) else { continue };
        let Some(address) = contact.address() else { continue };
        if address.params.value("expires").is_some() && contact.expires().is_none() {
            out.push(Diagnostic::warning(
                "contact-expires",
                format!("Contact expires is not delta-seconds below 2**32 in {value:?} (RFC 3261 §20.10)"),
            ));
        }
        if address.params.has("q") && contact.q().is_none() {
            out.push(Diagnostic::warning(
                "contact-q",
                format!("Contact q is not a qvalue in {value:?} (RFC 3261 §20.10)"),
            ));
        }
        let addr_spec = find_unquoted(value, b'<').is_none();
        if addr_spec && address.uri.as_sip().is_some_and(|u| u.headers.is_some()) {
            out.push(Diagnostic::warning(
                "contact-brackets",
                format!("a Contact URI with '?' must be enclosed in '<>' in {value:?} (RFC 3261 §20.10)"),
            ));
        }
    }
}

/// `1*DIGIT LWS Method` with the number of any size: the range is a rule, not grammar.
fn cseq_grammar_ok(value: &str) -> bool {
    let value = value.trim_matches([' ', '\t']);
    match value.split_once([' ', '\t']) {
        Some((seq, method)) => is_digits(seq) && is_token(method.trim_matches([' ', '\t'])),
        None => false,
    }
}

fn is_digits(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|c| c.is_ascii_digit())
}

/// The offset of a control character (other than HTAB) not escaped by a quoted-pair, if any.
fn bare_control_character(value: &str) -> Option<usize> {
    let bytes = value.as_bytes();
    bytes.iter().enumerate().position(|(i, &c)| {
        let control = (c < b' ' && c != b'\t') || c == 0x7f;
        control && i.checked_sub(1).and_then(|before| bytes.get(before)) != Some(&b'\\')
    })
}
