//! `run --report DIR`: a static HTML report a person opens from disk, an index of the run and a page per case with its ladder diagram.
//!
//! Everything is inline (CSS, a little script, the SVG); the pages name no URL outside the
//! report, and a Content-Security-Policy forbids fetching anything and running any script but
//! the report's own. Whatever came from the wire is escaped.

mod case_page;
mod ladder_svg;

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::case::{CaseResult, Verdict};

/// The colour of the failure highlight, and of nothing else: a failed case's row in the index,
/// the failure box on its page, and its check's window in the diagram (`#ffc8dd`). Tests look
/// for it in screenshots.
pub const FAILURE_HIGHLIGHT: [u8; 3] = [0xff, 0xc8, 0xdd];
/// The fill of the diagram's party headers (`#dde6f3`), used nowhere else: a screenshot shows a
/// diagram when it shows this colour.
pub const PARTY_FILL: [u8; 3] = [0xdd, 0xe6, 0xf3];

/// The verdicts in the order the index counts them.
const VERDICTS: [Verdict; 6] =
    [Verdict::Fail, Verdict::Xpass, Verdict::Error, Verdict::Pass, Verdict::Xfail, Verdict::Skip];

/// An HTML report being written: each case's page as its result arrives, the index at the end.
#[derive(Debug)]
pub struct HtmlReport {
    dir: PathBuf,
    /// One summary row per case; the traces themselves are not kept.
    rows: Vec<Row>,
}

/// What the index says about one case.
#[derive(Debug)]
struct Row {
    id: String,
    verdict: Verdict,
    requirements: Vec<String>,
    duration: Duration,
    /// The first failure (`R1.2: message`) or the reason.
    summary: String,
    page: String,
}

impl HtmlReport {
    /// Creates DIR (and `DIR/cases`) if missing and writes a placeholder `index.html`, so an
    /// unwritable DIR fails here, before any case runs.
    pub fn create(dir: &Path) -> io::Result<HtmlReport> {
        let context = |e: io::Error, what: &Path| io::Error::new(e.kind(), format!("{}: {e}", what.display()));
        let cases = dir.join("cases");
        std::fs::create_dir_all(&cases).map_err(|e| context(e, &cases))?;
        let index = dir.join("index.html");
        let placeholder = page(
            "sipharness report",
            "",
            "<h1>sipharness report</h1><p>The run has not finished: this page is replaced when it does.</p>",
        );
        std::fs::write(&index, placeholder).map_err(|e| context(e, &index))?;
        tracing::debug!(dir = %dir.display(), "HTML report started");
        Ok(HtmlReport { dir: dir.to_owned(), rows: Vec::new() })
    }

    /// Writes the case's page now and keeps only its summary row for the index.
    pub fn add(&mut self, result: &CaseResult) -> io::Result<()> {
        let name = page_name(&result.id);
        let path = self.dir.join("cases").join(&name);
        std::fs::write(&path, case_page::render(result))
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let summary = match (result.failures.first(), &result.reason) {
            (Some(first), _) => {
                let more = match result.failures.len() {
                    1 => String::new(),
                    n => format!(" (and {} more)", n - 1),
                };
                format!("{}: {}{more}", first.requirement.id(), first.message)
            }
            (None, Some(reason)) => reason.clone(),
            (None, None) => String::new(),
        };
        self.rows.retain(|row| row.id != result.id);
        self.rows.push(Row {
            id: result.id.clone(),
            verdict: result.verdict,
            requirements: result.requirements.iter().map(|r| r.id().to_owned()).collect(),
            duration: result.duration,
            summary,
            page: format!("cases/{name}"),
        });
        Ok(())
    }

    /// Writes `index.html`: the cases sorted by id, counts per verdict, filters. Returns its path.
    pub fn finish(mut self, title: &str, elapsed: Duration) -> io::Result<PathBuf> {
        self.rows.sort_by(|a, b| a.id.cmp(&b.id));
        let path = self.dir.join("index.html");
        std::fs::write(&path, index(&self.rows, title, elapsed))
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        tracing::debug!(path = %path.display(), cases = self.rows.len(), "HTML report written");
        Ok(path)
    }
}

/// A case's page file name: its id, with anything but letters, digits, `.`, `-` and `_`
/// replaced (ids are ours, but a file name must never climb out of `cases/`).
fn page_name(id: &str) -> String {
    let mut name: String =
        id.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect();
    if name.is_empty() || name.starts_with('.') {
        name.insert(0, '_');
    }
    name + ".html"
}

/// Text made safe for HTML text and attribute values: markup characters become entities, CR
/// disappears (SIP's CRLF shows as a line break) and other control characters become U+FFFD.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\r' => {}
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The verdict's lowercase name, used as a CSS class (`v-fail`) and filter value.
fn verdict_class(verdict: Verdict) -> String {
    verdict.label().to_ascii_lowercase()
}

