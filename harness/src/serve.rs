//! `sipharness serve`: the whole topology and its DNS kept up for exploring a phone by hand, faults and DNS changes read from stdin.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::dut::ScriptedPhone;
use crate::elements::OutboundSupport;
use crate::error::HarnessError;
use crate::faults::{Event, Fault, FaultTarget};
use crate::lab::{BlockChoice, Lab, LabSpec};
use crate::phone_config::{self, PhoneKind};
use crate::provision::{Configuration, DEFAULT_MAC, Timers};
use crate::tls::CA_CERTIFICATE_FILE;
use crate::topology::Element;
use crate::trace::Transport;

mod printer;

/// How many events `serve` keeps in memory once printed: a window, not the whole run, so a
/// lab that runs for hours or takes load stays within a fixed budget (about 1.5 KB an event).
pub const TRACE_KEPT: usize = 8192;

/// One line of `serve`'s command language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Fail(FaultTarget, Fault),
    Restore(FaultTarget),
    Event(FaultTarget, Event),
    DnsSet { name: String, record_type: String, ttl: u32, rdata: String },
    DnsAdd { name: String, record_type: String, ttl: u32, rdata: String },
    DnsRemove { name: String, record_type: String },
    Quit,
}

pub const HELP: &str = "commands: fail <element>[/<transport>] silent|refuse|stall|delay <ms> | fail <target> reject <code> [retry-after=<s>] | \
restore <target> | reset <target> | restart <element> | dns set|add <name> <type> <ttl> <rdata> | dns remove <name> <type> | quit";

/// `<name> <type> <ttl> <rdata>`, where `args` is the text after `dns set`/`dns add`; the rdata is
/// the rest of the line as written, in master-file syntax.
fn dns_record(args: &str) -> Result<(String, String, u32, String), String> {
    let words: Vec<&str> = args.split_whitespace().collect();
    let [name, record_type, ttl, _, ..] = words.as_slice() else {
        return Err("expected <name> <type> <ttl> <rdata>".into());
    };
    let ttl: u32 = ttl.parse().map_err(|_| format!("bad ttl {ttl:?}"))?;
    Ok((name.to_string(), record_type.to_ascii_uppercase(), ttl, after_words(args, 3).to_owned()))
}

impl Command {
    pub fn parse(line: &str) -> Result<Command, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["quit"] => Ok(Command::Quit),
            ["fail", target, fault @ ..] => Ok(Command::Fail(FaultTarget::parse(target)?, Fault::parse_words(fault)?)),
            ["restore", target] => Ok(Command::Restore(FaultTarget::parse(target)?)),
            ["reset", target] => Ok(Command::Event(FaultTarget::parse(target)?, Event::Reset)),
            ["restart", element] => {
                let target = FaultTarget::parse(element)?;
                if target.transport.is_some() {
                    return Err("restart takes a whole element".into());
                }
                Ok(Command::Event(target, Event::Restart))
            }
            ["dns", "set", ..] => {
                let (name, record_type, ttl, rdata) = dns_record(after_words(line, 2))?;
                Ok(Command::DnsSet { name, record_type, ttl, rdata })
            }
            ["dns", "add", ..] => {
                let (name, record_type, ttl, rdata) = dns_record(after_words(line, 2))?;
                Ok(Command::DnsAdd { name, record_type, ttl, rdata })
            }
            ["dns", "remove", name, record_type] => {
                Ok(Command::DnsRemove { name: name.to_string(), record_type: record_type.to_ascii_uppercase() })
            }
            [] => Err("empty command".into()),
            _ => Err(format!("cannot parse {line:?}; {HELP}")),
        }
    }
}

/// The text after the first `n` words of `line`.
fn after_words(line: &str, n: usize) -> &str {
    let mut rest = line.trim_start();
    for _ in 0..n {
        rest = rest.find(char::is_whitespace).map_or("", |i| &rest[i..]).trim_start();
    }
    rest
}

