//! The `sipharness` command line (BRIEF §5): list, run, coverage, explore, provision, serve, lint; its output formats and exit codes are a contract.

mod explore;
mod lint;
mod outputs;
mod progress;
mod provision;
mod run;
mod serve;

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::case::Case;
use crate::coverage::Catalog;
use crate::runner::{Shard, filter_matches};

use explore::{EXPLORE_ABOUT, EXPLORE_AFTER_HELP, ExploreArgs};
pub use run::exit_code;
use serve::{SERVE_ABOUT, SERVE_AFTER_HELP, ServeArgs};

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
sipharness run 'failover.*.silent.*' --phone refphone:quirk=no-backup-registrar --json\n  \
sipharness run --phone refphone --shard 2/4 --junit junit-2.xml\n  \
sipharness run failover.no-outbound --phone refphone:quirk=flap --report report/   # then open report/index.html\n  \
sipharness explore --phone refphone --seed 1 --steps 40\n  sipharness lint capture/*.sip"
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
        #[arg(long, value_name = "K/N", value_parser = Shard::parse, help = SHARD_HELP)]
        shard: Option<Shard>,
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
        /// The lab's addresses on a real interface, one `<element> <address>` per line (dns, proxy-a,
        /// proxy-b, registrar-a, registrar-b, outbound-a, outbound-b, phone, optionally console), so
        /// a phone on the lab's LAN reaches them; DNS on port 53. Cases then run one at a time.
        #[arg(long, value_name = "FILE")]
        lab: Option<PathBuf>,
        #[command(flatten)]
        outputs: outputs::Outputs,
        #[arg(long, value_name = "K/N", value_parser = Shard::parse, help = SHARD_HELP)]
        shard: Option<Shard>,
    },
    /// Print requirement -> cases -> quirks proven to make them fail, as Markdown
    /// (`suites/COVERAGE.md` is this output).
    Coverage,
    /// Random fault schedules against a model of the seed's table; a failure shrunk to a minimal
    /// schedule (lines starting `step`) that `--replay FILE` plays again.
    #[command(long_about = EXPLORE_ABOUT, after_long_help = EXPLORE_AFTER_HELP)]
    Explore(ExploreArgs),
    /// Write the cfg files a phone is served for one case: `aastra.cfg` and `<MAC>.cfg`.
    #[command(
        after_help = "The files are what `run` serves the phone for that case: the case's servers (by FQDN in the \
lab zone), transport and timers, the timers raised to the profile's floors (the vendor's minimums for `aastra`); \
<MAC> is the aastra profile's mac, or 00085D0A0B0C for refphone. One path per file written is printed.\n\n\
Example:\n  sipharness provision --phone aastra:ip=127.100.0.26,mac=00085D000001 \
--case failover.full-backup.primary-outbound-fails.silent.udp --out cfg/"
    )]
    Provision {
        /// The phone under test: NAME[:key=value,...], e.g. `aastra:ip=127.100.0.26,mac=00085D000001`.
        #[arg(long, value_name = "PROFILE")]
        phone: String,
        /// The case: its id, or a filter that matches exactly one case.
        #[arg(long, value_name = "ID")]
        case: String,
        /// The directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The lab's addresses (as for `run --lab`).
        #[arg(long, value_name = "FILE")]
        lab: Option<PathBuf>,
        /// How the files name the servers: `name` (FQDNs in the lab zone, found through the lab's
        /// DNS) or `ip` (their addresses, for a phone that cannot use the lab's DNS).
        #[arg(long, value_name = "name|ip", default_value = "name", value_parser = ["name", "ip"])]
        addressing: String,
    },
    /// Keep the whole topology and its DNS up for exploring a phone by hand; faults from stdin.
    #[command(long_about = SERVE_ABOUT, after_long_help = SERVE_AFTER_HELP)]
    Serve(ServeArgs),
    /// Lint SIP messages, each file one UDP datagram: `<file>: ok` or `<file>: <diagnostics>`.
    Lint {
        /// Files holding one SIP message each (as copied from a capture).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

const SHARD_HELP: &str = "Only the K-th of N parts of the selected cases (1 <= K <= N <= 1000), for a CI matrix of N \
machines whose JUnit files merge: sorted by id, the selected cases go round-robin, so shard K takes those at positions \
K-1, K-1+N, ...; the parts differ in size by one at most and are the same on every machine. A shard left empty (more \
shards than cases) selects nothing, says so on stderr and exits 0 (`run --junit` then writes an empty testsuite).";

/// A clap usage error in one line: its message and tips, without the usage block.
fn one_line(error: &clap::Error) -> String {
    let text = error.render().to_string();
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .collect();
    let joined = parts.join(" ");
    format!("sipharness: {}", joined.strip_prefix("error: ").unwrap_or(&joined))
}

/// Runs the CLI over `catalog`, the cases and ratchet the binary was built with.
pub fn main(catalog: Catalog) -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() || e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "{}", one_line(&e));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    init_tracing();
    let code = match cli.command {
        Command::List { filter, shard } => list(&catalog.cases, filter.as_deref(), shard),
        Command::Run { filter, phone, json, jobs, lab, outputs, shard } => match read_lab(lab.as_deref()) {
            Ok(topology) => run::run(
                catalog.cases,
                Selection { filter: filter.as_deref(), shard },
                &phone,
                json,
                usize::from(jobs),
                topology.zip(lab.as_deref()),
                &outputs,
            ),
            Err(message) => usage_error(&message),
        },
        Command::Coverage => {
            let _ = write!(std::io::stdout(), "{}", catalog.coverage());
            EXIT_OK
        }
        Command::Lint { files } => lint::lint(&files),
        Command::Explore(args) => explore::explore(args),
        Command::Provision { phone, case, out, lab, addressing } => match read_lab(lab.as_deref()) {
            Ok(lab) => provision::provision(&catalog.cases, &phone, &case, &out, lab, addressing == "ip"),
            Err(message) => usage_error(&message),
        },
        Command::Serve(args) => match args.options() {
            Ok(options) => serve::serve(options),
            Err(message) => usage_error(&message),
        },
    };
    ExitCode::from(code)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIPHARNESS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colours only for a person at a terminal, never into a file or a pipe.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn select<'a>(catalog: &'a [Case], filter: Option<&str>) -> Vec<&'a Case> {
    catalog.iter().filter(|c| filter.is_none_or(|f| filter_matches(f, &c.id))).collect()
}

/// What `list` and `run` select: FILTER, then `--shard` of what it matched.
#[derive(Debug, Clone, Copy)]
struct Selection<'a> {
    filter: Option<&'a str>,
    shard: Option<Shard>,
}

impl Selection<'_> {
    /// The cases selected, or the usage error when FILTER matches nothing. An empty shard is no
    /// error: the FILTER matched, and this machine's part of it is empty (said on stderr).
    fn of(self, catalog: &[Case]) -> Result<Vec<&Case>, String> {
        let matched = select(catalog, self.filter);
        if matched.is_empty() {
            return Err(format!("no case matches {:?}", self.filter.unwrap_or("")));
        }
        let Some(shard) = self.shard else { return Ok(matched) };
        let total = matched.len();
        let taken = shard.take(matched);
        if taken.is_empty() {
            let _ = writeln!(
                std::io::stderr(),
                "sipharness: shard {shard} selects no case ({total} selected, fewer than {} shards)",
                shard.count
            );
        }
        Ok(taken)
    }
}

/// The lab file `--lab` names, read and checked; the error names the file and line.
fn read_lab(path: Option<&std::path::Path>) -> Result<Option<std::sync::Arc<crate::topology::Topology>>, String> {
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(path).map_err(|e| format!("--lab {}: {e}", path.display()))?;
    let topology = crate::topology::Topology::from_lab_file(&text, crate::lab::LAB_ZONE)
        .map_err(|e| format!("--lab {}: {e}", path.display()))?;
    Ok(Some(std::sync::Arc::new(topology)))
}

fn usage_error(message: &str) -> u8 {
    let _ = writeln!(std::io::stderr(), "sipharness: {message}");
    EXIT_USAGE
}

fn list(catalog: &[Case], filter: Option<&str>, shard: Option<Shard>) -> u8 {
    let selected = match (Selection { filter, shard }).of(catalog) {
        Ok(selected) => selected,
        Err(message) => return usage_error(&message),
    };
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
