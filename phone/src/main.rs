//! `refphone`: the command line of the reference phone; reads flags and cfg files, then runs the phone until SIGINT or SIGTERM.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use phone::PhoneError;
use phone::config::{PhoneConfig, supported_keys};
use phone::core::CoreSettings;
use phone::quirks::{Quirk, Quirks};

/// The reference phone: an executable model of the vendor's SIP phone (Release 3.2.2 backup
/// registrar/proxy failover) that the harness tests against.
///
/// It reads the vendor's cfg files, registers line 1 at the primary registrar with the primary
/// proxy's AOR, subscribes (BLF keys, MWI) at the primary proxy, and follows the seed's table when
/// a registrar, proxy or outbound proxy fails (timeout, ICMP unreachable, reset, 408, 5xx, 6xx)
/// and when it returns (OPTIONS probes). Logs go to stderr; set RUST_LOG (default info).
#[derive(Debug, Parser)]
#[command(name = "refphone", version, after_long_help = cfg_help())]
struct Cli {
    /// A vendor cfg file (`key: value` lines, `#` comments). Repeatable: files apply in order,
    /// a later one overriding an earlier one, as aastra.cfg then <MAC>.cfg do on the real phone.
    #[arg(long = "config", value_name = "FILE", required_unless_present = "list_quirks")]
    configs: Vec<PathBuf>,

    /// The phone's MAC address (12 hex digits, separators allowed); checked, and logged.
    #[arg(long, value_name = "MAC")]
    mac: Option<String>,

    /// The phone's own IP address. Every socket binds it before it sends: the SIP listener on
    /// ADDR:5060 (UDP), one connected UDP socket per server, and the DNS queries. Never a wildcard.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    bind: IpAddr,

    /// The DNS server to ask (the harness's authoritative DNS), e.g. 127.66.0.2:53. Needed when
    /// the cfg names servers by FQDN; the system's resolver configuration is never read.
    #[arg(long, value_name = "ADDR:PORT")]
    dns: Option<SocketAddr>,

    /// A PEM file of the CA that signs the servers' TLS certificates: the only trust anchor for
    /// TLS (sip transport protocol: 4). The certificate must name the host the phone connects to.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,

    /// Where to listen for the vendor's XML push over HTTP: POST
    /// `xml=<AastraIPPhoneExecute><ExecuteItem URI="Dial:1234"/></AastraIPPhoneExecute>` (or the
    /// raw XML); `Dial:<number>` and `Command: Reset` are obeyed. Binds exactly this address.
    #[arg(long, value_name = "ADDR:PORT")]
    http: Option<SocketAddr>,

    /// A directory for what survives a reboot: the RFC 5626 +sip.instance, made once and kept in
    /// DIR/instance. Without it the instance lasts one run.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// Switch on a deliberate breakage (repeatable), so a conformance case can prove it fails.
    /// See --list-quirks.
    #[arg(long = "quirk", value_name = "NAME")]
    quirks: Vec<String>,

    /// Print every quirk, one per line: `<name> TAB <what it breaks>`, and exit.
    #[arg(long)]
    list_quirks: bool,
}

fn cfg_help() -> String {
    let mut help = String::from(
        "Cfg keys (case-insensitive; `sip lineN ...` overrides `sip ...` for line N; hosts are FQDNs or IPs,\n\
         0.0.0.0 or empty switches a server off, port 0 asks for SRV; timers take fractions):\n",
    );
    for key in supported_keys() {
        help.push_str("  ");
        help.push_str(&key);
        help.push('\n');
    }
    help.push_str(
        "Only line 1 is used. A timer refphone adds has a `refphone ...` key; see ARCHITECTURE.md for the failover\n\
         state machine and the bound on how late a primary's return is noticed (probe interval + transaction timer).\n\
         `refphone stun rto` (ms, default 500): the initial RTO of a UDP keep-alive's STUN transaction (RFC 5389\n\
         §7.2.1): retransmitted after RTO, doubling, 7 sends in all; no answer 16 RTO after the last (79 RTO from the\n\
         first) fails the flow. `refphone pong timeout` (s, default 10) bounds a CRLF ping on TCP/TLS.\n\n\
         Exit codes: 0 stopped by SIGINT/SIGTERM, 1 runtime failure, 2 bad flags or cfg.",
    );
    help
}

