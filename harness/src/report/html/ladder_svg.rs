//! A case's ladder as an SVG diagram written into its page: a column per party, an arrow per message, faults on the element's line, the failing check's window shaded.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use crate::case::CaseTrace;
use crate::error::{CheckWindow, Violation};
use crate::ladder::LiveLadder;
use crate::topology::{Element, Party, Topology};
use crate::trace::{Direction, Fate, Payload, TraceEvent};

use super::escape;

/// Messages drawn from the start of a long trace.
pub(super) const HEAD: usize = 400;
/// Messages drawn from its end.
pub(super) const TAIL: usize = 200;
/// Messages drawn either side of each one a failure names.
const CONTEXT: usize = 3;
/// How far after a sender's record the receiver's record of the same message is looked for.
const COUNTERPART_REACH: usize = 64;

/// Left margin holding each row's message number and lab time.
const GUTTER: f64 = 132.0;
/// Column widths: the narrowest, the widest, and the width the columns share when they can.
const COLUMN_MIN: f64 = 150.0;
const COLUMN_MAX: f64 = 300.0;
const DIAGRAM_WIDTH: f64 = 1060.0;
/// Right of the columns, where the failing checks' windows are labelled.
const MARGIN: f64 = 130.0;
const TOP: f64 = 46.0;
const ROW: f64 = 26.0;
const BOTTOM: f64 = 14.0;
/// The advance of one character of the labels' 11 px monospace font, a little generous.
const CHAR: f64 = 6.8;

/// The parties in the order their columns are drawn.
const ORDER: [Party; 8] = [
    Party::Phone,
    Party::Element(Element::Dns),
    Party::Element(Element::ProxyA),
    Party::Element(Element::ProxyB),
    Party::Element(Element::RegistrarA),
    Party::Element(Element::RegistrarB),
    Party::Element(Element::OutboundA),
    Party::Element(Element::OutboundB),
];

/// One drawn message or harness action, with its ladder line.
pub(super) struct Drawn<'a> {
    pub event: &'a TraceEvent,
    /// The ladder's line for it (`phone -> registrar-a udp REGISTER ...`), the same words and
    /// `call-N` numbering as the text ladder.
    pub line: String,
    pub from: Party,
    pub to: Party,
}

/// A row of the diagram.
pub(super) enum Row<'a> {
    Message(Drawn<'a>),
    /// Messages left out of a long trace: how many, and the first and last message numbers.
    Gap {
        omitted: usize,
        first: usize,
        last: usize,
    },
}

/// What the diagram draws: the chosen rows, the columns they use, and what to highlight.
pub(super) struct Ladder<'a> {
    pub columns: Vec<Party>,
    pub rows: Vec<Row<'a>>,
    /// Trace positions drawn in the failure's colour: what the failures name.
    pub highlighted: BTreeSet<usize>,
    /// Where each message a failure names is drawn (a sender's record at the receiver's).
    pub named: HashMap<usize, usize>,
    /// Trace positions that met an expectation.
    pub matched: BTreeSet<usize>,
    /// Each failure's watched window, labelled with its requirement.
    pub windows: Vec<(String, CheckWindow)>,
    /// How many messages the ladder shows in all (drawn or not).
    pub shown_total: usize,
    /// The width of one column: wider when there are few, so labels are cut less.
    pub column: f64,
}

impl Ladder<'_> {
    /// The drawn messages, in order.
    pub fn drawn(&self) -> impl Iterator<Item = &Drawn<'_>> {
        self.rows.iter().filter_map(|row| match row {
            Row::Message(drawn) => Some(drawn),
            Row::Gap { .. } => None,
        })
    }

    /// Whether some messages were left out.
    pub fn is_cut(&self) -> bool {
        self.rows.iter().any(|row| matches!(row, Row::Gap { .. }))
    }
}

fn ends(event: &TraceEvent, topology: &Topology) -> (Party, Party) {
    let me = Party::Element(event.element);
    if matches!(event.payload, Payload::Action(_)) {
        return (me, me);
    }
    let peer = topology.party(event.remote.ip());
    match event.direction {
        Direction::Received => (peer, me),
        Direction::Sent => (me, peer),
    }
}