/// How `serve` builds its lab, from its command line.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub configuration: Configuration,
    /// The transport the phone is configured for (`--phone-config`); every element serves all three.
    pub transport: Transport,
    /// Whether registrars demand digest authentication.
    pub digest: bool,
    /// The block to claim; the first free one from 127.100.0.16 when `None`.
    pub block: Option<Ipv4Addr>,
    /// A lab file's addresses instead of a loopback block (`--lab`).
    pub lab: Option<std::sync::Arc<crate::topology::Topology>>,
    /// Where the lab CA is kept across runs.
    pub ca_dir: Option<PathBuf>,
    /// Which phone to write settings for, and where.
    pub phone_config: Option<(PhoneKind, PathBuf)>,
    /// The phone's MAC, naming the vendor's `<MAC>.cfg`.
    pub mac: String,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            configuration: Configuration::NoOutbound,
            transport: Transport::Udp,
            digest: true,
            block: None,
            lab: None,
            ca_dir: None,
            phone_config: None,
            mac: DEFAULT_MAC.to_owned(),
        }
    }
}

/// The registrars' Min-Expires: any expiry a phone asks for is granted (up to the registrars'
/// 7200 s), so a phone provisioned with a short registration period for quick failover is not
/// sent a 423.
pub const MIN_EXPIRES_S: u32 = 1;

impl ServeOptions {
    /// The lab `serve` runs: real-phone timers, subscriptions on, Flow-Timer from those timers.
    pub fn lab_spec(&self) -> LabSpec {
        let timers = Timers::lab();
        let mut spec = LabSpec {
            timers,
            digest: self.digest,
            min_expires: MIN_EXPIRES_S,
            subscriptions: true,
            block: match (&self.lab, self.block) {
                (Some(lab), _) => BlockChoice::Lab(lab.clone()),
                (None, Some(base)) => BlockChoice::Pinned(base),
                (None, None) => BlockChoice::FirstFree,
            },
            ca_dir: self.ca_dir.clone(),
            mac: self.mac.clone(),
            // A phone by hand or a load test: its order across cores matters less than its rate.
            udp_readers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            ..LabSpec::new(self.configuration, self.transport)
        };
        spec.outbound = spec.outbound.map(|_| OutboundSupport::granting(timers.outbound.flow_timer));
        spec
    }
}

/// Writes one line of `serve`'s stdout protocol.
fn say(out: &mut impl Write, line: &str) {
    let _ = writeln!(out, "{line}");
}

/// Brings the topology up, prints its sockets, zone and credentials, then `ready`; then serves
/// commands from stdin until `quit`, end of input or Ctrl-C, printing the trace as it grows.
pub async fn serve(options: ServeOptions) -> Result<(), HarnessError> {
    let spec = options.lab_spec();
    let mut lab = Lab::start(&spec, Box::new(ScriptedPhone::default())).await?;
    let topology = lab.topology.clone();
    let provisioning = lab.provisioning.clone();
    if let Some((kind, dir)) = &options.phone_config {
        let written = phone_config::write(*kind, &provisioning, &topology, &lab.ca().certificate_pem, dir)?;
        let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
        tracing::warn!("serve: wrote {}", names.join(", "));
    }
    {
        let mut out = std::io::stdout().lock();
        for element in Element::SIP {
            let ip = topology.ip(element);
            say(&mut out, &format!("{element} udp {ip}:5060"));
            say(&mut out, &format!("{element} tcp {ip}:5060"));
            say(&mut out, &format!("{element} tls {ip}:5061"));
        }
        say(&mut out, &format!("dns udp {}", topology.dns_addr()));
        say(&mut out, &format!("dns tcp {}", topology.dns_addr()));
        say(&mut out, &format!("zone {}", topology.zone));
        // Printed with digest off too: a phone that always answers challenges needs them anyway.
        let line = &provisioning.line;
        say(
            &mut out,
            &format!("credentials user {} password {} realm {}", line.auth_name, line.password, topology.zone),
        );
        say(&mut out, "ready");
        let _ = out.flush();
    }
    let ca = match &options.ca_dir {
        Some(dir) => dir.join(CA_CERTIFICATE_FILE),
        None => lab.dir().join(CA_CERTIFICATE_FILE),
    };
    tracing::warn!(
        "serve: bind the phone to {} and point its DNS at {}; the lab CA is {}",
        topology.phone_ip(),
        topology.dns_addr(),
        ca.display()
    );

    // The printer renders what it takes at once and the trace then forgets it beyond a bound,
    // so a long run holds a fixed window of events; text stdout has not taken waits in a file.
    lab.trace().forget_read_after(TRACE_KEPT);
    let mut printer = printer::spawn(
        lab.trace().clone(),
        topology.clone(),
        tokio::io::stdout(),
        lab.dir().join("ladder.spool"),
        printer::SPOOL_MEMORY,
    );

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Ok(Some(line)) = line else { break };
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let command = match Command::parse(&line) {
            Ok(c) => c,
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "sipharness serve: {e}");
                continue;
            }
        };
        if let Err(e) = apply(&mut lab, command.clone()).await {
            let _ = writeln!(std::io::stderr(), "sipharness serve: {e}");
        }
        if command == Command::Quit {
            break;
        }
    }
    printer.abort();
    lab.shutdown().await;
    Ok(())
}

