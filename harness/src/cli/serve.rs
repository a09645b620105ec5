//! `sipharness serve`'s flags and the command itself: the topology kept up for a person exploring a phone.

use std::path::PathBuf;

use super::{EXIT_OK, read_lab, usage_error};
use crate::error::HarnessError;
use crate::phone_config::PhoneKind;
use crate::provision::Configuration;
use crate::serve::ServeOptions;
use crate::trace::Transport;

pub(super) const SERVE_ABOUT: &str = "Keep the whole topology and its DNS up for exploring a phone by hand.\n\n\
Prints one line per listening socket (`<element> <udp|tcp|tls> <addr>:<port>`), `zone <name>`, \
`credentials user <user> password <password> realm <realm>` (also with --digest off), then `ready`; \
on stderr the address to bind the phone to and the lab CA's file. Then it reads commands from stdin \
and prints the trace as ladder lines, each stamped with the milliseconds since the lab started \
(`+1234ms`); a command is acknowledged by its marker in the ladder (`+5000ms == fail registrar-a silent ==`).";

pub(super) const SERVE_AFTER_HELP: &str = "Which element serves which request (the zone names each `<element>.<zone>`):\n  \
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
pub(super) struct ServeArgs {
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
    pub(super) fn options(self) -> Result<ServeOptions, String> {
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

pub(super) fn serve(options: ServeOptions) -> u8 {
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
