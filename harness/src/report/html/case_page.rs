//! One case's page: its verdict, each failure with the seed's sentence, the requirements it checks, the ladder diagram and every drawn message's full text.

use std::fmt::Write as _;

use crate::case::{CaseResult, Verdict};
use crate::trace::{DnsRecord, Fate, Payload, RefusedAttempt, TraceEvent};

use super::ladder_svg::{self, Ladder};
use super::{escape, nonce, page, seconds, verdict_class};

/// The most of one message's text a page holds.
const MESSAGE_TEXT: usize = 16 * 1024;
/// The most of the text ladder a page holds (its start and its end).
const TEXT_LADDER: usize = 256 * 1024;

/// Shows a clicked message's text in a panel, and opens its entry in the list.
const SCRIPT: &str = r#"
(function () {
  var viewer = document.getElementById('viewer');
  var title = document.getElementById('viewer-title');
  var text = document.getElementById('viewer-text');
  document.getElementById('viewer-close').addEventListener('click', function () { viewer.hidden = true; });
  var diagram = document.querySelector('svg.ladder');
  if (!diagram) { return; }
  diagram.addEventListener('click', function (event) {
    var row = event.target.closest('g[data-m]');
    if (!row) { return; }
    var entry = document.getElementById('m' + row.getAttribute('data-m'));
    if (!entry) { return; }
    event.preventDefault();
    entry.open = true;
    title.textContent = entry.querySelector('summary').textContent;
    text.textContent = entry.querySelector('pre').textContent;
    viewer.hidden = false;
  });
})();
"#;

/// The page of one finished case.
pub(super) fn render(result: &CaseResult) -> String {
    let nonce = nonce();
    let ladder = result.trace.as_deref().map(|trace| ladder_svg::layout(trace, &result.failures));
    let failed = matches!(result.verdict, Verdict::Fail | Verdict::Xpass);
    let class = verdict_class(result.verdict);
    let mut body = String::new();
    let _ = write!(
        body,
        "<p><a href=\"../index.html\">&larr; all cases</a></p>\n<h1 class=\"mono\">{} <span class=\"badge v-{class}\">{}</span></h1>\n<p class=\"meta\">duration {} &middot; requirements {}</p>\n",
        escape(&result.id),
        result.verdict.label(),
        seconds(result.duration),
        escape(&result.requirements.iter().map(|r| r.id()).collect::<Vec<_>>().join(", ")),
    );
    if let Some(reason) = &result.reason {
        let box_class = if failed && result.failures.is_empty() { "failure" } else { "reason" };
        let _ = writeln!(body, "<p class=\"{box_class}\">{}</p>", escape(reason));
    }
    if !result.failures.is_empty() {
        body.push_str("<h2>Failures</h2>\n");
    }
    for failure in &result.failures {
        let _ = write!(
            body,
            "<div class=\"failure\"><h3>{}: {}</h3><p class=\"sentence\">{}</p><dl><dt>expected</dt><dd>{}</dd><dt>arrived</dt><dd>{}</dd>",
            escape(failure.requirement.id()),
            escape(&failure.message),
            escape(failure.requirement.sentence()),
            escape(&failure.expected),
            escape(&failure.arrived),
        );
        if let Some(window) = failure.window {
            let _ = write!(
                body,
                "<dt>watched</dt><dd>lab time {:.3} s to {:.3} s (shaded in the diagram)</dd>",
                window.from.as_secs_f64(),
                window.until.as_secs_f64()
            );
        }
        if !failure.messages.is_empty() {
            body.push_str("<dt>messages</dt><dd>");
            for m in &failure.messages {
                // A message one element sent another is drawn, and listed, from the receiver.
                let drawn = ladder.as_ref().and_then(|l| l.named.get(m)).copied().unwrap_or(*m);
                let _ = write!(body, "<a href=\"#m{drawn}\">#{m}</a> ");
            }
            body.push_str("</dd>");
        }
        body.push_str("</dl></div>\n");
    }
    if !result.requirements.is_empty() {
        body.push_str("<h2>Requirements</h2>\n<div class=\"requirements\"><dl>");
        for requirement in &result.requirements {
            let _ = write!(body, "<dt>{}</dt><dd>{}</dd>", escape(requirement.id()), escape(requirement.sentence()));
        }
        body.push_str("</dl></div>\n");
    }
    body.push_str("<h2>Ladder</h2>\n");
    match &ladder {
        Some(ladder) => {
            diagram(&mut body, ladder);
            messages(&mut body, ladder);
        }
        None => body.push_str("<p class=\"meta\">No lab ran for this case, so it has no ladder.</p>\n"),
    }
    if !result.full_ladder.is_empty() {
        let _ = writeln!(
            body,
            "<h2>Text ladder</h2>\n<details><summary>the whole trace as text (message numbers as above)</summary><pre>{}</pre></details>",
            escape(&bounded(&result.full_ladder, TEXT_LADDER))
        );
    }
    body.push_str(
        "<aside id=\"viewer\" hidden><button type=\"button\" id=\"viewer-close\">close</button><strong id=\"viewer-title\" class=\"mono\"></strong><pre id=\"viewer-text\"></pre></aside>\n",
    );
    let _ = write!(body, "<script nonce=\"{nonce}\">{SCRIPT}</script>");
    page(&format!("{}: {}", result.id, result.verdict.label()), &nonce, &body)
}

