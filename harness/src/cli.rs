//! The `sipharness` command line (BRIEF §5): list, run, coverage, provision, serve, lint; its output formats and exit codes are a contract.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::case::{Case, CaseResult, Verdict};
use crate::coverage::Catalog;
use crate::dut::Profile;
use crate::error::HarnessError;
use crate::phone_config::PhoneKind;
use crate::provision::Configuration;
use crate::runner::{Shard, filter_matches, run_cases};
use crate::serve::ServeOptions;
use crate::trace::Transport;

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
sipharness run --phone refphone --shard 2/4 --junit junit-2.xml\n  sipharness lint capture/*.sip"
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
        /// Also write the results as JUnit XML to FILE when the run ends (failed cases too): one
        /// testsuite `sipharness`, one testcase per case (classname its area, name its id); a
        /// fail or xpass is a failure, an error an error, a skip or xfail skipped. A FILE that
        /// cannot be written stops the run before any case starts.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        #[arg(long, value_name = "K/N", value_parser = Shard::parse, help = SHARD_HELP)]
        shard: Option<Shard>,
    },
    /// Print requirement -> cases -> quirks proven to make them fail, as Markdown
    /// (`suites/COVERAGE.md` is this output).
    Coverage,
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

const SERVE_ABOUT: &str = "Keep the whole topology and its DNS up for exploring a phone by hand.\n\n\
Prints one line per listening socket (`<element> <udp|tcp|tls> <addr>:<port>`), `zone <name>`, \
`credentials user <user> password <password> realm <realm>` (also with --digest off), then `ready`; \
on stderr the address to bind the phone to and the lab CA's file. Then it reads commands from stdin \
and prints the trace as ladder lines, each stamped with the milliseconds since the lab started \
(`+1234ms`); a command is acknowledged by its marker in the ladder (`+5000ms == fail registrar-a silent ==`).";

const SERVE_AFTER_HELP: &str = "Which element serves which request (the zone names each `<element>.<zone>`):\n  \
registrar-a, registrar-b  REGISTER (digest with the credentials printed, unless --digest off; Min-Expires 1 s)\n  \
proxy-a, proxy-b          SUBSCRIBE (BLF `dialog`, MWI `message-summary`) with NOTIFYs; INVITE, BYE, CANCEL\n  \
outbound-a, outbound-b    forward every request to the element its Route or Request-URI names (RFC 5626 edge proxy)\n  \
dns                       A records for every element, NAPTR and SRV for each element's name and for registrars.<zone>\n\
Every element answers OPTIONS. Row 1 (no-outbound): proxy-a/proxy-b and registrar-a/registrar-b as primary/backup; \
rows 2 (full-backup) and 3 (outbound-only) go through outbound-a/outbound-b first.\n\n\
Addresses: a block is 16 loopback addresses from its base B (the first free one from 127.100.0.16, or --block B): \
dns B+1 (port 53, or the high port printed when 53 cannot be bound), proxy-a B+2, proxy-b B+3, registrar-a B+4, \
registrar-b B+5, outbound-a B+6, outbound-b B+7, the phone B+10; SIP on UDP and TCP 5060, TLS 5061.\n\n\
Pointing a phone at the lab: with a configurable DNS server, point it at the printed `dns udp` address and name the \
servers by FQDN (`registrar-a.lab.test`). A phone without one (or one that only asks port 53) takes the servers by IP: \
with the first block, registrar-a is 127.100.0.20:5060 (5061 for TLS), proxy-a 127.100.0.18:5060, outbound-a 127.100.0.22:5060; \
the AOR host is then the address configured for the proxy. TLS by IP works too: every certificate names its element's IP. \
--phone-config writes the settings for you.\n\n\
Commands on stdin, one per line:\n  \
fail <element>[/<udp|tcp|tls>] silent|refuse|stall|delay <ms>\n  \
fail <element>[/<transport>] reject <code> [retry-after=<s>]\n  \
restore <element>[/<transport>]        lifts a lasting fault\n  \
reset <element>[/<transport>]          resets every TCP/TLS flow\n  \
restart <element>                      drops all its state\n  \
dns set|add <name> <type> <ttl> <rdata>   e.g. dns set registrar-a.lab.test. A 5 127.100.0.21\n  \
dns remove <name> <type>\n  \
quit                                   (also end of input, Ctrl-C)\n\
The DNS takes silent and refuse only.\n\n\
Examples:\n  sipharness serve\n  sipharness serve --config full-backup --outbound on --transport tls --ca-dir ~/.sipharness-ca\n  \
sipharness serve --block 127.100.0.32 --phone-config baresip ~/.baresip-lab";

/// `on` or `off`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Switch {
    On,
    Off,
}

/// The seed's row `serve` configures (BRIEF §2).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Row {
    /// Row 1: backup proxy and backup registrar, no outbound proxy.
    NoOutbound,
    /// Row 2: backup proxy, registrar and outbound proxy.
    FullBackup,
    /// Row 3: backup outbound proxy only.
    OutboundOnly,
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// The seed's row the phone is configured for (what --phone-config writes).
    #[arg(long, value_enum, value_name = "ROW", default_value_t = Row::NoOutbound)]
    config: Row,
    /// SIP outbound (RFC 5626): registrars answer `Require: outbound` with `Flow-Timer`, and the
    /// phone is configured for it. Needs an outbound proxy: not with --config no-outbound.
    #[arg(long, value_enum, value_name = "on|off", default_value_t = Switch::Off)]
    outbound: Switch,
    /// Whether registrars demand digest authentication.
    #[arg(long, value_enum, value_name = "on|off", default_value_t = Switch::On)]
    digest: Switch,
    /// Claim this block and no other (its base, e.g. 127.100.0.16); an error if any of its
    /// addresses is taken. Default: the first free block from 127.100.0.16.
    #[arg(long, value_name = "ADDR", value_parser = crate::topology::parse_block, conflicts_with = "lab")]
    block: Option<std::net::Ipv4Addr>,
    /// The lab's addresses on a real interface, one `<element> <address>` per line (as for
    /// `run --lab`), so a phone on the lab's LAN reaches them; DNS on port 53.
    #[arg(long, value_name = "FILE")]
    lab: Option<PathBuf>,
    /// Keep the lab CA here (`lab-ca.pem`, `lab-ca.key`): made on the first run, loaded on later
    /// ones, so a phone that trusted it once keeps trusting it.
    #[arg(long, value_name = "DIR")]
    ca_dir: Option<PathBuf>,
    /// Write the settings a phone needs for this topology into DIR: `aastra` (aastra.cfg and
    /// <MAC>.cfg) or `baresip` (accounts and config); the lab CA goes beside them.
    #[arg(long, num_args = 2, value_names = ["PHONE", "DIR"])]
    phone_config: Option<Vec<String>>,
    /// The transport the phone is configured for by --phone-config (every element serves all three).
    #[arg(long, value_name = "udp|tcp|tls", default_value = "udp", value_parser = parse_transport)]
    transport: Transport,
    /// The phone's MAC (12 hex digits), naming the vendor's <MAC>.cfg.
    #[arg(long, value_name = "MAC", default_value = crate::provision::DEFAULT_MAC, value_parser = crate::provision::parse_mac)]
    mac: String,
}

fn parse_transport(text: &str) -> Result<Transport, String> {
    Transport::parse(text).ok_or_else(|| format!("{text:?} is not udp, tcp or tls"))
}

impl ServeArgs {
    /// The options `serve` runs with, or the usage error in one line.
    fn options(self) -> Result<ServeOptions, String> {
        let row = match self.config {
            Row::NoOutbound => Configuration::NoOutbound,
            Row::FullBackup => Configuration::FullBackup,
            Row::OutboundOnly => Configuration::OutboundOnly,
        };
        let configuration = match self.outbound {
            Switch::Off => row,
            Switch::On if row == Configuration::NoOutbound => {
                return Err(
                    "--outbound on needs an outbound proxy: use it with --config full-backup or outbound-only".into()
                );
            }
            Switch::On => row.with_sip_outbound(),
        };
        let phone_config = match self.phone_config.as_deref() {
            None => None,
            Some([kind, dir]) => match PhoneKind::parse(kind) {
                Some(kind) => Some((kind, PathBuf::from(dir))),
                None => return Err(format!("--phone-config: unknown phone {kind:?}; expected {}", PhoneKind::NAMES)),
            },
            Some(_) => return Err("--phone-config takes a phone and a directory".into()),
        };
        Ok(ServeOptions {
            configuration,
            transport: self.transport,
            digest: self.digest == Switch::On,
            block: self.block,
            lab: read_lab(self.lab.as_deref())?,
            ca_dir: self.ca_dir,
            phone_config,
            mac: self.mac,
        })
    }
}

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
        Command::Run { filter, phone, json, jobs, lab, junit, shard } => match read_lab(lab.as_deref()) {
            Ok(topology) => run(
                catalog.cases,
                Selection { filter: filter.as_deref(), shard },
                &phone,
                json,
                usize::from(jobs),
                topology.zip(lab.as_deref()),
                junit.as_deref(),
            ),
            Err(message) => usage_error(&message),
        },
        Command::Coverage => {
            let _ = write!(std::io::stdout(), "{}", catalog.coverage());
            EXIT_OK
        }
        Command::Lint { files } => lint(&files),
        Command::Provision { phone, case, out, lab, addressing } => match read_lab(lab.as_deref()) {
            Ok(lab) => provision(&catalog.cases, &phone, &case, &out, lab, addressing == "ip"),
            Err(message) => usage_error(&message),
        },
        Command::Serve(args) => match args.options() {
            Ok(options) => serve(options),
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

fn run(
    catalog: Vec<Case>,
    selection: Selection<'_>,
    phone: &str,
    json: bool,
    jobs: usize,
    lab: Option<(std::sync::Arc<crate::topology::Topology>, &std::path::Path)>,
    junit: Option<&std::path::Path>,
) -> u8 {
    let (lab, lab_file) = lab.unzip();
    let profile = match Profile::parse(phone) {
        Ok(p) => p,
        Err(e) => return usage_error(&e.to_string()),
    };
    if let Err(e) = profile.check(lab.as_deref()) {
        return usage_error(&e.to_string());
    }
    let selected: Vec<Case> = match selection.of(&catalog) {
        Ok(selected) => selected.into_iter().cloned().collect(),
        Err(message) => return usage_error(&message),
    };
    // Created now, so a FILE that cannot be written stops the run before any case starts.
    let junit = match junit {
        None => None,
        Some(path) => match std::fs::File::create(path) {
            Ok(file) => Some((path, file)),
            Err(e) => return usage_error(&format!("--junit {}: {e}", path.display())),
        },
    };
    let started = std::time::Instant::now();
    if selected.is_empty() {
        return write_junit(junit, &[], started.elapsed()).unwrap_or(EXIT_OK);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return usage_error(&format!("cannot start the runtime: {e}")),
    };
    if let (Some(topology), Some(file)) = (&lab, lab_file)
        && let Err(e) = runtime.block_on(async { crate::lab::check_lab_file(topology) })
    {
        return usage_error(&format!("--lab {}: {e}", file.display()));
    }
    let results = runtime.block_on(async {
        let running = std::sync::Arc::new(crate::runner::Running::default());
        let total = selected.len();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = done.clone();
        let work = run_cases(selected, &profile, lab, jobs, running.clone(), |result, finished, total| {
            counted.store(finished, std::sync::atomic::Ordering::Relaxed);
            print_result(result, &rerun_command(&profile, lab_file), json, finished, total)
        });
        tokio::select! {
            results = work => Some(results),
            () = interrupted() => None,
            () = report_progress(&running, &done, total) => None,
        }
    });
    // Dropping the runtime drops every lab, which kills every phone it started.
    drop(runtime);
    let Some(results) = results else {
        // No report of a run cut short: a CI job that merges reports finds it missing.
        if let Some((path, _)) = junit {
            let _ = std::fs::remove_file(path);
        }
        let _ = writeln!(std::io::stderr(), "sipharness: interrupted; every phone was stopped and its files removed");
        return EXIT_USAGE;
    };
    if !json {
        print_summary(&results);
    }
    let code = exit_code(&results);
    write_junit(junit, &results, started.elapsed()).unwrap_or(code)
}

/// Writes `--junit`'s report into the file created before the run; `Some(exit code)` when it
/// cannot be written.
fn write_junit(
    junit: Option<(&std::path::Path, std::fs::File)>,
    results: &[CaseResult],
    elapsed: std::time::Duration,
) -> Option<u8> {
    let (path, file) = junit?;
    let mut writer = std::io::BufWriter::new(file);
    let written = crate::report::junit::report(results, elapsed)
        .serialize(&mut writer)
        .map_err(|e| e.to_string())
        .and_then(|()| writer.flush().map_err(|e| e.to_string()));
    written.err().map(|e| usage_error(&format!("--junit {}: {e}", path.display())))
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

fn print_result(result: &CaseResult, rerun: &dyn Fn(&str) -> String, json: bool, done: usize, total: usize) {
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
    if matches!(result.verdict, Verdict::Fail | Verdict::Error | Verdict::Xpass) {
        let _ = writeln!(out, "      rerun alone: {}", rerun(&result.id));
    }
    let _ = out.flush();
}

/// The command that runs one case alone against the same profile on the same lab, quoted for a
/// POSIX shell.
fn rerun_command<'a>(profile: &'a Profile, lab_file: Option<&'a std::path::Path>) -> impl Fn(&str) -> String + 'a {
    fn quote(s: &str) -> String {
        if s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:=,/".contains(c)) {
            s.to_owned()
        } else {
            format!("'{}'", s.replace('\'', "'\\''"))
        }
    }
    move |id| {
        let mut command = format!("sipharness run {} --phone {}", quote(id), quote(&profile.to_string()));
        if let Some(file) = lab_file {
            command.push_str(&format!(" --lab {}", quote(&file.to_string_lossy())));
        }
        command
    }
}

/// How often a long run says what is still running (a real phone's case takes minutes).
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Every [`PROGRESS_EVERY`], while a case has run at least half that, one line on stderr: how
/// many are done and what runs, for how long. Never returns.
async fn report_progress(running: &crate::runner::Running, done: &std::sync::atomic::AtomicUsize, total: usize) {
    let mut ticks = tokio::time::interval(PROGRESS_EVERY);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let cases = running.snapshot();
        // A case running since before the last line: the run is in a long wait.
        if cases.first().is_none_or(|(_, ran)| *ran < PROGRESS_EVERY / 2) {
            continue;
        }
        let named: Vec<String> = cases.iter().map(|(id, ran)| format!("{id} ({} s)", ran.as_secs())).collect();
        let _ = writeln!(
            std::io::stderr(),
            "sipharness: {}/{total} done; running: {}",
            done.load(std::sync::atomic::Ordering::Relaxed),
            named.join(", ")
        );
    }
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

/// The one case `--case` names: its exact id, or a filter matching it alone.
fn one_case<'a>(catalog: &'a [Case], wanted: &str) -> Result<&'a Case, String> {
    if let Some(case) = catalog.iter().find(|c| c.id == wanted) {
        return Ok(case);
    }
    match select(catalog, Some(wanted)).as_slice() {
        [] => Err(format!("no case matches {wanted:?}")),
        [case] => Ok(case),
        [first, second, rest @ ..] => Err(format!(
            "--case {wanted:?} matches {} cases ({}, {}{}); name one",
            rest.len() + 2,
            first.id,
            second.id,
            if rest.is_empty() { "" } else { ", ..." }
        )),
    }
}

fn provision(
    catalog: &[Case],
    phone: &str,
    wanted: &str,
    out: &std::path::Path,
    lab: Option<std::sync::Arc<crate::topology::Topology>>,
    by_address: bool,
) -> u8 {
    let profile = match Profile::parse(phone) {
        Ok(p) => p,
        Err(e) => return usage_error(&e.to_string()),
    };
    let case = match one_case(catalog, wanted) {
        Ok(case) => case,
        Err(message) => return usage_error(&message),
    };
    let (mut provisioning, topology) = match crate::runner::provisioning_for(case, &profile, lab.as_ref()) {
        Ok(p) => p,
        Err(e) => return usage_error(&e.to_string()),
    };
    if by_address && let Err(e) = provisioning.by_address(&topology) {
        return usage_error(&format!("--addressing ip: {e}"));
    }
    let files = [
        ("aastra.cfg".to_owned(), &provisioning.global_cfg),
        (format!("{}.cfg", provisioning.mac), &provisioning.mac_cfg),
    ];
    if let Err(e) = std::fs::create_dir_all(out) {
        return usage_error(&format!("--out {}: {e}", out.display()));
    }
    let mut stdout = std::io::stdout().lock();
    for (name, text) in files {
        let path = out.join(name);
        if let Err(e) = std::fs::write(&path, text) {
            return usage_error(&format!("{}: {e}", path.display()));
        }
        let _ = writeln!(stdout, "{}", path.display());
    }
    EXIT_OK
}

fn serve(options: ServeOptions) -> u8 {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return usage_error(&format!("cannot start the runtime: {e}")),
    };
    let pinned = options.block;
    let outcome = runtime.block_on(crate::serve::serve(options));
    // A write to a stdout nobody reads may still be pending on a blocking thread: `quit` does
    // not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match outcome {
        Ok(()) => EXIT_OK,
        Err(e) => match (pinned, &e) {
            (Some(block), HarnessError::Bind { .. }) => usage_error(&format!("--block {block} is taken: {e}")),
            _ => usage_error(&e.to_string()),
        },
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
