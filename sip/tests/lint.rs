//! `lint_datagram` against BRIEF §5: the fixtures/corpus files, classed by their name prefix, and the error/warning split rule by rule.

mod support;

use std::path::PathBuf;

use sip::{LintReport, Severity, lint_datagram};
use support::crlf;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/corpus")
}

/// The diagnostic code each corpus file is there to provoke; a file missing here fails the test,
/// so the corpus and its expectations cannot drift apart.
const EXPECTED_CODES: &[(&str, &str)] = &[
    ("invalid-cseq-method.sip", "cseq-method"),
    ("invalid-missing-call-id.sip", "missing-header"),
    ("invalid-two-call-ids.sip", "duplicate-header"),
    ("malformed-angle-brackets-in-request-uri.sip", "start-line"),
    ("malformed-bad-escape-in-user.sip", "grammar"),
    ("malformed-conflicting-content-lengths.sip", "content-length"),
    ("malformed-content-length-beyond-datagram.sip", "content-length"),
    ("malformed-control-character-in-value.sip", "control-character"),
    ("malformed-cseq-without-method.sip", "grammar"),
    ("malformed-display-name-not-token.sip", "grammar"),
    ("malformed-double-space-in-start-line.sip", "start-line"),
    ("malformed-empty-via-parameter.sip", "grammar"),
    ("malformed-header-without-colon.sip", "header-line"),
    ("malformed-max-forwards-not-digits.sip", "grammar"),
    ("malformed-negative-content-length.sip", "content-length"),
    ("malformed-space-in-request-uri.sip", "start-line"),
    ("malformed-spaces-inside-angle-brackets.sip", "grammar"),
    ("malformed-status-code-too-big.sip", "start-line"),
    ("malformed-trailing-space-in-request-line.sip", "start-line"),
    ("malformed-truncated-header-section.sip", "no-header-end"),
    ("malformed-unbracketed-ipv6-contact.sip", "grammar"),
    ("malformed-unknown-version.sip", "start-line"),
    ("malformed-unterminated-display-name.sip", "grammar"),
    ("malformed-via-without-sent-by.sip", "grammar"),
    ("valid-200-several-contacts.sip", ""),
    ("valid-401-challenge.sip", ""),
    ("valid-503-retry-after.sip", ""),
    ("valid-empty-reason-phrase.sip", ""),
    ("valid-extension-method.sip", ""),
    ("valid-ipv6-everywhere.sip", ""),
    ("valid-notify-with-body.sip", ""),
    ("valid-register-outbound.sip", ""),
    ("valid-subscribe-compact.sip", ""),
    ("valid-unusual-uri-characters.sip", ""),
    ("valid-utf8-reason-and-display-name.sip", ""),
    ("valid-whitespace-and-folding.sip", ""),
    ("warning-branch-cookie.sip", "branch-cookie"),
    ("warning-contact-brackets.sip", "contact-brackets"),
    ("warning-duplicate-expires.sip", "duplicate-header"),
    ("warning-no-max-forwards.sip", "no-max-forwards"),
    ("warning-out-of-range.sip", "out-of-range"),
    ("warning-reg-id-without-outbound.sip", "reg-id-without-outbound"),
    ("warning-request-uri-headers.sip", "request-uri-headers"),
    ("warning-trailing-octets.sip", "trailing-octets"),
];

fn codes(report: &LintReport) -> Vec<&'static str> {
    report.diagnostics.iter().map(|d| d.code).collect()
}

#[test]
fn every_corpus_file_lints_as_its_name_says() {
    let mut names: Vec<String> = std::fs::read_dir(corpus_dir())
        .expect("fixtures/corpus exists")
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".sip"))
        .collect();
    names.sort();
    let listed: Vec<&str> = EXPECTED_CODES.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, listed, "the corpus and EXPECTED_CODES must list the same files");

    let mut failures = Vec::new();
    for (name, expected_code) in EXPECTED_CODES {
        let bytes = std::fs::read(corpus_dir().join(name)).unwrap();
        assert!(bytes.windows(2).any(|w| w == b"\r\n"), "{name}: corpus files use CRLF line ends");
        let report = lint_datagram(&bytes);
        let errors = report.diagnostics.iter().filter(|d| d.severity == Severity::Error).count();
        let warnings = report.diagnostics.iter().filter(|d| d.severity == Severity::Warning).count();
        let class_ok = if name.starts_with("valid-") {
            report.diagnostics.is_empty()
        } else if name.starts_with("malformed-") {
            report.is_malformed()
        } else if name.starts_with("invalid-") {
            report.is_invalid()
        } else if name.starts_with("warning-") {
            errors == 0 && !report.is_invalid() && warnings > 0
        } else {
            false
        };
        let code_ok = expected_code.is_empty() || codes(&report).contains(expected_code);
        if !class_ok || !code_ok {
            let text: Vec<String> = report.diagnostics.iter().map(ToString::to_string).collect();
            failures.push(format!("{name} (expected {expected_code:?}): {}", text.join("; ")));
        }
    }
    assert!(failures.is_empty(), "misclassified:\n{}", failures.join("\n"));
}

