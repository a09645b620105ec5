//! The normaliser: a trace as a ladder, one line per message, with everything that changes from run to run replaced by stable placeholders (BRIEF §7).

use std::collections::HashMap;
use std::fmt::Write as _;

use sip::{HeaderName, Host, Message, SipUri, StunClass, Uri};

use crate::topology::{Party, Topology};
use crate::trace::{Direction, DnsRecord, Fate, Payload, RefusedAttempt, TraceEvent};

/// Numbers run-to-run values (Call-IDs) by first use, and hides ephemeral ports.
///
/// An ephemeral port names a connection of the phone's (its TLS Contact), and whether the phone
/// keeps a connection or opens a new one after a stall, and whether the kernel hands a new one
/// the port an old one had, depends on timing: so every ephemeral port is drawn as `port`, and
/// the ladder does not claim which connection a message used.
/// Past `MAX_CALL_IDS` the names are forgotten (a long `serve` run); numbers keep growing, so a
/// number never names two Call-IDs.
#[derive(Default)]
struct Placeholders {
    call_ids: HashMap<String, usize>,
    numbered: usize,
}

const MAX_CALL_IDS: usize = 16_384;

impl Placeholders {
    fn call(&mut self, id: &str) -> String {
        if self.call_ids.len() >= MAX_CALL_IDS && !self.call_ids.contains_key(id) {
            self.call_ids = HashMap::new();
        }
        let next = self.numbered + 1;
        let n = *self.call_ids.entry(id.to_owned()).or_insert(next);
        self.numbered = self.numbered.max(n);
        format!("call-{n}")
    }

