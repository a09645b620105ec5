//! The HTML report (`run --report DIR`) as a person sees it: a passing and a failing case run against refphone, written by `HtmlReport`, opened in headless Chromium, which must log nothing, and whose screenshots must show the diagram and the failure highlight.
//!
//! The screenshots and a copy of the report stay in `target/html-report-check/` for a person
//! to open.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use harness::case::CaseTrace;
use harness::dut::Profile;
use harness::report::HtmlReport;
use harness::report::html::{FAILURE_HIGHLIGHT, PARTY_FILL};
use harness::runner::run_case;
use harness::trace::{Direction, Fate, Payload};
use harness::{CaseResult, Element, Requirement, Topology, TraceEvent, Transport, Verdict};

const PASSING: &str = "register.no-outbound.basic.udp";
const FAILING: &str = "failover.no-outbound.primary-registrar-fails.silent.udp";
const FAILING_PHONE: &str = "refphone:quirk=no-backup-registrar";
/// How long one Chromium run may take before it is killed.
const CHROMIUM_DEADLINE: Duration = Duration::from_secs(90);
const WIDTH: u32 = 1280;
const INDEX_HEIGHT: u32 = 900;
/// Case pages are tall: failures and requirements above the diagram.
const CASE_HEIGHT: u32 = 2000;

/// The flags that keep Chromium headless, quiet and off every network: no background
/// services, no component updates, every host name unresolvable; colours exact for the pixel
/// check.
const FLAGS: [&str; 16] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-first-run",
    "--no-default-browser-check",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--force-color-profile=srgb",
    "--enable-logging=stderr",
    "--v=0",
];

fn chromium() -> PathBuf {
    let found = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|dir| dir.join("chromium")).find(|p| p.is_file()));
    found.unwrap_or_else(|| {
        panic!(
            "chromium is not installed: the HTML report is checked in headless Chromium; \
             run `cargo xtask test`, which installs it (Debian package `chromium`), or `apt-get install chromium`"
        )
    })
}

/// What one Chromium run printed.
struct Run {
    stdout: String,
    stderr: String,
}

/// Runs Chromium on `page` with `args`, in a fresh profile, killed if it outlives
/// [`CHROMIUM_DEADLINE`] (and whenever its future is dropped). Fails on a non-zero exit and on
/// any console message: the report's pages log nothing, so a line from the page's console is a
/// script error, a blocked script or a blocked fetch.
async fn open(page: &Path, args: &[String]) -> Run {
    let profile = tempfile::tempdir().expect("a Chromium profile dir");
    let child = tokio::process::Command::new(chromium())
        .args(FLAGS)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("chromium starts");
    let output = tokio::time::timeout(CHROMIUM_DEADLINE, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("chromium on {} took longer than {CHROMIUM_DEADLINE:?}; killed", page.display()))
        .expect("chromium's output");
    let run = Run {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(output.status.success(), "chromium on {}: {}\n{}", page.display(), output.status, run.stderr);
    // Chromium logs every console message, whatever its level, as `INFO:CONSOLE`; an uncaught
    // error reads `"Uncaught ReferenceError: ..."`.
    let console: Vec<&str> = run.stderr.lines().filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught")).collect();
    assert!(console.is_empty(), "{} logged to its console:\n{}", page.display(), console.join("\n"));
    run
}

/// A screenshot of `page` at WIDTH x `height`, decoded: its RGB pixels, row by row.
async fn screenshot(page: &Path, height: u32, out: &Path) -> Vec<[u8; 3]> {
    let _ = std::fs::remove_file(out);
    open(page, &[format!("--screenshot={}", out.display()), format!("--window-size={WIDTH},{height}")]).await;
    let file = std::fs::File::open(out).unwrap_or_else(|e| panic!("no screenshot {}: {e}", out.display()));
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap_or_else(|e| panic!("{} is no PNG: {e}", out.display()));
    let mut buffer = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buffer).unwrap_or_else(|e| panic!("{} does not decode: {e}", out.display()));
    assert_eq!((frame.width, frame.height), (WIDTH, height), "{}", out.display());
    let channels = match frame.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("{}: unexpected colour type {other:?}", out.display()),
    };
    buffer[..frame.buffer_size()].chunks_exact(channels).map(|p| [p[0], p[1], p[2]]).collect()
}