async fn apply(lab: &mut Lab, command: Command) -> Result<(), String> {
    match command {
        Command::Fail(target, fault) => {
            if target.element == Element::Dns && !matches!(fault, Fault::Silent | Fault::Refuse) {
                return Err("the DNS takes only silent and refuse".into());
            }
            lab.fail(target, fault);
        }
        Command::Restore(target) => lab.restore(target),
        Command::Event(target, event) => lab.event(target, event),
        // A DNS change is marked on the trace as a fault is, so the ladder shows it in place.
        Command::DnsSet { name, record_type, ttl, rdata } => {
            lab.zone().set(&name, &record_type, ttl, &[&rdata]).await?;
            lab.note_action(Element::Dns, format!("dns set {name} {record_type} {ttl} {rdata}"));
        }
        Command::DnsAdd { name, record_type, ttl, rdata } => {
            lab.zone().add(&name, &record_type, ttl, &rdata).await?;
            lab.note_action(Element::Dns, format!("dns add {name} {record_type} {ttl} {rdata}"));
        }
        Command::DnsRemove { name, record_type } => {
            lab.zone().remove(&name, &record_type).await?;
            lab.note_action(Element::Dns, format!("dns remove {name} {record_type}"));
        }
        Command::Quit => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        assert_eq!(Command::parse("quit"), Ok(Command::Quit));
        assert_eq!(
            Command::parse("fail registrar-a/tcp stall"),
            Ok(Command::Fail(FaultTarget::parse("registrar-a/tcp").unwrap(), Fault::Stall))
        );
        assert_eq!(
            Command::parse("fail proxy-b reject 503 retry-after=30"),
            Ok(Command::Fail(
                FaultTarget::parse("proxy-b").unwrap(),
                Fault::Reject { code: 503, retry_after: Some(30) }
            ))
        );
        assert_eq!(Command::parse("restore dns"), Ok(Command::Restore(FaultTarget::parse("dns").unwrap())));
        assert_eq!(
            Command::parse("reset outbound-a/tls"),
            Ok(Command::Event(FaultTarget::parse("outbound-a/tls").unwrap(), Event::Reset))
        );
        assert_eq!(
            Command::parse("dns set _sip._udp.lab.test. SRV 30 10 60 5060 registrar-a.lab.test."),
            Ok(Command::DnsSet {
                name: "_sip._udp.lab.test.".into(),
                record_type: "SRV".into(),
                ttl: 30,
                rdata: "10 60 5060 registrar-a.lab.test.".into()
            })
        );
        assert_eq!(
            Command::parse("dns remove proxy-a.lab.test a"),
            Ok(Command::DnsRemove { name: "proxy-a.lab.test".into(), record_type: "A".into() })
        );
    }

    #[test]
    fn rejects_what_it_cannot_parse() {
        for bad in [
            "",
            "fail",
            "fail nowhere silent",
            "fail proxy-a melt",
            "fail proxy-a/sctp silent",
            "restart proxy-a/udp",
            "dns set x A",
            "dns set x A sixty 127.0.0.9",
            "frobnicate",
        ] {
            assert!(Command::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }
}