    fn port(&mut self, port: u16) -> String {
        if matches!(port, 53 | 5060 | 5061) { port.to_string() } else { "port".to_owned() }
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
        if message.header(&HeaderName::Authorization).is_some()
            || message.header(&HeaderName::ProxyAuthorization).is_some()
        {
            line.push_str(" auth");
        }
        let _ = write!(line, " {call}");
        line
    } else {
        let status = message.status().unwrap_or(0);
        let reason = sip::reason_phrase(status);
        let method = message.cseq().map(|c| c.method.to_string()).unwrap_or_else(|_| "?".into());
        let mut line = format!("{status} {reason} ({method} {call})");
        let register = message.cseq().is_ok_and(|c| c.method == sip::Method::Register);
        if let (true, Ok(contacts)) = (register, message.contacts())
            && !contacts.is_empty()
        {
            let _ = write!(line, " bindings={}", contacts.len());
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
    let what = payload_line(&event.payload, topology, placeholders);
    let fate = match &event.fate {
        Fate::Delivered => String::new(),
        // What the loopback capture saw go to a closed port: `[refused: RST]`.
        Fate::Dropped(why) if matches!(event.payload, Payload::Refused(_)) => format!("  [{why}]"),
        Fate::Dropped(fault) => format!("  [dropped: {fault}]"),
    };
    format!("{from:>11} -> {to:<11} {} {what}{fate}", event.transport)
}

fn payload_line(payload: &Payload, topology: &Topology, placeholders: &mut Placeholders) -> String {
    match payload {
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
        Payload::Refused(RefusedAttempt::Datagram(inner)) => payload_line(inner, topology, placeholders),
        Payload::Refused(RefusedAttempt::Connect) => "connect (SYN)".into(),
        Payload::Action(text) => format!("== {text} =="),
    }
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

/// Renders the snapshot of a case (BRIEF §7). The trace is cut into phases at the harness's
/// actions; each phase shows the phone's DNS up to the phase's last checkpoint (a matched
/// expectation) and, for each checkpoint, the transaction it belongs to (the request at every
/// hop and the answers up to the checkpoint), retransmissions drawn once. The phone runs its
/// registrations and subscriptions concurrently and refreshes them on timers, so nothing else is
/// drawn: transactions are sorted by what they say, and Call-IDs and ports are numbered by first
/// use in the result. Failure reports draw everything (`render`).
pub fn render_snapshot(events: &[TraceEvent], matched: &[usize], topology: &Topology) -> String {
    let mut placeholders = Placeholders::default();
    let transaction_of = |event: &TraceEvent| -> Option<(String, String)> {
        let message = event.sip()?;
        Some((message.call_id().ok()?.to_owned(), message.cseq().ok()?.to_string()))
    };
    let mut out: Vec<String> = Vec::new();
    let mut phase_start = 0;
    let phase_ends: Vec<usize> = events
        .iter()
        .filter(|e| matches!(e.payload, Payload::Action(_)))
        .map(|e| e.index)
        .chain(std::iter::once(usize::MAX))
        .collect();
    for end in phase_ends {
        let in_phase = |e: &TraceEvent| e.index >= phase_start && e.index < end;
        let checkpoints: Vec<&TraceEvent> =
            events.iter().filter(|e| in_phase(e) && matched.contains(&e.index)).collect();
        let last = checkpoints.iter().map(|e| e.index).max();
        let mut groups: Vec<Vec<String>> = Vec::new();
        if let Some(last) = last {
            let mut dns: Vec<(String, usize)> = events
                .iter()
                .filter(|e| in_phase(e) && e.index <= last && matches!(e.payload, Payload::Dns(_)))
                .filter(|e| topology.party(e.remote.ip()) == Party::Phone)
                .map(|e| (line_of(e, topology, &mut placeholders), 0))
                .collect();
            sort_dns_runs(&mut dns);
            let mut dns: Vec<String> = dns.into_iter().map(|(line, _)| line).collect();
            dns.dedup();
            if !dns.is_empty() {
                groups.push(dns);
            }
        }
        let mut drawn: Vec<(String, String)> = Vec::new();
        for checkpoint in &checkpoints {
            let Some(key) = transaction_of(checkpoint) else { continue };
            if drawn.contains(&key) {
                continue;
            }
            let until = checkpoints
                .iter()
                .filter(|c| transaction_of(c).as_ref() == Some(&key))
                .map(|c| c.index)
                .max()
                .unwrap_or(0);
            let mut lines: Vec<String> = Vec::new();
            // The checkpoint itself is drawn even where ladders draw a hop from its receiver.
            for event in
                events.iter().filter(|e| in_phase(e) && e.index <= until && (shown(e, topology) || e.index == until))
            {
                if transaction_of(event).as_ref() == Some(&key) {
                    let line = line_of(event, topology, &mut placeholders);
                    if !lines.contains(&line) {
                        lines.push(line);
                    }
                }
            }
            drawn.push(key);
            groups.push(lines);
        }
        groups.sort_by_key(|lines| (!lines[0].contains(" DNS "), mask_numbers(&lines[0])));
        out.extend(groups.into_iter().flatten());
        if let Some(action) = events.get(end)
            && let Payload::Action(text) = &action.payload
        {
            out.push(format!("== {text} =="));
        }
        phase_start = end.saturating_add(1);
        if matched.iter().all(|&m| m < phase_start) {
            break;
        }
    }
    let text = renumber(&out.join("\n"));
    if text.is_empty() { text } else { text + "\n" }
}

/// A line with its placeholder numbers hidden, to sort groups by what they say.
fn mask_numbers(line: &str) -> String {
    let mut masked = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        masked.push(c);
        if c == '-' && masked.ends_with("call-") {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            masked.push('N');
        }
    }
    masked
}

/// Renumbers `call-N` placeholders by first appearance in `text`.
fn renumber(text: &str) -> String {
    let mut maps: [std::collections::HashMap<String, usize>; 1] = Default::default();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let next = ["call-"].iter().enumerate().filter_map(|(i, p)| rest.find(p).map(|at| (at, i, *p))).min();
        let Some((at, kind, prefix)) = next else {
            out.push_str(rest);
            break;
        };
        let digits_start = at + prefix.len();
        let digits_len = rest[digits_start..].chars().take_while(char::is_ascii_digit).count();
        out.push_str(&rest[..digits_start]);
        if digits_len == 0 {
            rest = &rest[digits_start..];
            continue;
        }
        let old = &rest[digits_start..digits_start + digits_len];
        let len = maps[kind].len();
        let new = *maps[kind].entry(old.to_owned()).or_insert(len + 1);
        out.push_str(&new.to_string());
        rest = &rest[digits_start + digits_len..];
    }
    out
}

/// Renders events as a ladder, in the order they happened (failure reports): each line starts
/// with its message number (`#12`, the event's position in the trace, which failures cite) and
/// its time in the lab. Runs of DNS lines are sorted (the resolver asks for A and AAAA
/// concurrently); repeated lines and repeated blocks of up to four lines collapse into their
/// first copy, marked with the count and the number of the last copy's first line.
pub fn render(events: &[TraceEvent], topology: &Topology) -> String {
    let mut placeholders = Placeholders::default();
    let shown: Vec<&TraceEvent> = events.iter().filter(|e| shown(e, topology)).collect();
    let mut lines: Vec<(String, usize)> =
        shown.iter().enumerate().map(|(at, e)| (line_of(e, topology, &mut placeholders), at)).collect();
    sort_dns_runs(&mut lines);
    let (texts, order): (Vec<String>, Vec<usize>) = lines.into_iter().unzip();
    let stamp = |line: usize| {
        let event = shown[order[line]];
        format!("#{:<5} {:>8.3}s", event.index, event.at.as_secs_f64())
    };
    let mut out = String::new();
    for Block { start, size, repeats } in collapse(&texts) {
        match (size, repeats) {
            (_, 1) => {
                for (line, text) in texts.iter().enumerate().skip(start).take(size) {
                    let _ = writeln!(out, "{} {text}", stamp(line));
                }
            }
            (1, n) => {
                let last = shown[order[start + n - 1]].index;
                let _ = writeln!(out, "{} {}  (x{n}, last #{last})", stamp(start), texts[start]);
            }
            (_, n) => {
                let last = shown[order[start + (n - 1) * size]].index;
                let _ = writeln!(out, "repeat (x{n}, last from #{last}) {{");
                for (line, text) in texts.iter().enumerate().skip(start).take(size) {
                    let _ = writeln!(out, "  {} {text}", stamp(line));
                }
                let _ = writeln!(out, "}}");
            }
        }
    }
    out
}

fn sort_dns_runs(lines: &mut [(String, usize)]) {
    let is_dns = |(l, _): &(String, usize)| l.contains(" DNS ");
    let mut i = 0;
    while i < lines.len() {
        if is_dns(&lines[i]) {
            let start = i;
            while i < lines.len() && is_dns(&lines[i]) {
                i += 1;
            }
            // Order by name and type, each query before its answer: causality survives, the
            // resolver's concurrency does not.
            lines[start..i].sort_by_key(|(l, at)| {
                let words: Vec<&str> = l.split(" DNS ").nth(1).unwrap_or("").split(' ').collect();
                let kind = words.first().copied().unwrap_or("");
                let rank = if kind == "query" { 0 } else { 1 };
                (
                    words.get(2).copied().unwrap_or("").to_owned(),
                    words.get(1).copied().unwrap_or("").to_owned(),
                    rank,
                    l.clone(),
                    *at,
                )
            });
        } else {
            i += 1;
        }
    }
}

/// A run of `size` lines from `start`, repeated back to back `repeats` times.
struct Block {
    start: usize,
    size: usize,
    repeats: usize,
}

/// Splits lines into blocks of up to four lines, each with how often it repeats back to back.
fn collapse(lines: &[String]) -> Vec<Block> {
    let mut out = Vec::new();
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
                out.push(Block { start: i, size, repeats });
                i += repeats * size;
                continue 'outer;
            }
        }
        out.push(Block { start: i, size: 1, repeats: 1 });
        i += 1;
    }
    out
}
