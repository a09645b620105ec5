//! The `sipharness` command line (BRIEF §5): list, run, lint; its output formats and exit codes are a contract.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::case::{Case, CaseResult, Verdict};
use crate::coverage::Catalog;
use crate::dut::Profile;
use crate::runner::{filter_matches, run_cases};

/// Exit code: every case passed (expected failures and skips allowed).
pub const EXIT_OK: u8 = 0;
/// Exit code: a case failed, or an expected failure passed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: usage or environment error, an `error` verdict, or a FILTER that matches nothing.
pub const EXIT_USAGE: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "sipharness",
    version,
    about = "SIP failover conformance tester: plays every server a phone talks to, breaks them, and checks the phone moves as the spec says.",
    after_help = "Exit codes: 0 all passed (xfail and skip allowed), 1 a case failed or an expected failure passed, \
2 usage or environment error, an `error` verdict, or a FILTER that matches nothing.\n\n\
Examples:\n  sipharness list failover\n  sipharness run --phone refphone\n  sipharness coverage > suites/COVERAGE.md\n  \
sipharness run 'failover.*.silent.*' --phone refphone:quirk=no-backup-registrar --json\n  sipharness lint capture/*.sip"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List cases: `<id> TAB <requirement IDs> TAB <transport>`, one per line.
    List {
        /// Case ids starting with these whole dotted segments (`failover.no-outbound`), or a glob with `*`.
        filter: Option<String>,
    },
    /// Run cases against a phone; human output ends with a summary line.
    Run {
        /// Case ids starting with these whole dotted segments, or a glob with `*`. All cases when absent.
        filter: Option<String>,
        /// The phone under test: NAME[:key=value,...], e.g. `refphone` or `refphone:quirk=late-refresh,quirk=backup-first`.
        #[arg(long, value_name = "PROFILE")]
        phone: String,
        /// JSON Lines on stdout, one object per case: {"id","verdict","duration_ms","failures":[...]}.
        #[arg(long)]
        json: bool,
        /// Cases run at once; each has its own loopback block and phone, and mostly waits on the
        /// phone's timers, so more cases than cores is fine.
        #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
    },
    /// Print requirement -> cases -> quirks proven to make them fail, as Markdown
    /// (`suites/COVERAGE.md` is this output).
    Coverage,
    /// Keep the whole topology and its DNS up for exploring a phone by hand. Prints one line per
    /// listening socket (`<element> <udp|tcp|tls> <addr>:<port>`), `zone <name>`, then `ready`;
    /// then reads commands from stdin (`fail registrar-a silent`, `restore registrar-a`,
    /// `reset outbound-a/tcp`, `restart proxy-a`, `dns set <name> <type> <ttl> <rdata>`,
    /// `dns add ...`, `dns remove <name> <type>`, `quit`) and streams the trace as ladder lines.
    Serve,
    /// Lint SIP messages, each file one UDP datagram: `<file>: ok` or `<file>: <diagnostics>`.
    Lint {
        /// Files holding one SIP message each (as copied from a capture).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Runs the CLI over `catalog`, the cases and ratchet the binary was built with.
pub fn main(catalog: Catalog) -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    init_tracing();
    let code = match cli.command {
        Command::List { filter } => list(&catalog.cases, filter.as_deref()),
        Command::Run { filter, phone, json, jobs } => {
            run(catalog.cases, filter.as_deref(), &phone, json, usize::from(jobs))
        }
        Command::Coverage => {
            let _ = write!(std::io::stdout(), "{}", catalog.coverage());
            EXIT_OK
        }
        Command::Lint { files } => lint(&files),
        Command::Serve => serve(),
    };
    ExitCode::from(code)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIPHARNESS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

fn select<'a>(catalog: &'a [Case], filter: Option<&str>) -> Vec<&'a Case> {
    catalog.iter().filter(|c| filter.is_none_or(|f| filter_matches(f, &c.id))).collect()
}

fn usage_error(message: &str) -> u8 {
    let _ = writeln!(std::io::stderr(), "sipharness: {message}");
    EXIT_USAGE
}