fn diagram(body: &mut String, ladder: &Ladder) {
    body.push_str(
        "<p class=\"legend\">Click a message for its full text. Shaded band: the window a failing check watched; \
         red: the messages a failure names; dashed arrow ending in &#x2715;: dropped by a fault; \
         green number: a message that met an expectation; boxes on a line: faults injected and lifted.</p>\n",
    );
    if ladder.is_cut() {
        let _ = writeln!(
            body,
            "<p class=\"meta\">A long trace: {} of its {} messages are drawn (the first {}, the last {}, and those around what the failures name).</p>",
            ladder.drawn().count(),
            ladder.shown_total,
            ladder_svg::HEAD,
            ladder_svg::TAIL,
        );
    }
    body.push_str("<div class=\"diagram\">");
    body.push_str(&ladder_svg::svg(ladder));
    body.push_str("</div>\n");
}

fn messages(body: &mut String, ladder: &Ladder) {
    body.push_str("<h2>Messages</h2>\n");
    for drawn in ladder.drawn() {
        let event = drawn.event;
        let hl = if ladder.highlighted.contains(&event.index) { " hl" } else { "" };
        let _ = writeln!(
            body,
            "<details class=\"message{hl}\" id=\"m{}\"><summary>#{} {:.3}s {}</summary><pre>{}</pre></details>",
            event.index,
            event.index,
            event.at.as_secs_f64(),
            escape(drawn.line.trim()),
            escape(&full_text(event)),
        );
    }
}

/// A message's whole text as it crossed the wire, with where it went and its fate.
fn full_text(event: &TraceEvent) -> String {
    let mut text = String::new();
    if !matches!(event.payload, Payload::Action(_)) {
        let _ = write!(
            text,
            "{} {:?} by {}: local {} remote {}",
            event.transport, event.direction, event.element, event.local, event.remote
        );
        if let Some(flow) = event.flow {
            let _ = write!(text, " flow {flow}");
        }
        match (&event.fate, &event.payload) {
            (Fate::Dropped(why), Payload::Refused(_)) => {
                let _ = write!(text, "\n{why} (the port was closed; seen by the lab's loopback capture)");
            }
            (Fate::Dropped(fault), _) => {
                let _ = write!(text, "\ndropped by the fault: {fault}");
            }
            (Fate::Delivered, _) => {}
        }
        text.push_str("\n\n");
    }
    text.push_str(&bounded(&body(&event.payload), MESSAGE_TEXT));
    text
}

/// What a payload carried, in words.
fn body(payload: &Payload) -> String {
    match payload {
        Payload::Sip(message) => match message.raw() {
            Some(raw) => String::from_utf8_lossy(raw).into_owned(),
            None => String::from_utf8_lossy(&message.to_bytes()).into_owned(),
        },
        Payload::Malformed(malformed) => {
            format!("malformed: {malformed}\n\n{}", String::from_utf8_lossy(&malformed.raw))
        }
        Payload::Stun(stun) => {
            let id: String = stun.transaction_id.iter().map(|b| format!("{b:02x}")).collect();
            let mapped = stun.mapped_address.map(|a| format!(", mapped address {a}")).unwrap_or_default();
            format!("STUN {:?}, transaction {id}{mapped}", stun.class)
        }
        Payload::KeepAlive => "CRLF keep-alive".into(),
        Payload::Dns(DnsRecord::Query { id, name, record_type, .. }) => {
            format!("DNS query id {id}: {name} {record_type}")
        }
        Payload::Dns(DnsRecord::Answer { id, name, record_type, rcode, answers, .. }) => {
            format!("DNS answer id {id}: {name} {record_type} {rcode}\n{}", answers.join("\n"))
        }
        Payload::Dns(DnsRecord::Malformed { detail }) => format!("DNS malformed: {detail}"),
        Payload::Action(action) => format!("the harness: {action}"),
        Payload::Refused(RefusedAttempt::Datagram(inner)) => body(inner),
        Payload::Refused(RefusedAttempt::Connect) => "a TCP connection attempt (SYN)".into(),
    }
}

