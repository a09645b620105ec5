//! `run --junit FILE` and `--shard K/N` as a CI matrix relies on them (BRIEF §5): the report read back with quick-junit's own parser, the shards' partition.

use std::collections::BTreeSet;
use std::process::{Command, Output};

use quick_junit::{NonSuccessKind, Report, TestCaseStatus};

fn sipharness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sipharness")).args(args).output().expect("sipharness runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn ids(listing: &str) -> Vec<String> {
    listing.lines().map(|l| l.split('\t').next().unwrap().to_owned()).collect()
}

/// The report read back with quick-junit's parser, after it validated against the schema CI
/// readers accept (`fixtures/junit/junit.xsd`, by xmllint: Debian `libxml2-utils`, which
/// `cargo xtask test` installs).
fn read_report(path: &std::path::Path) -> Report {
    let xml = std::fs::read_to_string(path).expect("the report was written");
    let checked = validate(path);
    assert!(checked.status.success(), "the report does not validate:\n{}\n{xml}", stderr(&checked));
    Report::deserialize_from_str(&xml).unwrap_or_else(|e| panic!("{e}:\n{xml}"))
}

/// xmllint's judgement of `path` against `fixtures/junit/junit.xsd`.
fn validate(path: &std::path::Path) -> Output {
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/junit/junit.xsd");
    Command::new("xmllint")
        .args(["--noout", "--schema", schema])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run xmllint ({e}): `cargo xtask test` installs it (Debian libxml2-utils)"))
}

/// The schema is no formality: quick-junit's own `disabled` count on a testsuite, which xunit's
/// schema refuses, fails it.
#[test]
fn the_schema_refuses_what_ci_readers_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("junit.xml");
    std::fs::write(
        &file,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="sipharness" tests="1" failures="0" errors="0" time="0.1">
    <testsuite name="sipharness" tests="1" disabled="1" errors="0" failures="0" time="0.1">
        <testcase name="a.b.udp" classname="a" time="0.1"><skipped message="no BLF"/></testcase>
    </testsuite>
</testsuites>"#,
    )
    .unwrap();
    let checked = validate(&file);
    assert!(!checked.status.success(), "a testsuite with `disabled` validated");
    assert!(stderr(&checked).contains("disabled"), "{}", stderr(&checked));
}

#[test]
fn three_shards_list_every_case_once_and_the_same_each_time() {
    let all = ids(&stdout(&sipharness(&["list"])));
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let output = sipharness(&["list", "--shard", &shard]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let listed = ids(&stdout(&output));
        assert!(!listed.is_empty(), "shard {shard} is empty");
        assert_eq!(listed, ids(&stdout(&sipharness(&["list", "--shard", &shard]))), "shard {shard} is stable");
        total += listed.len();
        seen.extend(listed);
    }
    assert_eq!(total, all.len(), "no case is in two shards");
    assert_eq!(seen, all.into_iter().collect::<BTreeSet<_>>(), "every case is in a shard");
    // The shards split what FILTER selected.
    let register = ids(&stdout(&sipharness(&["list", "register"])));
    let first = ids(&stdout(&sipharness(&["list", "register", "--shard", "1/2"])));
    let second = ids(&stdout(&sipharness(&["list", "register", "--shard", "2/2"])));
    assert!(first.iter().chain(&second).all(|id| id.starts_with("register.")), "{first:?} {second:?}");
    assert_eq!(first.len() + second.len(), register.len());
}

#[test]
fn a_bad_shard_is_a_one_line_usage_error() {
    for bad in ["0/3", "4/3", "1/1001", "3", "x/y"] {
        for command in [&["list", "--shard", bad][..], &["run", "--phone", "refphone", "--shard", bad]] {
            let output = sipharness(command);
            assert_eq!(output.status.code(), Some(2), "{command:?}");
            assert_eq!(stderr(&output).lines().count(), 1, "{command:?}: {}", stderr(&output));
            assert!(stdout(&output).is_empty(), "{command:?}: nothing ran");
        }
    }
}

/// More shards than cases: this machine's part is empty, which is no failure of the run.
#[test]
fn an_empty_shard_selects_nothing_says_so_and_writes_an_empty_report() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("junit.xml");
    let output = sipharness(&[
        "run",
        "register.no-outbound.basic.udp",
        "--phone",
        "refphone",
        "--shard",
        "2/2",
        "--junit",
        file.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains("shard 2/2 selects no case"), "{}", stderr(&output));
    let report = read_report(&file);
    assert_eq!(report.test_suites.len(), 1);
    assert_eq!(report.test_suites[0].tests, 0);
    let listed = sipharness(&["list", "register.no-outbound.basic.udp", "--shard", "2/2"]);
    assert_eq!(listed.status.code(), Some(0));
    assert!(stdout(&listed).is_empty());
    assert!(stderr(&listed).contains("shard 2/2 selects no case"), "{}", stderr(&listed));
}

#[test]
fn an_unwritable_junit_file_stops_the_run_before_any_case() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("no-such-dir").join("junit.xml");
    let output = sipharness(&["run", "register", "--phone", "refphone", "--json", "--junit", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stdout(&output).is_empty(), "no case ran: {}", stdout(&output));
    assert_eq!(stderr(&output).lines().count(), 1, "{}", stderr(&output));
    assert!(stderr(&output).contains("--junit"), "{}", stderr(&output));
}