fn same_payload(a: &Payload, b: &Payload) -> bool {
    match (a, b) {
        (Payload::Sip(a), Payload::Sip(b)) => a.raw().is_some() && a.raw() == b.raw(),
        (Payload::Malformed(a), Payload::Malformed(b)) => a.raw == b.raw,
        (Payload::Stun(a), Payload::Stun(b)) => a.transaction_id == b.transaction_id,
        (Payload::KeepAlive, Payload::KeepAlive) => true,
        _ => false,
    }
}

/// The trace position a ladder draws `index` at: itself when ladders show it, else (a message
/// one element sent another) the receiver's record of the same message.
fn drawn_as(events: &[TraceEvent], index: usize, shown: &HashMap<usize, usize>, topology: &Topology) -> Option<usize> {
    if shown.contains_key(&index) {
        return Some(index);
    }
    let sent = events.get(index)?;
    let Party::Element(receiver) = topology.party(sent.remote.ip()) else { return None };
    events
        .iter()
        .skip(index + 1)
        .take(COUNTERPART_REACH)
        .find(|e| {
            e.element == receiver
                && e.direction == Direction::Received
                && e.remote.ip() == sent.local.ip()
                && same_payload(&e.payload, &sent.payload)
        })
        .map(|e| e.index)
}

/// Chooses what to draw: every message the ladder shows, or for a long trace the first
/// [`HEAD`], the last [`TAIL`] and those around what the failures name, with gaps between.
pub(super) fn layout<'a>(trace: &'a CaseTrace, failures: &[Violation]) -> Ladder<'a> {
    let topology = &trace.topology;
    let mut text = LiveLadder::default();
    // Every shown event gets its line, so `call-N` numbers match the text ladder's.
    let mut shown: Vec<(usize, String)> = Vec::new();
    for event in &trace.events {
        if let Some(line) = text.line(event, topology) {
            shown.push((event.index, line));
        }
    }
    let position: HashMap<usize, usize> = shown.iter().enumerate().map(|(at, (index, _))| (*index, at)).collect();
    let named: HashMap<usize, usize> = failures
        .iter()
        .flat_map(|f| f.messages.iter())
        .filter_map(|&m| drawn_as(&trace.events, m, &position, topology).map(|drawn| (m, drawn)))
        .collect();
    let highlighted: BTreeSet<usize> = named.values().copied().collect();
    let matched: BTreeSet<usize> =
        trace.matched.iter().filter_map(|&m| drawn_as(&trace.events, m, &position, topology)).collect();
    let mut keep = vec![shown.len() <= HEAD + TAIL; shown.len()];
    for (at, kept) in keep.iter_mut().enumerate() {
        *kept |= at < HEAD || at + TAIL >= shown.len();
    }
    for index in &highlighted {
        if let Some(&at) = position.get(index) {
            for kept in keep.iter_mut().take(at + CONTEXT + 1).skip(at.saturating_sub(CONTEXT)) {
                *kept = true;
            }
        }
    }
    let mut rows = Vec::new();
    let mut gap: Option<(usize, usize, usize)> = None;
    for (at, (index, line)) in shown.into_iter().enumerate() {
        if !keep[at] {
            gap = Some(match gap {
                Some((omitted, first, _)) => (omitted + 1, first, index),
                None => (1, index, index),
            });
            continue;
        }
        if let Some((omitted, first, last)) = gap.take() {
            rows.push(Row::Gap { omitted, first, last });
        }
        let event = &trace.events[index];
        let (from, to) = ends(event, topology);
        rows.push(Row::Message(Drawn { event, line, from, to }));
    }
    if let Some((omitted, first, last)) = gap {
        rows.push(Row::Gap { omitted, first, last });
    }
    let mut columns: Vec<Party> = Vec::new();
    for row in &rows {
        if let Row::Message(drawn) = row {
            for party in [drawn.from, drawn.to] {
                if !columns.contains(&party) {
                    columns.push(party);
                }
            }
        }
    }
    // The lab's parties in their fixed order, anything else (console, unknown addresses) after.
    columns.sort_by_key(|party| ORDER.iter().position(|p| p == party).unwrap_or(ORDER.len()));
    let windows = failures.iter().filter_map(|f| f.window.map(|w| (f.requirement.id().to_owned(), w))).collect();
    let column = ((DIAGRAM_WIDTH - GUTTER) / columns.len().max(1) as f64).clamp(COLUMN_MIN, COLUMN_MAX).floor();
    Ladder { columns, rows, highlighted, named, matched, windows, shown_total: position.len(), column }
}

