//! The normaliser: a trace as a ladder, one line per message, with everything that changes from run to run replaced by stable placeholders (BRIEF §7).

use std::collections::HashMap;
use std::fmt::Write as _;

use sip::{HeaderName, Host, Message, SipUri, StunClass, Uri};

use crate::topology::{Party, Topology};
use crate::trace::{Direction, DnsRecord, Fate, Payload, TraceEvent};

/// Numbers run-to-run values (Call-IDs, ephemeral ports) by first use.
#[derive(Default)]
struct Placeholders {
    call_ids: HashMap<String, usize>,
    ports: HashMap<u16, usize>,
}

impl Placeholders {
    fn call(&mut self, id: &str) -> String {
        let next = self.call_ids.len() + 1;
        format!("call-{}", self.call_ids.entry(id.to_owned()).or_insert(next))
    }

    fn port(&mut self, port: u16) -> String {
        if matches!(port, 53 | 5060 | 5061) {
            return port.to_string();
        }
        let next = self.ports.len() + 1;
        format!("port-{}", self.ports.entry(port).or_insert(next))
    }
}

fn host_name(host: &Host, topology: &Topology) -> String {
    match host.ip() {
        Some(ip) => match topology.party(ip) {
            Party::Unknown(_) => host.to_string(),
            party => party.to_string(),
        },
        None => host.to_string(),
    }
}

fn sip_uri(uri: &SipUri, topology: &Topology, placeholders: &mut Placeholders) -> String {
    let mut text = format!("sip:{}", uri.user.as_deref().map(|u| format!("{u}@")).unwrap_or_default());
    if uri.scheme == sip::Scheme::Sips {
        text = text.replacen("sip:", "sips:", 1);
    }
    text.push_str(&host_name(&uri.host, topology));
    if let Some(port) = uri.port {
        let _ = write!(text, ":{}", placeholders.port(port));
    }
    let _ = write!(text, "{}", uri.params);
    text
}

fn uri(uri: &Uri, topology: &Topology, placeholders: &mut Placeholders) -> String {
    match uri {
        Uri::Sip(u) => sip_uri(u, topology, placeholders),
        other => other.to_string(),
    }
}

fn sip_line(message: &Message, topology: &Topology, placeholders: &mut Placeholders) -> String {
    let call = message.call_id().map(|c| placeholders.call(c)).unwrap_or_else(|_| "call-?".into());
    if let Some(method) = message.method() {
        let target = match message.request_uri() {
            Some(Ok(u)) => uri(&u, topology, placeholders),
            _ => "?".into(),
        };
        let mut line = format!("{method} {target}");
        if let Ok(to) = message.to() {
            let _ = write!(line, " to={}", uri(&to.uri, topology, placeholders));
        }
        if let Ok(contacts) = message.contacts() {
            for contact in contacts {
                match contact.address() {
                    Some(a) => {
                        let _ = write!(line, " contact={}", uri(&a.uri, topology, placeholders));
                    }
                    None => line.push_str(" contact=*"),
                }
            }
        }
        if let Some(expires) = message.header(&HeaderName::Expires) {
            let _ = write!(line, " expires={expires}");
        }
        if let Some(event) = message.header(&HeaderName::Event) {
            let _ = write!(line, " event={event}");
        }
        if message.header(&HeaderName::Authorization).is_some() || message.header(&HeaderName::ProxyAuthorization).is_some() {
            line.push_str(" auth");
        }
        let _ = write!(line, " {call}");
        line
    } else {
        let status = message.status().unwrap_or(0);
        let reason = sip::reason_phrase(status);
        let method = message.cseq().map(|c| c.method.to_string()).unwrap_or_else(|_| "?".into());
        let mut line = format!("{status} {reason} ({method} {call})");
        if let Ok(contacts) = message.contacts() {
            if !contacts.is_empty() {
                let _ = write!(line, " bindings={}", contacts.len());
            }
        }
        if let Some(retry) = message.header(&HeaderName::RetryAfter) {
            let _ = write!(line, " retry-after={retry}");
        }
        line
    }
}

fn dns_answer(answer: &str, topology: &Topology) -> String {
    // `A 60 127.x.y.z`: the address becomes the element's name.
    let mut parts: Vec<String> = answer.split(' ').map(str::to_owned).collect();
    for part in parts.iter_mut() {
        if let Ok(ip) = part.parse::<std::net::IpAddr>() {
            *part = topology.party(ip).to_string();
        }
    }
    parts.join(" ")
}