#[allow(clippy::print_stdout, clippy::print_stderr)]
fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => {
            // --help and --version.
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            // clap's message, up to its usage section, on one line.
            let rendered = error.render().to_string();
            let message: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            eprintln!("refphone: {} (see refphone --help)", message.join(" ").trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    if cli.list_quirks {
        for quirk in Quirk::ALL {
            println!("{}\t{}", quirk.name(), quirk.breaks());
        }
        return ExitCode::SUCCESS;
    }
    let (settings, push_allowed) = match prepare(&cli) {
        Ok(prepared) => prepared,
        Err(error) => {
            eprintln!("refphone: {error}");
            return ExitCode::from(2);
        }
    };
    init_logging();
    let options = phone::io::ShellOptions {
        dns: cli.dns,
        http: cli.http,
        ca: cli.ca.clone(),
        push_allowed: push_allowed.clone(),
    };
    match run(settings, options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let usage = error.downcast_ref::<PhoneError>().is_some_and(PhoneError::is_usage_error);
            eprintln!("refphone: {error:#}");
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

/// Checks the flags and reads the cfg into the core's settings.
fn prepare(cli: &Cli) -> Result<(CoreSettings, Option<Vec<IpAddr>>), PhoneError> {
    let quirks = Quirks::parse_all(&cli.quirks)?;
    if let Some(mac) = &cli.mac {
        check_mac(mac)?;
    }
    if cli.bind.is_unspecified() {
        return Err(PhoneError::BadFlag {
            flag: "--bind",
            reason: "a wildcard address would swallow ICMP errors; give the phone's own address".into(),
        });
    }
    if let Some(http) = cli.http
        && http.ip().is_unspecified()
    {
        return Err(PhoneError::BadFlag {
            flag: "--http",
            reason: "give the exact address to listen on, not a wildcard".into(),
        });
    }
    let config = PhoneConfig::load(&cli.configs)?;
    let line = config.line(1);
    let servers = [
        &line.registrar,
        &line.backup_registrar,
        &line.proxy,
        &line.backup_proxy,
        &config.outbound_proxy.destination(),
        &config.backup_outbound_proxy.destination(),
    ];
    let named_server = servers.into_iter().flatten().find(|d| d.host.ip().is_none());
    if let (Some(server), None) = (named_server, cli.dns) {
        return Err(PhoneError::BadFlag {
            flag: "--dns",
            reason: format!("the cfg names {} by FQDN, so refphone needs a DNS server", server.host),
        });
    }
    let fresh_instance = quirks.has(phone::quirks::Quirk::NewInstanceEachBoot);
    let instance = phone::state::load_or_create_instance(cli.state_dir.as_deref(), fresh_instance)?;
    let mut settings = CoreSettings::from_config(&config, cli.bind, quirks, instance, rand::random());
    if settings.transport == phone::core::Transport::Tls && cli.ca.is_none() {
        return Err(PhoneError::BadFlag {
            flag: "--ca",
            reason: "TLS (sip transport protocol: 4) needs the CA that signs the servers".into(),
        });
    }
    settings.listen_port = settings.transport.default_port();
    Ok((settings, config.xml_application_post_list.clone()))
}

fn check_mac(mac: &str) -> Result<(), PhoneError> {
    let digits: String = mac.chars().filter(|c| !matches!(c, ':' | '-' | '.')).collect();
    if digits.len() == 12 && digits.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(PhoneError::BadFlag { flag: "--mac", reason: format!("expected 12 hex digits, got {mac:?}") })
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour).init();
}

fn run(settings: CoreSettings, options: phone::io::ShellOptions) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    runtime.block_on(async {
        let shutdown = shutdown_signal()?;
        phone::io::run(settings, options, shutdown).await?;
        Ok(())
    })
}

/// Completes on SIGINT or SIGTERM.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
        }
    })
}