/// How many pixels have exactly `colour`, and the first row holding one.
fn pixels(image: &[[u8; 3]], colour: [u8; 3]) -> (usize, Option<usize>) {
    let count = image.iter().filter(|p| **p == colour).count();
    let first = image.iter().position(|p| *p == colour).map(|at| at / WIDTH as usize);
    (count, first)
}

/// Pixels of `colour` below row `from`.
fn pixels_below(image: &[[u8; 3]], colour: [u8; 3], from: usize) -> usize {
    image.iter().skip(from * WIDTH as usize).filter(|p| **p == colour).count()
}

/// Where the screenshots and a copy of the report are kept: `target/html-report-check/`.
fn check_dir() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("CARGO_TARGET_TMPDIR is inside the target dir");
    let dir = target.join("html-report-check");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("report").join("cases")).expect("target/html-report-check is writable");
    dir
}

fn copy_report(from: &Path, to: &Path) {
    for entry in ["index.html"].into_iter().map(PathBuf::from).chain(
        std::fs::read_dir(from.join("cases"))
            .expect("the cases folder")
            .map(|e| Path::new("cases").join(e.expect("a directory entry").file_name())),
    ) {
        std::fs::copy(from.join(&entry), to.join(&entry)).expect("the report copies");
    }
}

fn explain(result: &CaseResult) -> String {
    let failures: Vec<String> = result.failures.iter().map(ToString::to_string).collect();
    format!(
        "{} {:?} reason={:?}\n{}\n{}",
        result.id,
        result.verdict,
        result.reason,
        failures.join("\n"),
        result.full_ladder
    )
}

fn case(id: &str) -> harness::Case {
    suites::cases().into_iter().find(|c| c.id == id).unwrap_or_else(|| panic!("no case {id}"))
}

#[allow(clippy::print_stderr)] // the screenshots' path, for the person running the test
fn tell(dir: &Path) {
    eprintln!("HTML report screenshots and a copy of the report: {}", dir.display());
}

#[test]
fn the_report_renders_in_chromium_with_the_failing_case_highlighted() {
    let chromium_path = chromium(); // before the cases run: a missing browser fails at once
    assert!(chromium_path.is_file());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let (passing, failing) = (case(PASSING), case(FAILING));
        let (pass_profile, fail_profile) =
            (Profile::parse("refphone").unwrap(), Profile::parse(FAILING_PHONE).unwrap());
        let (passed, failed) = tokio::join!(run_case(&passing, &pass_profile), run_case(&failing, &fail_profile));
        assert_eq!(passed.verdict, Verdict::Pass, "{}", explain(&passed));
        assert_eq!(failed.verdict, Verdict::Fail, "{}", explain(&failed));
        assert!(
            failed.failures.iter().any(|f| f.window.is_some()),
            "the failure names its window: {}",
            explain(&failed)
        );

        let tmp = tempfile::tempdir().expect("a temp dir");
        let dir = tmp.path().join("report");
        let mut report = HtmlReport::create(&dir).expect("the report dir");
        // Completion order: the failing case last ran longer.
        report.add(&passed).unwrap();
        report.add(&failed).unwrap();
        drop((passed, failed));
        let index = report.finish("sipharness run --phone refphone", Duration::from_secs(12)).unwrap();
        let keep = check_dir();
        copy_report(&dir, &keep.join("report"));
        tell(&keep);
        let pass_page = dir.join("cases").join(format!("{PASSING}.html"));
        let fail_page = dir.join("cases").join(format!("{FAILING}.html"));

        // The index: the failed row in the failure colour.
        let image = screenshot(&index, INDEX_HEIGHT, &keep.join("index.png")).await;
        let (highlight, _) = pixels(&image, FAILURE_HIGHLIGHT);
        assert!(highlight > 1000, "the failed case's row is highlighted: {highlight} pixels");
        let dom = open(&index, &["--dump-dom".into()]).await.stdout;
        assert!(dom.find(FAILING).unwrap() < dom.find(PASSING).unwrap(), "sorted by id");
        assert!(dom.contains("<tr class=\"failed\" data-verdict=\"fail\">"), "{dom}");
        assert!(dom.contains("<span id=\"shown\">2</span>"), "the filter script ran: {dom}");

        // The failing case: the diagram, and the failure highlight both above it (the failure)
        // and inside it (the window the check watched).
        let image = screenshot(&fail_page, CASE_HEIGHT, &keep.join("failing-case.png")).await;
        let (diagram, diagram_top) = pixels(&image, PARTY_FILL);
        assert!(diagram > 500, "the failing case's page shows its diagram: {diagram} pixels");
        let diagram_top = diagram_top.unwrap_or(0);
        let (highlight, highlight_top) = pixels(&image, FAILURE_HIGHLIGHT);
        assert!(highlight > 5000, "the failure is highlighted: {highlight} pixels");
        assert!(highlight_top.is_some_and(|top| top < diagram_top), "the failure box above the diagram");
        let band = pixels_below(&image, FAILURE_HIGHLIGHT, diagram_top + 30);
        assert!(band > 2000, "the check's window shaded in the diagram: {band} pixels");
        let dom = open(&fail_page, &["--dump-dom".into()]).await.stdout;
        for part in [
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"ladder\"",
            "<rect class=\"window\"",
            "class=\"msg",
            "class=\"failure\"",
            ">registrar-a</text>",
            "fail registrar-a silent",
            Requirement::R1_2.id(),
        ] {
            assert!(dom.contains(part), "{part} in the failing page's DOM:\n{dom}");
        }

        // The passing case: its diagram, and not a pixel of the failure colour.
        let image = screenshot(&pass_page, CASE_HEIGHT, &keep.join("passing-case.png")).await;
        let (diagram, _) = pixels(&image, PARTY_FILL);
        assert!(diagram > 500, "the passing case's page shows its diagram: {diagram} pixels");
        let (highlight, _) = pixels(&image, FAILURE_HIGHLIGHT);
        assert_eq!(highlight, 0, "nothing highlighted as failed on a passing case's page");
        let dom = open(&pass_page, &["--dump-dom".into()]).await.stdout;
        assert!(dom.contains("class=\"ladder\"") && !dom.contains("class=\"window\""), "{dom}");
    });
}

