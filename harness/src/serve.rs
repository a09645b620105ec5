//! `sipharness serve`: the whole topology and its DNS kept up for exploring a phone by hand, faults and DNS changes read from stdin.

use std::io::Write as _;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::dut::ScriptedPhone;
use crate::error::HarnessError;
use crate::faults::{Event, Fault, FaultTarget};
use crate::lab::{Lab, LabSpec};
use crate::ladder::LiveLadder;
use crate::provision::Configuration;
use crate::topology::Element;
use crate::trace::Transport;

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

const HELP: &str = "commands: fail <element>[/<transport>] silent|refuse|stall | fail <target> reject <code> [retry-after=<s>] | \
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

/// Brings the topology up, prints its sockets, then serves commands from stdin until `quit`,
/// end of input or Ctrl-C.
pub async fn serve() -> Result<(), HarnessError> {
    let spec = LabSpec { first_free_block: true, ..LabSpec::new(Configuration::NoOutbound, Transport::Udp) };
    let mut lab = Lab::start(&spec, Box::new(ScriptedPhone::default())).await?;
    let topology = lab.topology.clone();
    {
        let mut out = std::io::stdout().lock();
        for element in Element::SIP {
            let ip = topology.ip(element);
            let _ = writeln!(out, "{element} udp {ip}:5060");
            let _ = writeln!(out, "{element} tcp {ip}:5060");
            let _ = writeln!(out, "{element} tls {ip}:5061");
        }
        let _ = writeln!(out, "dns udp {}", topology.dns_addr());
        let _ = writeln!(out, "dns tcp {}", topology.dns_addr());
        let _ = writeln!(out, "zone {}", topology.zone);
        let _ = writeln!(out, "ready");
        let _ = out.flush();
    }
    let ca = lab.dir().join("lab-ca.pem");
    tracing::warn!(
        "serve: bind the phone to {} and point its DNS at {}; the lab CA is {}",
        topology.phone_ip(),
        topology.dns_addr(),
        ca.display()
    );

    let trace = lab.trace().clone();
    let printer = tokio::spawn(async move {
        let mut ladder = LiveLadder::default();
        let mut next = 0;
        loop {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3600);
            let Some(event) = trace.wait_for(next, deadline, |_| true).await else { continue };
            next = event.index + 1;
            if let Some(line) = ladder.line(&event, &topology) {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        }
    });

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
        Command::DnsSet { name, record_type, ttl, rdata } => {
            lab.zone().set(&name, &record_type, ttl, &[&rdata]).await?
        }
        Command::DnsAdd { name, record_type, ttl, rdata } => lab.zone().add(&name, &record_type, ttl, &rdata).await?,
        Command::DnsRemove { name, record_type } => lab.zone().remove(&name, &record_type).await?,
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