#[test]
fn junit_reports_a_failure_with_its_requirement_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("junit.xml");
    let output = sipharness(&[
        "run",
        "register.no-outbound.basic",
        "--phone",
        "refphone:quirk=late-refresh",
        "--jobs",
        "2",
        "--junit",
        file.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report = read_report(&file);
    assert_eq!(report.name.as_str(), "sipharness");
    let [suite] = report.test_suites.as_slice() else { panic!("one testsuite: {report:?}") };
    assert_eq!(suite.name.as_str(), "sipharness");
    let selected = ids(&stdout(&sipharness(&["list", "register.no-outbound.basic"])));
    let names: Vec<&str> = suite.test_cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, selected, "one testcase per case");
    let case = &suite.test_cases[0];
    assert_eq!(case.name.as_str(), "register.no-outbound.basic.udp");
    assert_eq!(case.classname.as_ref().map(|c| c.as_str()), Some("register"));
    assert!(case.time.is_some_and(|t| !t.is_zero()), "{case:?}");
    let TestCaseStatus::NonSuccess {
        kind: NonSuccessKind::Failure,
        message: Some(message),
        description: Some(text),
        ..
    } = &case.status
    else {
        panic!("a failure: {case:?}")
    };
    assert!(message.as_str().starts_with("RFC3261-10.2.4: "), "{message:?}");
    let requirement = harness::Requirement::parse("RFC3261-10.2.4").unwrap();
    for part in [requirement.sentence(), "\nexpected: ", "\narrived: "] {
        assert!(text.as_str().contains(part), "{part:?} in {text:?}");
    }
}

/// baresip has no backup registrar, so a case that needs one is skipped at once.
#[test]
fn junit_marks_a_skipped_case_skipped_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("junit.xml");
    let id = "failover.no-outbound.primary-registrar-fails.silent.udp";
    let output = sipharness(&["run", id, "--phone", "baresip", "--junit", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report = read_report(&file);
    let xml = std::fs::read_to_string(&file).unwrap();
    assert!(xml.contains(r#"skipped="1""#), "the testsuite counts its skipped cases: {xml}");
    let case = &report.test_suites[0].test_cases[0];
    assert_eq!(case.name.as_str(), id);
    assert_eq!(case.classname.as_ref().map(|c| c.as_str()), Some("failover"));
    assert!(
        matches!(&case.status, TestCaseStatus::Skipped { message: Some(m), .. } if m.as_str().contains("backup registrar")),
        "{case:?}"
    );
}

/// `--report DIR`: a page per case as it finishes and the index at the end, the failing case
/// marked; a DIR that cannot be made stops the run before any case (exit 2, one line).
#[test]
fn report_writes_a_page_per_case_and_an_index_marking_the_failure() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    let output = sipharness(&[
        "run",
        "register.no-outbound.basic",
        "--phone",
        "refphone:quirk=late-refresh",
        "--json",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let page = report.join("cases").join("register.no-outbound.basic.udp.html");
    let page = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
    assert!(page.contains("<svg"), "the case page draws its ladder");
    assert!(page.contains("RFC3261-10.2.4"), "the case page names the requirement");
    let index = std::fs::read_to_string(report.join("index.html")).expect("the index was written");
    assert!(index.contains("register.no-outbound.basic.udp"), "{index}");
    assert!(index.contains("sipharness run --phone refphone:quirk=late-refresh"), "the index says what ran");

    let blocked = dir.path().join("a-file");
    std::fs::write(&blocked, "").unwrap();
    let output = sipharness(&[
        "run",
        "register.no-outbound.basic",
        "--phone",
        "refphone",
        "--json",
        "--report",
        blocked.join("report").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stdout(&output).is_empty(), "no case ran: {}", stdout(&output));
    assert_eq!(stderr(&output).lines().count(), 1, "{}", stderr(&output));
    assert!(stderr(&output).starts_with("sipharness: --report "), "{}", stderr(&output));
}

/// `--pcap-dir DIR`: one `<case id>.pcapng` per case that ran a lab, and nothing else there
/// ending so (suites/tests/pcap.rs reads them with tshark).
#[test]
fn pcap_dir_holds_one_capture_per_case() {
    let dir = tempfile::tempdir().unwrap();
    let pcaps = dir.path().join("pcaps");
    let output = sipharness(&[
        "run",
        "register.no-outbound",
        "--phone",
        "refphone",
        "--json",
        "--pcap-dir",
        pcaps.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let ran = ids(&stdout(&sipharness(&["list", "register.no-outbound"])));
    let mut written: Vec<String> =
        std::fs::read_dir(&pcaps).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    written.sort();
    let mut expected: Vec<String> = ran.iter().map(|id| format!("{id}.pcapng")).collect();
    expected.sort();
    assert_eq!(written, expected);
    for name in &written {
        let bytes = std::fs::read(pcaps.join(name)).unwrap();
        // A pcapng file opens with a Section Header Block.
        assert_eq!(bytes.get(..4), Some(&[0x0a, 0x0d, 0x0d, 0x0a][..]), "{name}");
    }
}