fn options_with(extra: &str) -> Vec<u8> {
    crlf(&format!(
        "OPTIONS sip:bob@proxy-a.lab.test SIP/2.0\n\
         Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKlint\n\
         Max-Forwards: 70\n\
         From: <sip:alice@proxy-a.lab.test>;tag=l\n\
         To: <sip:bob@proxy-a.lab.test>\n\
         Call-ID: lint@192.0.2.10\n\
         CSeq: 1 OPTIONS\n\
         {extra}Content-Length: 0\n\n"
    ))
}

#[test]
fn a_clean_request_has_no_diagnostics() {
    assert_eq!(lint_datagram(&options_with("")).diagnostics, vec![]);
}

#[test]
fn lf_only_line_ends_are_malformed() {
    let bytes = String::from_utf8(options_with("")).unwrap().replace("\r\n", "\n");
    let report = lint_datagram(bytes.as_bytes());
    assert!(report.is_malformed());
    assert!(codes(&report).contains(&"bare-lf"));
}

#[test]
fn errors_come_before_warnings() {
    let bytes = crlf(
        "OPTIONS sip:bob@proxy-a.lab.test SIP/2.0\n\
         Via: SIP/2.0/UDP 192.0.2.10;branch=old\n\
         From: <sip:alice@proxy-a.lab.test>;tag=l\n\
         To: Bad,Name <sip:bob@proxy-a.lab.test>\n\
         Call-ID: x@y\n\
         CSeq: 1 OPTIONS\n\n",
    );
    let report = lint_datagram(&bytes);
    let severities: Vec<Severity> = report.diagnostics.iter().map(|d| d.severity).collect();
    assert_eq!(severities.first(), Some(&Severity::Error));
    assert!(severities.windows(2).all(|w| w[0] >= w[1]), "{severities:?}");
    assert!(codes(&report).contains(&"no-max-forwards"));
    assert!(codes(&report).contains(&"branch-cookie"));
}

#[test]
fn reg_id_needs_supported_outbound_and_an_instance() {
    let without_instance =
        lint_datagram(&options_with("Supported: outbound\nContact: <sip:alice@192.0.2.10>;reg-id=1\n"));
    assert_eq!(codes(&without_instance), ["reg-id-without-instance"]);
    let complete = lint_datagram(&options_with(
        "k: outbound\nContact: <sip:alice@192.0.2.10>;reg-id=1;+sip.instance=\"<urn:uuid:1>\"\n",
    ));
    assert_eq!(complete.diagnostics, vec![], "compact Supported counts");
}

#[test]
fn a_bad_proxy_authenticate_in_a_401_is_still_checked() {
    let bytes = crlf(
        "SIP/2.0 401 Unauthorized\n\
         Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKa\n\
         From: <sip:alice@proxy-a.lab.test>;tag=l\n\
         To: <sip:alice@proxy-a.lab.test>;tag=t\n\
         Call-ID: x@y\n\
         CSeq: 1 REGISTER\n\
         Proxy-Authenticate: Digest realm=\"unclosed\n\
         Content-Length: 0\n\n",
    );
    assert!(lint_datagram(&bytes).is_malformed());
}

#[test]
fn every_authorization_line_is_checked() {
    let report = lint_datagram(&options_with(
        "Authorization: Digest username=\"a\", realm=\"r\"\nAuthorization: Digest username=\"unclosed\n",
    ));
    assert!(report.is_malformed());
}

#[test]
fn quoted_pairs_may_hold_control_characters() {
    let report = lint_datagram(&options_with("Subject: \"bell \\\x07 escaped\"\n"));
    assert!(!report.is_malformed(), "{:?}", report.diagnostics);
    let report = lint_datagram(&options_with("Subject: bare \x00 nul\n"));
    assert!(codes(&report).contains(&"control-character"));
}

#[test]
fn option_tags_must_be_tokens() {
    assert!(lint_datagram(&options_with("Require: out bound\n")).is_malformed());
    assert!(!lint_datagram(&options_with("Require: outbound, path\n")).is_malformed());
}

#[test]
fn bad_call_ids_are_malformed() {
    for call_id in ["a@b@c", "@host", "local@", "sp ace"] {
        let bytes = String::from_utf8(options_with("")).unwrap().replace("lint@192.0.2.10", call_id);
        assert!(lint_datagram(bytes.as_bytes()).is_malformed(), "{call_id}");
    }
}

#[test]
fn contact_parameter_values_are_warned_about() {
    let report = lint_datagram(&options_with("Contact: <sip:alice@192.0.2.10>;expires=soon;q=2\n"));
    assert!(!report.is_malformed());
    assert!(codes(&report).contains(&"contact-expires"));
    assert!(codes(&report).contains(&"contact-q"));
}

#[test]
fn an_unframable_datagram_is_malformed() {
    assert!(lint_datagram(b"").is_malformed());
    assert!(lint_datagram(b"\r\n\r\n").is_malformed());
    assert!(lint_datagram(b"\x00\x01\x00\x00\x21\x12\xa4\x42abcdefghijkl").is_malformed());
}