/// At most `limit` bytes of `text`: its start and its end, with a note where the middle was cut.
fn bounded(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let floor = |at: usize| (0..=at).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    let head = floor(limit * 3 / 4);
    let tail = floor(text.len() - limit / 4);
    format!("{}\n[... {} bytes not shown ...]\n{}", &text[..head], tail - head, &text[tail..])
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::case::CaseTrace;
    use crate::error::Violation;
    use crate::report::html::tests::{result, sip_event, topology};
    use crate::report::html::{CSS, FAILURE_HIGHLIGHT};
    use crate::requirement::Requirement;
    use crate::topology::{Element, Party};
    use crate::trace::Direction;

    /// A malicious phone's REGISTER with markup in its headers.
    fn hostile_trace() -> CaseTrace {
        let mut event =
            sip_event(0, 120, Element::RegistrarA, Direction::Received, Party::Phone, Fate::Delivered, "REGISTER");
        let text = "REGISTER sip:registrar-a.lab.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.100.0.26:5060;branch=z9hG4bK1\r\n\
                    From: \"<script>alert(1)</script>\" <sip:1001@proxy-a.lab.test>;tag=1\r\nTo: <sip:1001@proxy-a.lab.test>\r\n\
                    Call-ID: <img src=x onerror=alert(2)>\r\nCSeq: 1 REGISTER\r\nX-Evil: </pre></details><script>document.title='pwned'</script>\r\n\
                    Content-Length: 0\r\n\r\n";
        event.payload = Payload::Sip(Box::new(sip::Message::parse(text.as_bytes()).unwrap()));
        CaseTrace { topology: topology(), started: std::time::UNIX_EPOCH, events: vec![event], matched: vec![] }
    }

    #[test]
    fn a_header_from_the_wire_never_becomes_markup() {
        let page = render(&result("register.x.udp", Verdict::Pass, vec![], Some(hostile_trace())));
        assert!(!page.contains("<script>alert") && !page.contains("<script>document"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(
            page.contains(
                "X-Evil: &lt;/pre&gt;&lt;/details&gt;&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;"
            ),
            "{page}"
        );
        assert!(page.contains("&quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;"), "{page}");
        // The only scripts are the page's own, carrying its nonce, which the policy requires.
        let scripts = page.matches("<script").count();
        assert_eq!(scripts, page.matches("<script nonce=\"").count());
        assert_eq!(scripts, 1);
        assert!(page.contains("script-src 'nonce-"), "{page}");
    }

    #[test]
    fn a_failed_case_page_shows_its_failure_sentence_window_and_messages() {
        let events: Vec<_> = (0..4)
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
        let violation = Violation::new(
            Requirement::R1_2,
            "a REGISTER at registrar-b".into(),
            "REGISTER at registrar-a #2".into(),
            "no failover".into(),
        )
        .watched(Duration::from_millis(1500), Duration::from_millis(9000))
        .pointing_at(vec![2]);
        let page = render(&result(
            "failover.x.silent.udp",
            Verdict::Fail,
            vec![violation],
            Some(CaseTrace { topology: topology(), started: std::time::UNIX_EPOCH, events, matched: vec![0] }),
        ));
        for part in [
            "<span class=\"badge v-fail\">FAIL</span>",
            "<div class=\"failure\"><h3>R1.2: no failover</h3>",
            &escape(Requirement::R1_2.sentence()),
            "<dt>expected</dt><dd>a REGISTER at registrar-b</dd>",
            "<dt>arrived</dt><dd>REGISTER at registrar-a #2</dd>",
            "lab time 1.500 s to 9.000 s",
            "<a href=\"#m2\">#2</a>",
            "<svg xmlns=",
            "<rect class=\"window\"",
            "<details class=\"message hl\" id=\"m2\">",
            "<details class=\"message\" id=\"m0\">",
            "CSeq: 2 REGISTER",
        ] {
            assert!(page.contains(part), "{part} in {page}");
        }
        let colour = format!("#{:02x}{:02x}{:02x}", FAILURE_HIGHLIGHT[0], FAILURE_HIGHLIGHT[1], FAILURE_HIGHLIGHT[2]);
        assert!(CSS.contains(&format!(".failure {{ background: {colour}")));
    }

    #[test]
    fn a_case_without_a_lab_says_so() {
        let mut skipped = result("subscribe.x.udp", Verdict::Skip, vec![], None);
        skipped.reason = Some("no BLF".into());
        let page = render(&skipped);
        assert!(page.contains("<p class=\"reason\">no BLF</p>"));
        assert!(page.contains("it has no ladder"));
        assert!(!page.contains("<svg"));
    }

    #[test]
    fn long_texts_keep_their_ends() {
        let text = format!("start{}end", "é".repeat(20_000));
        let cut = bounded(&text, 1000);
        assert!(cut.len() < 1100, "{}", cut.len());
        assert!(cut.starts_with("start") && cut.ends_with("end") && cut.contains("bytes not shown"));
    }
}