fn column_x(ladder: &Ladder, party: Party) -> f64 {
    let at = ladder.columns.iter().position(|p| *p == party).unwrap_or(0);
    GUTTER + ladder.column * (at as f64 + 0.5)
}

fn row_top(row: usize) -> f64 {
    TOP + ROW * row as f64
}

/// Where a lab time falls: the top of the first drawn row at or after it (`after`: strictly
/// after), or the end of the diagram.
fn time_y(ladder: &Ladder, at: std::time::Duration, after: bool) -> f64 {
    let row = ladder.rows.iter().position(|row| match row {
        Row::Message(drawn) => {
            if after {
                drawn.event.at > at
            } else {
                drawn.event.at >= at
            }
        }
        Row::Gap { .. } => false,
    });
    row_top(row.unwrap_or(ladder.rows.len()))
}

/// A label cut to fit `width` pixels.
fn fit(text: &str, width: f64) -> String {
    let room = ((width / CHAR).floor() as usize).max(6);
    if text.chars().count() <= room {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(room.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// The words of a ladder line after its two parties and transport (`REGISTER sip:...`), without
/// the fate (the arrow draws it).
fn what(line: &str) -> &str {
    let line = line.trim();
    let rest = line.split_once(" -> ").map_or(line, |(_, rest)| rest.trim_start());
    // After the receiver and the transport.
    let rest = rest.split_once(' ').map_or(rest, |(_, rest)| rest.trim_start());
    let rest = rest.split_once(' ').map_or(rest, |(_, rest)| rest);
    rest.split("  [dropped: ").next().unwrap_or(rest)
}

/// The diagram as one `<svg>` element.
pub(super) fn svg(ladder: &Ladder) -> String {
    let columns_end = GUTTER + ladder.column * ladder.columns.len().max(1) as f64;
    let width = columns_end + if ladder.windows.is_empty() { 10.0 } else { MARGIN };
    let height = row_top(ladder.rows.len()) + BOTTOM;
    let mut out = String::with_capacity(512 + ladder.rows.len() * 400);
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="ladder" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="ladder diagram">"#
    );
    // The failing checks' windows, behind everything.
    for (requirement, window) in &ladder.windows {
        let top = time_y(ladder, window.from, false);
        let bottom = time_y(ladder, window.until, true).max(top + 4.0);
        let _ = write!(
            out,
            r#"<g class="window"><rect class="window" x="0" y="{top}" width="{width}" height="{h}"/><text class="window-label" x="{x}" y="{ty}"><tspan x="{x}">{requirement} watched</tspan><tspan x="{x}" dy="13">{from:.3}s – {until:.3}s</tspan></text></g>"#,
            h = bottom - top,
            x = columns_end + 6.0,
            ty = top + 14.0,
            requirement = escape(requirement),
            from = window.from.as_secs_f64(),
            until = window.until.as_secs_f64(),
        );
    }
    for party in &ladder.columns {
        let x = column_x(ladder, *party);
        let _ = write!(
            out,
            r#"<line class="lifeline" x1="{x}" y1="{TOP}" x2="{x}" y2="{height}"/><rect class="party" x="{bx}" y="8" width="{bw}" height="26" rx="4"/><text class="party" x="{x}" y="25" text-anchor="middle">{name}</text>"#,
            bx = x - ladder.column / 2.0 + 8.0,
            bw = ladder.column - 16.0,
            name = escape(&party.to_string()),
        );
    }
    for (at, row) in ladder.rows.iter().enumerate() {
        let top = row_top(at);
        match row {
            Row::Gap { omitted, first, last } => {
                let y = top + ROW / 2.0;
                let _ = write!(
                    out,
                    r#"<g class="gap"><line x1="0" y1="{y}" x2="{width}" y2="{y}"/><text x="{x}" y="{ty}">{text}</text></g>"#,
                    x = GUTTER,
                    ty = y - 3.0,
                    text = escape(&format!(
                        "{omitted} messages not drawn (#{first} to #{last}); the text ladder below has them all"
                    )),
                );
            }
            Row::Message(drawn) => message(&mut out, ladder, drawn, top),
        }
    }
    out.push_str("</svg>");
    out
}

fn message(out: &mut String, ladder: &Ladder, drawn: &Drawn, top: f64) {
    let event = drawn.event;
    let mut class = String::from("msg");
    let dropped = match &event.fate {
        Fate::Dropped(fault) => Some(fault.as_str()),
        Fate::Delivered => None,
    };
    let action = match &event.payload {
        Payload::Action(text) => Some(text.as_str()),
        _ => None,
    };
    if let Some(text) = action {
        class.push_str(if text.starts_with("fail ") {
            " action fault"
        } else if text.starts_with("restore ") {
            " action restore"
        } else {
            " action"
        });
    }
    if dropped.is_some() {
        class.push_str(" dropped");
    }
    if ladder.highlighted.contains(&event.index) {
        class.push_str(" hl");
    }
    if ladder.matched.contains(&event.index) {
        class.push_str(" matched");
    }
    let y = top + ROW * 0.62;
    let _ = write!(
        out,
        r##"<g class="{class}" data-m="{index}"><title>{title}</title><a href="#m{index}"><text class="num" x="6" y="{ty}">#{index}</text></a><text class="time" x="{tx}" y="{ty}" text-anchor="end">{time:.3}s</text>"##,
        index = event.index,
        title = escape(drawn.line.trim()),
        ty = y + 4.0,
        tx = GUTTER - 10.0,
        time = event.at.as_secs_f64(),
    );
    if let Some(text) = action {
        let x = column_x(ladder, drawn.from);
        let w = (text.chars().count() as f64 * CHAR + 14.0).min(ladder.column * 2.0);
        let _ = write!(
            out,
            r#"<rect class="note" x="{bx}" y="{by}" width="{w}" height="18" rx="3"/><text class="note" x="{x}" y="{ty}" text-anchor="middle">{label}</text></g>"#,
            bx = x - w / 2.0,
            by = y - 11.0,
            ty = y + 2.0,
            label = escape(&fit(text, w - 8.0)),
        );
        return;
    }
    let (x1, x2) = (column_x(ladder, drawn.from), column_x(ladder, drawn.to));
    let words = what(&drawn.line);
    if (x1 - x2).abs() < 1.0 {
        // A party talking to itself: a small loop.
        let _ = write!(
            out,
            r#"<path class="arrow" d="M{x1} {a} h24 v10 h-20"/><text class="label" x="{lx}" y="{ly}">{label}</text></g>"#,
            a = y - 6.0,
            lx = x1 + 28.0,
            ly = y + 4.0,
            label = escape(&fit(words, ladder.column - 40.0)),
        );
        return;
    }
    let direction = if x2 > x1 { 1.0 } else { -1.0 };
    let _ = write!(out, r#"<line class="arrow" x1="{x1}" y1="{y}" x2="{x2}" y2="{y}"/>"#);
    match dropped {
        Some(_) => {
            // A cross where the message should have arrived.
            let _ = write!(
                out,
                r#"<path class="cross" d="M{a} {b} L{c} {d} M{a} {d} L{c} {b}"/>"#,
                a = x2 - 5.0,
                c = x2 + 5.0,
                b = y - 5.0,
                d = y + 5.0,
            );
        }
        None => {
            let _ = write!(
                out,
                r#"<path class="head" d="M{x2} {y} L{bx} {t} L{bx} {b} Z"/>"#,
                bx = x2 - direction * 8.0,
                t = y - 4.0,
                b = y + 4.0,
            );
        }
    }
    let label = match dropped {
        Some(fault) => format!("{words} ✕ dropped: {fault}"),
        None => words.to_owned(),
    };
    let _ = write!(
        out,
        r#"<text class="label" x="{x}" y="{ly}" text-anchor="middle">{label}</text></g>"#,
        x = (x1 + x2) / 2.0,
        ly = y - 4.0,
        label = escape(&fit(&label, (x1 - x2).abs() - 16.0)),
    );
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::report::html::tests::{event, sip_event, topology};
    use crate::requirement::Requirement;

    fn trace(events: Vec<TraceEvent>, matched: Vec<usize>) -> CaseTrace {
        CaseTrace { topology: topology(), started: std::time::UNIX_EPOCH, events, matched }
    }

    #[test]
    fn columns_are_the_parties_used_in_the_lab_order() {
        let topology = topology();
        let events = vec![
            sip_event(0, 100, Element::RegistrarB, Direction::Received, Party::Phone, Fate::Delivered, "REGISTER"),
            sip_event(1, 200, Element::Dns, Direction::Received, Party::Phone, Fate::Delivered, "OPTIONS"),
            event(2, 300, Element::ProxyA, Payload::Action("fail proxy-a silent".into()), &topology),
        ];
        let trace = trace(events, vec![]);
        let ladder = layout(&trace, &[]);
        assert_eq!(
            ladder.columns,
            [
                Party::Phone,
                Party::Element(Element::Dns),
                Party::Element(Element::ProxyA),
                Party::Element(Element::RegistrarB)
            ]
        );
        let svg = svg(&ladder);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
        assert!(svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<line class=\"lifeline\"").count(), 4);
        for name in ["phone", "dns", "proxy-a", "registrar-b"] {
            assert!(svg.contains(&format!(">{name}</text>")), "{name}");
        }
        assert!(!svg.contains(">registrar-a<"));
        // Time order, message numbers and lab times.
        let first = svg.find("data-m=\"0\"").unwrap();
        let second = svg.find("data-m=\"1\"").unwrap();
        assert!(first < second);
        assert!(svg.contains(">#0</text>") && svg.contains(">0.100s</text>"), "{svg}");
        // The fault on proxy-a's line.
        assert!(svg.contains("class=\"msg action fault\" data-m=\"2\""), "{svg}");
        assert!(svg.contains(">fail proxy-a silent</text>"), "{svg}");
    }

    #[test]
    fn a_message_between_elements_is_drawn_once_from_the_receiver() {
        let topology = topology();
        let mut sent = sip_event(0, 100, Element::ProxyA, Direction::Sent, Party::Phone, Fate::Delivered, "REGISTER");
        sent.remote = std::net::SocketAddr::new(topology.ip(Element::RegistrarA), 5060);
        sent.local = std::net::SocketAddr::new(topology.ip(Element::ProxyA), 5060);
        let mut received = sent.clone();
        received.index = 1;
        received.element = Element::RegistrarA;
        received.direction = Direction::Received;
        received.remote = sent.local;
        received.local = sent.remote;
        let trace = trace(vec![sent, received], vec![0]);
        let violation = Violation::new(Requirement::R1_2, "x".into(), "y".into(), "z".into()).pointing_at(vec![0]);
        let ladder = layout(&trace, &[violation]);
        assert_eq!(ladder.drawn().count(), 1);
        // The failure names the sender's record; the receiver's arrow is highlighted.
        assert_eq!(ladder.named.get(&0), Some(&1));
        assert!(ladder.highlighted.contains(&1));
        // The matched sender's record is marked on the receiver's arrow.
        assert!(ladder.matched.contains(&1));
        let svg = svg(&ladder);
        assert!(svg.contains("class=\"msg hl matched\" data-m=\"1\""), "{svg}");
    }

    #[test]
    fn a_dropped_message_is_a_dashed_arrow_ending_in_a_cross() {
        let trace = trace(
            vec![sip_event(
                0,
                100,
                Element::RegistrarA,
                Direction::Received,
                Party::Phone,
                Fate::Dropped("silent".into()),
                "REGISTER",
            )],
            vec![],
        );
        let svg = svg(&layout(&trace, &[]));
        assert!(svg.contains("class=\"msg dropped\""), "{svg}");
        assert!(svg.contains("<path class=\"cross\""), "{svg}");
        assert!(!svg.contains("<path class=\"head\""), "no arrowhead: {svg}");
        assert!(svg.contains("dropped: silent"), "{svg}");
    }

    #[test]
    fn the_failing_window_is_a_band_and_its_messages_are_highlighted() {
        let events: Vec<TraceEvent> = (0..6)
            .map(|i| {
                sip_event(
                    i,
                    1000 * i as u64,
                    Element::RegistrarA,
                    Direction::Received,
                    Party::Phone,
                    Fate::Delivered,
                    "REGISTER",
                )
            })
            .collect();
        let trace = trace(events, vec![]);
        let violation =
            Violation::new(Requirement::R1_2, "a REGISTER at registrar-b".into(), "none".into(), "no move".into())
                .watched(Duration::from_millis(2000), Duration::from_millis(3500))
                .pointing_at(vec![3]);
        let ladder = layout(&trace, &[violation]);
        let svg = svg(&ladder);
        // Rows 2 and 3 (at 2 s and 3 s) are inside: the band covers exactly them.
        let band = format!("<rect class=\"window\" x=\"0\" y=\"{}\"", row_top(2));
        assert!(svg.contains(&band), "{band} in {svg}");
        assert!(svg.contains(&format!("height=\"{}\"", ROW * 2.0)), "{svg}");
        assert!(svg.contains(">R1.2 watched</tspan>") && svg.contains(">2.000s – 3.500s</tspan>"), "{svg}");
        assert!(svg.contains("class=\"msg hl\" data-m=\"3\""), "{svg}");
        assert_eq!(svg.matches(" hl\"").count(), 1);
        // The band is drawn before (under) every arrow.
        assert!(svg.find("class=\"window\"").unwrap() < svg.find("class=\"msg").unwrap());
    }

    #[test]
    fn a_long_trace_draws_its_ends_and_what_the_failure_names() {
        let count = 10_000;
        let events: Vec<TraceEvent> = (0..count)
            .map(|i| {
                sip_event(
                    i,
                    i as u64,
                    Element::RegistrarA,
                    Direction::Received,
                    Party::Phone,
                    Fate::Delivered,
                    "REGISTER",
                )
            })
            .collect();
        let trace = trace(events, vec![]);
        let violation = Violation::new(Requirement::R1_2, "x".into(), "y".into(), "z".into()).pointing_at(vec![5000]);
        let ladder = layout(&trace, &[violation]);
        assert_eq!(ladder.shown_total, count);
        assert_eq!(ladder.drawn().count(), HEAD + TAIL + 2 * CONTEXT + 1);
        let gaps: Vec<(usize, usize, usize)> = ladder
            .rows
            .iter()
            .filter_map(|r| match r {
                Row::Gap { omitted, first, last } => Some((*omitted, *first, *last)),
                Row::Message(_) => None,
            })
            .collect();
        assert_eq!(
            gaps,
            [
                (5000 - CONTEXT - HEAD, HEAD, 5000 - CONTEXT - 1),
                (count - TAIL - 5000 - CONTEXT - 1, 5000 + CONTEXT + 1, count - TAIL - 1)
            ]
        );
        let svg = svg(&ladder);
        assert!(svg.len() < 1_000_000, "{} bytes", svg.len());
        assert!(svg.contains("messages not drawn (#400 to #4996)"), "gap note");
    }

    #[test]
    fn labels_are_cut_to_their_span() {
        assert_eq!(fit("REGISTER", 200.0), "REGISTER");
        let cut = fit(&"x".repeat(100), 68.0);
        assert_eq!(cut.chars().count(), 10);
        assert!(cut.ends_with('…'));
        assert_eq!(
            what("      phone -> registrar-a udp REGISTER sip:registrar-a call-1  [dropped: silent]"),
            "REGISTER sip:registrar-a call-1"
        );
    }
}