fn line_of(event: &TraceEvent, topology: &Topology, placeholders: &mut Placeholders) -> String {
    if let Payload::Action(text) = &event.payload {
        return format!("== {text} ==");
    }
    let me = Party::Element(event.element).to_string();
    let peer = topology.party(event.remote.ip()).to_string();
    let (from, to) = match event.direction {
        Direction::Received => (peer, me),
        Direction::Sent => (me, peer),
    };
    let what = match &event.payload {
        Payload::Sip(m) => sip_line(m, topology, placeholders),
        Payload::Malformed(m) => format!("MALFORMED {}", m.diagnostics.first().map(|d| d.code).unwrap_or("?")),
        Payload::Stun(s) => match s.class {
            StunClass::BindingRequest => "STUN binding request".into(),
            StunClass::BindingSuccess => "STUN binding success".into(),
            StunClass::Other(t) => format!("STUN type {t:#06x}"),
        },
        Payload::KeepAlive => "keep-alive".into(),
        Payload::Dns(DnsRecord::Query { name, record_type, .. }) => format!("DNS query {record_type} {name}"),
        Payload::Dns(DnsRecord::Answer { name, record_type, rcode, answers, .. }) => {
            let answers: Vec<String> = answers.iter().map(|a| dns_answer(a, topology)).collect();
            format!("DNS answer {record_type} {name} {rcode} [{}]", answers.join(", "))
        }
        Payload::Dns(DnsRecord::Malformed { .. }) => "DNS malformed".into(),
        Payload::Action(_) => unreachable!("handled above"),
    };
    let fate = match &event.fate {
        Fate::Delivered => String::new(),
        Fate::Dropped(fault) => format!("  [dropped: {fault}]"),
    };
    format!("{from:>11} -> {to:<11} {} {what}{fate}", event.transport)
}

/// Whether an event shows in a ladder: a message one element sends another is drawn once, from
/// the receiver's record (which carries its fate under a fault).
fn shown(event: &TraceEvent, topology: &Topology) -> bool {
    let to_element = matches!(topology.party(event.remote.ip()), Party::Element(_));
    !(event.direction == Direction::Sent && to_element && !matches!(event.payload, Payload::Action(_)))
}

/// Renders events one at a time with placeholders that persist (for `serve`'s live trace).
#[derive(Default)]
pub struct LiveLadder {
    placeholders: Placeholders,
}

impl LiveLadder {
    /// The event's ladder line, or `None` if ladders do not show it.
    pub fn line(&mut self, event: &TraceEvent, topology: &Topology) -> Option<String> {
        shown(event, topology).then(|| line_of(event, topology, &mut self.placeholders))
    }
}

/// One event in words, without placeholders, for failure reports.
pub fn describe_event(event: &TraceEvent, topology: &Topology) -> String {
    line_of(event, topology, &mut Placeholders::default()).trim().to_owned()
}

/// Renders events as a normalised ladder. Runs of DNS lines are sorted (the resolver asks for
/// A and AAAA concurrently); repeated lines and repeated blocks of up to four lines collapse
/// into one copy marked with a count range, since retransmission and refresh counts depend on timing.
pub fn render(events: &[TraceEvent], topology: &Topology) -> String {
    let mut placeholders = Placeholders::default();
    let mut lines: Vec<String> =
        events.iter().filter(|e| shown(e, topology)).map(|e| line_of(e, topology, &mut placeholders)).collect();
    sort_dns_runs(&mut lines);
    let mut out = String::new();
    for (block, repeated) in collapse(&lines) {
        match (block.len(), repeated) {
            (_, false) => {
                for line in block {
                    let _ = writeln!(out, "{line}");
                }
            }
            (1, true) => {
                let _ = writeln!(out, "{}  (x2..)", block[0]);
            }
            (_, true) => {
                let _ = writeln!(out, "repeat (x2..) {{");
                for line in block {
                    let _ = writeln!(out, "  {line}");
                }
                let _ = writeln!(out, "}}");
            }
        }
    }
    out
}

fn sort_dns_runs(lines: &mut [String]) {
    let is_dns = |l: &String| l.contains(" DNS ");
    let mut i = 0;
    while i < lines.len() {
        if is_dns(&lines[i]) {
            let start = i;
            while i < lines.len() && is_dns(&lines[i]) {
                i += 1;
            }
            // Order by name and type, each query before its answer: causality survives, the
            // resolver's concurrency does not.
            lines[start..i].sort_by_key(|l| {
                let words: Vec<&str> = l.split(" DNS ").nth(1).unwrap_or("").split(' ').collect();
                let kind = words.first().copied().unwrap_or("");
                let rank = if kind == "query" { 0 } else { 1 };
                (words.get(2).copied().unwrap_or("").to_owned(), words.get(1).copied().unwrap_or("").to_owned(), rank, l.clone())
            });
        } else {
            i += 1;
        }
    }
}

/// Splits lines into blocks; a block that repeats back to back is kept once with `true`.
fn collapse(lines: &[String]) -> Vec<(Vec<String>, bool)> {
    let mut out: Vec<(Vec<String>, bool)> = Vec::new();
    let mut i = 0;
    'outer: while i < lines.len() {
        for size in 1..=4 {
            let block = &lines[i..(i + size).min(lines.len())];
            if block.len() < size {
                break;
            }
            let mut repeats = 1;
            while lines.get(i + repeats * size..i + (repeats + 1) * size) == Some(block) {
                repeats += 1;
            }
            if repeats > 1 {
                out.push((block.to_vec(), true));
                i += repeats * size;
                continue 'outer;
            }
        }
        out.push((vec![lines[i].clone()], false));
        i += 1;
    }
    out
}