/// A phone's header carrying markup stays text in the browser: no element is made of it, no
/// script of it runs (the page's title would change, and the policy would log a blocked script).
#[test]
fn markup_from_a_phone_stays_text_in_the_browser() {
    let topology = Topology::new(std::net::Ipv4Addr::new(127, 100, 0, 16), "lab.test");
    let text = "REGISTER sip:registrar-a.lab.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.100.0.26:5060;branch=z9hG4bK1\r\n\
                From: \"<script>document.title='pwned'</script>\" <sip:1001@proxy-a.lab.test>;tag=1\r\n\
                To: <sip:1001@proxy-a.lab.test>\r\nCall-ID: <img src=x id=injected>\r\nCSeq: 1 REGISTER\r\n\
                X-Evil: </pre></details></svg><script>document.title='pwned'</script>\r\nContent-Length: 0\r\n\r\n";
    let event = TraceEvent {
        index: 0,
        at: Duration::from_millis(100),
        element: Element::RegistrarA,
        direction: Direction::Received,
        transport: Transport::Udp,
        local: topology.sip_addr(Element::RegistrarA),
        remote: std::net::SocketAddr::new(topology.phone_ip(), 5060),
        flow: None,
        payload: Payload::Sip(Box::new(sip::Message::parse(text.as_bytes()).expect("it parses"))),
        fate: Fate::Delivered,
    };
    let result = CaseResult {
        id: "register.hostile.udp".into(),
        verdict: Verdict::Pass,
        duration: Duration::from_secs(1),
        waited: Duration::ZERO,
        failures: Vec::new(),
        reason: None,
        ladder: String::new(),
        full_ladder: "#0 phone -> registrar-a udp REGISTER <script>document.title='pwned'</script>\n".into(),
        requirements: vec![Requirement::R1_1],
        trace: Some(Arc::new(CaseTrace {
            topology,
            started: std::time::UNIX_EPOCH,
            events: vec![event],
            matched: Vec::new(),
        })),
    };
    let tmp = tempfile::tempdir().expect("a temp dir");
    let mut report = HtmlReport::create(tmp.path()).expect("the report dir");
    report.add(&result).unwrap();
    report.finish("hostile", Duration::from_secs(1)).unwrap();
    let page = tmp.path().join("cases").join("register.hostile.udp.html");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let dom = runtime.block_on(open(&page, &["--dump-dom".into()])).stdout;
    assert!(dom.contains("<title>register.hostile.udp: PASS</title>"), "no injected script ran:\n{dom}");
    assert!(!dom.contains("id=\"injected\"") && !dom.contains("<img"), "no element made of wire text:\n{dom}");
    assert!(dom.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"), "shown as text:\n{dom}");
    assert_eq!(dom.matches("<script").count(), 1, "only the page's own script:\n{dom}");
}