fn list(catalog: &[Case], filter: Option<&str>) -> u8 {
    let selected = select(catalog, filter);
    if selected.is_empty() {
        return usage_error(&format!("no case matches {:?}", filter.unwrap_or("")));
    }
    let mut out = std::io::stdout().lock();
    for case in selected {
        let _ = writeln!(
            out,
            "{}\t{}\t{}",
            case.id,
            case.requirements.iter().map(|r| r.id()).collect::<Vec<_>>().join(","),
            case.transport
        );
    }
    EXIT_OK
}

fn run(catalog: Vec<Case>, filter: Option<&str>, phone: &str, json: bool, jobs: usize) -> u8 {
    let profile = match Profile::parse(phone) {
        Ok(p) => p,
        Err(e) => return usage_error(&e.to_string()),
    };
    if let Err(e) = profile.check() {
        return usage_error(&e.to_string());
    }
    let selected: Vec<Case> = select(&catalog, filter).into_iter().cloned().collect();
    if selected.is_empty() {
        return usage_error(&format!("no case matches {:?}", filter.unwrap_or("")));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return usage_error(&format!("cannot start the runtime: {e}")),
    };
    let results = runtime.block_on(async {
        let work = run_cases(selected, &profile, jobs, |result, done, total| print_result(result, json, done, total));
        tokio::select! {
            results = work => Some(results),
            () = interrupted() => None,
        }
    });
    // Dropping the runtime drops every lab, which kills every phone it started.
    drop(runtime);
    let Some(results) = results else {
        let _ = writeln!(std::io::stderr(), "sipharness: interrupted; every phone was stopped and its files removed");
        return EXIT_USAGE;
    };
    if !json {
        print_summary(&results);
    }
    exit_code(&results)
}

/// SIGINT (Ctrl-C) or SIGTERM (a CI runner's stop): either way every lab is dropped, so every
/// phone is stopped and every case's temporary directory removed.
async fn interrupted() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// The exit code BRIEF §5 gives a set of results.
pub fn exit_code(results: &[CaseResult]) -> u8 {
    if results.iter().any(|r| r.verdict == Verdict::Error) {
        EXIT_USAGE
    } else if results.iter().any(|r| matches!(r.verdict, Verdict::Fail | Verdict::Xpass)) {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

fn print_result(result: &CaseResult, json: bool, done: usize, total: usize) {
    let mut out = std::io::stdout().lock();
    if json {
        let line = serde_json::to_string(&result.json()).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        return;
    }
    let _ = writeln!(
        out,
        "[{done}/{total}] {:<5} {}  ({:.2} s){}",
        result.verdict.label(),
        result.id,
        result.duration.as_secs_f64(),
        result.reason.as_deref().map(|n| format!("  {n}")).unwrap_or_default()
    );
    for failure in &result.failures {
        let _ = writeln!(out, "      {}", failure.to_string().replace('\n', "\n      "));
    }
    if matches!(result.verdict, Verdict::Fail | Verdict::Error) && !result.full_ladder.is_empty() {
        let _ = writeln!(out, "      trace:");
        for line in result.full_ladder.lines() {
            let _ = writeln!(out, "        {line}");
        }
    }
    let _ = out.flush();
}

fn print_summary(results: &[CaseResult]) {
    let count = |v: Verdict| results.iter().filter(|r| r.verdict == v).count();
    let _ = writeln!(
        std::io::stdout(),
        "{} passed, {} failed, {} errors, {} skipped, {} xfail, {} xpass",
        count(Verdict::Pass),
        count(Verdict::Fail),
        count(Verdict::Error),
        count(Verdict::Skip),
        count(Verdict::Xfail),
        count(Verdict::Xpass)
    );
}

fn serve() -> u8 {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return usage_error(&format!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(crate::serve::serve()) {
        Ok(()) => EXIT_OK,
        Err(e) => usage_error(&e.to_string()),
    }
}

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

fn lint(files: &[PathBuf]) -> u8 {
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
        let verdict = if report.is_malformed() { "malformed: " } else { "" };
        let _ = writeln!(out, "{}: {verdict}{}", file.display(), text.join("; "));
        if report.is_malformed() {
            code = EXIT_FAILED;
        }
    }
    if unreadable { EXIT_USAGE } else { code }
}
