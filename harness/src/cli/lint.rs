//! `sipharness lint`: each file judged as one SIP datagram, with the lint's verdict per file.

use std::io::Write as _;
use std::path::PathBuf;

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};

/// The largest UDP payload: `lint` judges each file as one datagram, so it never reads more.
const MAX_DATAGRAM: usize = 65_507;

/// At most `limit + 1` octets of `file` (one more than allowed tells it is too long), so
/// `lint /dev/zero` or a huge file costs no more memory than a datagram.
fn read_bounded(file: &std::path::Path, limit: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(file)?.take(limit as u64 + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

pub(super) fn lint(files: &[PathBuf]) -> u8 {
    let mut code = EXIT_OK;
    let mut unreadable = false;
    let mut out = std::io::stdout().lock();
    for file in files {
        let bytes = match read_bounded(file, MAX_DATAGRAM) {
            Ok(b) => b,
            Err(e) => {
                let _ = writeln!(out, "{}: unreadable: {e}", file.display());
                unreadable = true;
                continue;
            }
        };
        if bytes.len() > MAX_DATAGRAM {
            let _ = writeln!(
                out,
                "{}: malformed: error datagram-too-long: more than {MAX_DATAGRAM} octets, which no UDP datagram carries",
                file.display()
            );
            code = EXIT_FAILED;
            continue;
        }
        let report = sip::lint_datagram(&bytes);
        if report.diagnostics.is_empty() {
            let _ = writeln!(out, "{}: ok", file.display());
            continue;
        }
        let text: Vec<String> = report.diagnostics.iter().map(ToString::to_string).collect();
        let verdict = if report.is_malformed() {
            "malformed: "
        } else if report.is_invalid() {
            "invalid: "
        } else {
            ""
        };
        let _ = writeln!(out, "{}: {verdict}{}", file.display(), text.join("; "));
        if report.is_malformed() || report.is_invalid() {
            code = EXIT_FAILED;
        }
    }
    if unreadable { EXIT_USAGE } else { code }
}