/// A row's class: the failure highlight for a failed case (`fail`, `xpass`), its own colour for
/// a harness error.
fn row_class(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Fail | Verdict::Xpass => "failed",
        Verdict::Error => "errored",
        _ => "",
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

const CSS: &str = r#"
body { font: 14px/1.45 system-ui, sans-serif; margin: 20px 28px; color: #1d2430; background: #fff; }
h1 { font-size: 20px; margin: 0 0 8px; } h2 { font-size: 16px; margin: 22px 0 8px; }
a { color: #1f5fae; }
code, pre, .mono { font-family: ui-monospace, monospace; font-size: 12px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 600; font-size: 12px; color: #fff; }
.v-pass { background: #2e7d32; } .v-fail { background: #b3123f; } .v-xpass { background: #b3123f; }
.v-error { background: #9a5b00; } .v-xfail { background: #6b6f76; } .v-skip { background: #8a8f98; }
table { border-collapse: collapse; margin-top: 10px; }
th, td { text-align: left; padding: 4px 10px; border-bottom: 1px solid #e3e6ea; vertical-align: top; }
th { background: #f2f4f7; }
tr.failed td { background: #ffc8dd; } tr.failed td:first-child { border-left: 5px solid #b3123f; }
tr.errored td { background: #fde9c8; }
.filters { display: flex; gap: 14px; align-items: center; flex-wrap: wrap; margin: 10px 0; }
.filters input[type=text] { padding: 3px 6px; min-width: 260px; }
.meta { color: #4b5563; }
.failure { background: #ffc8dd; border-left: 6px solid #b3123f; padding: 8px 14px; margin: 10px 0; }
.failure h3 { margin: 0 0 4px; font-size: 15px; }
.failure dl, .requirements dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 6px 0; }
.failure dt, .requirements dt { font-weight: 600; }
.failure dd, .requirements dd { margin: 0; }
.sentence { font-style: italic; }
.reason { background: #f2f4f7; padding: 6px 10px; }
.diagram { overflow-x: auto; border: 1px solid #e3e6ea; }
svg.ladder { display: block; font: 11px ui-monospace, monospace; background: #fff; }
svg.ladder rect.window { fill: #ffc8dd; }
svg.ladder .window-label { fill: #b3123f; font-weight: 700; }
svg.ladder .lifeline { stroke: #9aa6b8; stroke-width: 1; }
svg.ladder rect.party { fill: #dde6f3; stroke: #6d83a6; }
svg.ladder text.party { font-weight: 700; fill: #1d2430; }
svg.ladder .num, svg.ladder .time { fill: #6b7280; }
svg.ladder .num { fill: #1f5fae; }
svg.ladder .arrow { stroke: #33415c; stroke-width: 1.4; fill: none; }
svg.ladder .head { fill: #33415c; }
svg.ladder .label { fill: #1d2430; }
svg.ladder g.msg { cursor: pointer; }
svg.ladder g.msg:hover .arrow { stroke-width: 2.6; }
svg.ladder g.dropped .arrow { stroke: #8a8f98; stroke-dasharray: 5 4; }
svg.ladder g.dropped .label { fill: #6b7280; }
svg.ladder .cross { stroke: #c62828; stroke-width: 2.2; }
svg.ladder g.matched .num { fill: #2e7d32; font-weight: 700; }
svg.ladder g.hl .arrow { stroke: #b3123f; stroke-width: 2.6; }
svg.ladder g.hl .head { fill: #b3123f; }
svg.ladder g.hl .label, svg.ladder g.hl .num { fill: #b3123f; font-weight: 700; }
svg.ladder rect.note { fill: #eef0f3; stroke: #6b7280; }
svg.ladder g.fault rect.note { fill: #ffe0b2; stroke: #e65100; }
svg.ladder g.restore rect.note { fill: #dcedc8; stroke: #33691e; }
svg.ladder text.note { font-weight: 700; }
svg.ladder g.gap line { stroke: #9aa6b8; stroke-dasharray: 2 3; }
svg.ladder g.gap text { fill: #4b5563; font-style: italic; }
.legend { color: #4b5563; margin: 4px 0 8px; }
details.message { margin: 2px 0; } details.message summary { cursor: pointer; font-family: ui-monospace, monospace; font-size: 12px; }
details.message[open] { background: #f6f8fa; } details.message pre { margin: 4px 0 8px 18px; white-space: pre-wrap; word-break: break-all; }
details.message.hl summary { color: #b3123f; font-weight: 700; }
#viewer { position: fixed; right: 16px; bottom: 16px; width: 46%; max-height: 60%; overflow: auto; background: #fff; border: 1px solid #6d83a6; box-shadow: 0 4px 18px rgba(0,0,0,.25); padding: 8px 12px; }
#viewer pre { white-space: pre-wrap; word-break: break-all; margin: 6px 0 0; }
#viewer button { float: right; }
"#;

/// A whole page: the security policy (nothing fetched, only the report's own script runs), the
/// style, the body.
fn page(title: &str, nonce: &str, body: &str) -> String {
    let script_src = if nonce.is_empty() { "'none'".to_owned() } else { format!("'nonce-{nonce}'") };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src {script_src}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n",
        escape(title)
    )
}

/// A fresh nonce for a page's script, so no script injected into the page can run.
fn nonce() -> String {
    format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>())
}

/// The index's filters: verdict checkboxes and a text filter over each row's text.
const INDEX_SCRIPT: &str = r#"
(function () {
  var boxes = document.querySelectorAll('input[data-verdict]');
  var text = document.getElementById('filter');
  var rows = document.querySelectorAll('#cases tbody tr');
  function apply() {
    var on = {};
    boxes.forEach(function (b) { on[b.getAttribute('data-verdict')] = b.checked; });
    var query = text.value.toLowerCase();
    var shown = 0;
    rows.forEach(function (row) {
      var visible = on[row.getAttribute('data-verdict')] !== false &&
        (!query || row.textContent.toLowerCase().indexOf(query) >= 0);
      row.hidden = !visible;
      if (visible) { shown++; }
    });
    document.getElementById('shown').textContent = String(shown);
  }
  boxes.forEach(function (b) { b.addEventListener('change', apply); });
  text.addEventListener('input', apply);
  apply();
})();
"#;

fn index(rows: &[Row], title: &str, elapsed: Duration) -> String {
    let nonce = nonce();
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>{}</h1>\n<p class=\"meta\">{} cases in {} (wall time)</p>\n<div class=\"filters\">",
        escape(title),
        rows.len(),
        seconds(elapsed)
    );
    for verdict in VERDICTS {
        let count = rows.iter().filter(|r| r.verdict == verdict).count();
        if count == 0 {
            continue;
        }
        let class = verdict_class(verdict);
        let _ = write!(
            body,
            "<label><input type=\"checkbox\" data-verdict=\"{class}\" checked> <span class=\"badge v-{class}\">{}</span> {count}</label>",
            verdict.label()
        );
    }
    let _ = writeln!(
        body,
        "<input type=\"text\" id=\"filter\" placeholder=\"filter: id, requirement, text\" aria-label=\"filter\"> \
         <span class=\"meta\"><span id=\"shown\">{}</span> shown</span></div>",
        rows.len()
    );
    body.push_str(
        "<table id=\"cases\">\n<thead><tr><th>case</th><th>verdict</th><th>requirements</th><th>duration</th><th>what happened</th></tr></thead>\n<tbody>\n",
    );
    for row in rows {
        let class = verdict_class(row.verdict);
        let _ = writeln!(
            body,
            "<tr class=\"{}\" data-verdict=\"{class}\"><td class=\"mono\"><a href=\"{}\">{}</a></td><td><span class=\"badge v-{class}\">{}</span></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            row_class(row.verdict),
            escape(&row.page),
            escape(&row.id),
            row.verdict.label(),
            escape(&row.requirements.join(", ")),
            seconds(row.duration),
            escape(&row.summary),
        );
    }
    body.push_str("</tbody>\n</table>\n");
    let _ = write!(body, "<script nonce=\"{nonce}\">{INDEX_SCRIPT}</script>");
    page(title, &nonce, &body)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::sync::Arc;

    use super::*;
    use crate::case::CaseTrace;
    use crate::error::Violation;
    use crate::requirement::Requirement;
    use crate::topology::{Element, Party, Topology};
    use crate::trace::{Direction, Fate, Payload, TraceEvent, Transport};

    pub(crate) fn topology() -> Topology {
        Topology::new(Ipv4Addr::new(127, 100, 0, 16), "lab.test")
    }

    /// An event of `element`'s, its remote end its own address (a harness action's form).
    pub(crate) fn event(
        index: usize,
        at_ms: u64,
        element: Element,
        payload: Payload,
        topology: &Topology,
    ) -> TraceEvent {
        let addr = topology.sip_addr(element);
        TraceEvent {
            index,
            at: Duration::from_millis(at_ms),
            element,
            direction: Direction::Sent,
            transport: Transport::Udp,
            local: addr,
            remote: addr,
            flow: None,
            payload,
            fate: Fate::Delivered,
        }
    }

    /// A SIP request between `element` and `peer` (the phone, here).
    pub(crate) fn sip_event(
        index: usize,
        at_ms: u64,
        element: Element,
        direction: Direction,
        peer: Party,
        fate: Fate,
        method: &str,
    ) -> TraceEvent {
        let topology = topology();
        let peer_ip = match peer {
            Party::Element(e) => topology.ip(e),
            _ => topology.phone_ip(),
        };
        let text = format!(
            "{method} sip:{element}.lab.test SIP/2.0\r\nVia: SIP/2.0/UDP {peer_ip}:5060;branch=z9hG4bK{index}\r\n\
             From: <sip:1001@proxy-a.lab.test>;tag=1\r\nTo: <sip:1001@proxy-a.lab.test>\r\nCall-ID: c{index}\r\n\
             CSeq: {index} {method}\r\nContent-Length: 0\r\n\r\n"
        );
        let message = sip::Message::parse(text.as_bytes()).expect("the test's message parses");
        TraceEvent {
            index,
            at: Duration::from_millis(at_ms),
            element,
            direction,
            transport: Transport::Udp,
            local: topology.sip_addr(element),
            remote: SocketAddr::new(peer_ip, 5060),
            flow: None,
            payload: Payload::Sip(Box::new(message)),
            fate,
        }
    }

    pub(crate) fn result(id: &str, verdict: Verdict, failures: Vec<Violation>, trace: Option<CaseTrace>) -> CaseResult {
        CaseResult {
            id: id.into(),
            verdict,
            duration: Duration::from_millis(2500),
            waited: Duration::ZERO,
            failures,
            reason: None,
            ladder: String::new(),
            full_ladder: String::new(),
            requirements: vec![Requirement::R1_2],
            trace: trace.map(Arc::new),
        }
    }

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(
            escape(r#"<a href="x" onclick='y'>&amp;</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;"
        );
        assert_eq!(escape("A\r\nB\u{0}\u{1b}[31m\tC"), "A\nB\u{fffd}\u{fffd}[31m\tC");
    }

    #[test]
    fn page_names_stay_in_the_cases_folder() {
        assert_eq!(page_name("failover.no-outbound.x.silent.udp"), "failover.no-outbound.x.silent.udp.html");
        assert_eq!(page_name("../../etc/passwd"), "_.._.._etc_passwd.html");
        assert_eq!(page_name(""), "_.html");
    }

    #[test]
    fn the_index_lists_cases_by_id_with_counts_filters_and_the_failure_highlighted() {
        let dir = tempfile::tempdir().unwrap();
        let mut report = HtmlReport::create(&dir.path().join("new").join("report")).unwrap();
        let violation =
            Violation::new(Requirement::R1_2, "a REGISTER at registrar-b".into(), "none".into(), "no move".into());
        report.add(&result("register.b.udp", Verdict::Pass, vec![], None)).unwrap();
        report.add(&result("failover.a.udp", Verdict::Fail, vec![violation], None)).unwrap();
        let path = report.finish("sipharness <run>", Duration::from_secs(4)).unwrap();
        assert_eq!(path, dir.path().join("new/report/index.html"));
        let html = std::fs::read_to_string(&path).unwrap();
        let first = html.find("cases/failover.a.udp.html").unwrap();
        let second = html.find("cases/register.b.udp.html").unwrap();
        assert!(first < second, "sorted by id");
        assert!(html.contains("<tr class=\"failed\" data-verdict=\"fail\">"), "{html}");
        assert!(html.contains("<tr class=\"\" data-verdict=\"pass\">"), "{html}");
        assert!(html.contains("R1.2: no move"));
        assert!(
            html.contains("data-verdict=\"fail\" checked> <span class=\"badge v-fail\">FAIL</span> 1</label>"),
            "{html}"
        );
        assert!(html.contains("<title>sipharness &lt;run&gt;</title>"));
        assert!(dir.path().join("new/report/cases/failover.a.udp.html").is_file());
        assert!(dir.path().join("new/report/cases/register.b.udp.html").is_file());
        // No URL leaves the report.
        for url in ["http://", "https://", "//cdn", "src=\"http"] {
            let outside = html.replace("http://www.w3.org/2000/svg", "");
            assert!(!outside.contains(url), "{url}");
        }
        // The failure colour is the highlight's alone.
        let colour = format!("#{:02x}{:02x}{:02x}", FAILURE_HIGHLIGHT[0], FAILURE_HIGHLIGHT[1], FAILURE_HIGHLIGHT[2]);
        assert_eq!(CSS.matches(&colour).count(), 3, "row, failure box, window band");
        let fill = format!("#{:02x}{:02x}{:02x}", PARTY_FILL[0], PARTY_FILL[1], PARTY_FILL[2]);
        assert_eq!(CSS.matches(&fill).count(), 1);
    }

    #[test]
    fn an_unwritable_dir_fails_at_create_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        let error = HtmlReport::create(&file.join("report")).unwrap_err();
        assert!(error.to_string().contains("a-file"), "{error}");
    }
}
