//! The `sipharness` command line as scripts rely on it (BRIEF §5): output formats and exit codes.

use std::process::{Command, Output};

fn sipharness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sipharness")).args(args).output().expect("sipharness runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn list_prints_id_requirements_transport() {
    let output = sipharness(&["list"]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert!(text.lines().count() >= 4, "{text}");
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), 3, "{line}");
        assert!(fields[1].split(',').all(|r| harness::Requirement::parse(r).is_some()), "{line}");
        assert!(["udp", "tcp", "tls"].contains(&fields[2]), "{line}");
        assert!(fields[0].ends_with(&format!(".{}", fields[2])), "the transport is the id's last segment: {line}");
    }
}

#[test]
fn filter_matches_whole_segments_or_globs() {
    let all = stdout(&sipharness(&["list"]));
    let register = stdout(&sipharness(&["list", "register"]));
    assert!(register.lines().count() >= 1, "{register}");
    assert!(register.lines().all(|l| l.starts_with("register.")), "{register}");
    assert_eq!(register.lines().count(), all.lines().filter(|l| l.starts_with("register.")).count());
    let glob = stdout(&sipharness(&["list", "failover.*.silent.*"]));
    assert!(glob.lines().count() >= 1, "{glob}");
    for line in glob.lines() {
        let id = line.split('\t').next().unwrap();
        assert!(id.starts_with("failover.") && id.contains(".silent."), "{line}");
    }
    assert_eq!(
        glob.lines().count(),
        all.lines().filter(|l| l.starts_with("failover.") && l.contains(".silent.")).count()
    );
    // `regist` is not a whole segment.
    assert_eq!(sipharness(&["list", "regist"]).status.code(), Some(2));
    assert_eq!(sipharness(&["run", "nothing.matches", "--phone", "refphone"]).status.code(), Some(2));
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let bad_profile = sipharness(&["run", "--phone", "nokia"]);
    assert_eq!(bad_profile.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad_profile.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(sipharness(&["run"]).status.code(), Some(2), "--phone is required");
    assert_eq!(sipharness(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(sipharness(&["run", "--phone", "refphone", "--jobs", "0"]).status.code(), Some(2));
}

/// An unknown quirk is a usage error before any case starts (not an `error` verdict per case).
#[test]
fn an_unknown_quirk_is_refused_before_any_case_runs() {
    let output = sipharness(&["run", "--json", "--phone", "refphone:quirk=no-such-quirk"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stdout(&output).is_empty(), "no case ran: {}", stdout(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no-such-quirk"), "{stderr}");
}

#[test]
fn run_json_reports_failures_with_requirement_and_exit_1() {
    let output = sipharness(&["run", "register.no-outbound.basic", "--phone", "refphone:quirk=late-refresh", "--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    let text = stdout(&output);
    let line = text.lines().next().expect("one JSON line");
    let value: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(value["id"], "register.no-outbound.basic.udp");
    assert_eq!(value["verdict"], "fail");
    assert!(value["duration_ms"].as_u64().is_some());
    let failure = &value["failures"][0];
    assert_eq!(failure["requirement"], "RFC3261-10.2.4");
    for key in ["expected", "arrived", "message"] {
        assert!(failure[key].as_str().is_some_and(|s| !s.is_empty()), "{key} in {line}");
    }
}

/// A failure a person can act on: the requirement with the seed's sentence, the expectation with
/// its deadline's terms, what arrived, the trace, and the command that reruns that case alone.
#[test]
fn a_failure_names_its_requirement_and_how_to_rerun_it_alone() {
    let output = sipharness(&["run", "register.no-outbound.basic", "--phone", "refphone:quirk=late-refresh"]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.contains("RFC3261-10.2.4:"), "{text}");
    assert!(text.contains("expected: ") && text.contains(" s ("), "the deadline and its terms: {text}");
    assert!(text.contains("arrived: "), "{text}");
    assert!(text.contains("      trace:"), "{text}");
    assert!(
        text.contains(
            "rerun alone: sipharness run register.no-outbound.basic.udp --phone refphone:quirk=late-refresh\n"
        ),
        "{text}"
    );
}

#[test]
fn coverage_prints_every_requirement_with_its_cases_and_quirks() {
    let output = sipharness(&["coverage"]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    for requirement in harness::Requirement::ALL {
        assert!(text.contains(&format!("\n## {requirement}\n")), "{requirement} missing:\n{text}");
    }
    assert!(text.contains("`no-backup-registrar`"), "{text}");
}

#[test]
fn lint_reports_ok_warnings_malformed_and_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let ok = dir.path().join("ok.sip");
    let warn = dir.path().join("warn.sip");
    let bad = dir.path().join("bad.sip");
    let register = "REGISTER sip:registrar-a.lab.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\nTo: <sip:1001@proxy-a.lab.test>\r\nFrom: <sip:1001@proxy-a.lab.test>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\nCSeq: 1 REGISTER\r\nContact: <sip:1001@192.0.2.10:5060>\r\nContent-Length: 0\r\n\r\n";
    std::fs::write(&ok, register).unwrap();
    std::fs::write(&warn, register.replace("Max-Forwards: 70\r\n", "")).unwrap();
    std::fs::write(&bad, register.replace("Content-Length: 0", "Content-Length: 500")).unwrap();

    let output = sipharness(&["lint", ok.to_str().unwrap(), warn.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let text = stdout(&output);
    assert!(text.contains("ok.sip: ok"), "{text}");
    assert!(text.contains("warn.sip: warning"), "{text}");

    let output = sipharness(&["lint", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("malformed"));

    // BRIEF §5: parses, but a receiving element must answer 400: `invalid`, exit 1, the rule cited.
    let invalid = dir.path().join("invalid.sip");
    std::fs::write(&invalid, register.replace("CSeq: 1 REGISTER", "CSeq: 1 INVITE")).unwrap();
    let output = sipharness(&["lint", invalid.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("invalid.sip: invalid: invalid[cseq-method]"), "{}", stdout(&output));
    assert!(stdout(&output).contains("RFC 3261 §8.1.1.5"), "{}", stdout(&output));

    let missing = dir.path().join("missing.sip");
    let output = sipharness(&["lint", ok.to_str().unwrap(), missing.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
}

/// SIGTERM (a CI runner stopping a job) cleans up as Ctrl-C does: every phone stopped, every
/// case's temporary directory removed, exit 2.
#[test]
fn sigterm_stops_every_phone_and_removes_every_temporary_directory() {
    use std::io::{BufRead, BufReader};
    use std::sync::mpsc;
    use std::time::Duration;
    let tmp = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sipharness"))
        .args(["run", "failover.no-outbound.primary-registrar-fails.silent.udp", "--phone", "refphone"])
        .env("TMPDIR", tmp.path())
        .env("SIPHARNESS_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The lab is up (and its phone started) once the harness says so.
    let stderr = child.stderr.take().unwrap();
    let (lines, lab_up) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("refphone started") {
                let _ = lines.send(());
            }
        }
    });
    lab_up.recv_timeout(Duration::from_secs(20)).expect("the lab came up");
    let status = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let (done, exited) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait());
    });
    let status = exited.recv_timeout(Duration::from_secs(20)).expect("it stopped").unwrap();
    assert_eq!(status.code(), Some(2), "interrupted is exit 2");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    // No refphone still runs from that directory.
    let tmp_path = tmp.path().to_string_lossy().to_string();
    for process in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let cmdline = std::fs::read(process.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        assert!(!(cmdline.contains("refphone") && cmdline.contains(&tmp_path)), "a phone outlived the run: {cmdline}");
    }
}

/// `lint` reads one datagram's worth of each file at most: `/dev/zero` (endless) and a file larger
/// than any UDP datagram are `malformed` at once, without reading them whole.
#[test]
fn lint_reads_its_input_bounded() {
    let output = sipharness(&["lint", "/dev/zero"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("/dev/zero: malformed: error datagram-too-long"), "{}", stdout(&output));
}

/// The case `provision`'s golden test writes: a full-backup (row 2) failover over UDP.
const PROVISION_CASE: &str = "failover.full-backup.primary-outbound-fails.silent.udp";

/// `provision` writes, into a directory it creates, exactly the files `run` serves the vendor's
/// phone for the case: its topology by FQDN, its transport, its timers raised to the vendor's
/// floors. Golden files: `fixtures/provision/aastra-full-backup/`.
#[test]
fn provision_writes_the_cases_cfg_for_the_aastra_profile() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("not/yet/there");
    let phone = "aastra:ip=127.0.0.1,mac=00085D000001";
    let output = sipharness(&["provision", "--phone", phone, "--case", PROVISION_CASE, "--out", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/provision/aastra-full-backup");
    let files = ["aastra.cfg", "00085D000001.cfg"];
    let listed: Vec<String> = files.iter().map(|f| out.join(f).display().to_string()).collect();
    assert_eq!(stdout(&output).lines().collect::<Vec<_>>(), listed, "one path per file written");
    for file in files {
        let written = std::fs::read_to_string(out.join(file)).unwrap();
        let expected = std::fs::read_to_string(golden.join(file)).unwrap_or_default();
        assert_eq!(
            written, expected,
            "{file} differs from fixtures/provision/aastra-full-backup/{file}; if the change is right:\n  \
             cargo run -p suites --bin sipharness -- provision --phone {phone} --case {PROVISION_CASE} --out fixtures/provision/aastra-full-backup"
        );
    }
}

/// For refphone the same command writes the lab's fast timers (no floors) and the default MAC.
#[test]
fn provision_for_refphone_uses_the_default_mac_and_fast_timers() {
    let tmp = tempfile::tempdir().unwrap();
    let output = sipharness(&[
        "provision",
        "--phone",
        "refphone",
        "--case",
        PROVISION_CASE,
        "--out",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let global = std::fs::read_to_string(tmp.path().join("aastra.cfg")).unwrap();
    assert!(global.contains("sip registration period: 2\n"), "{global}");
    assert!(tmp.path().join(format!("{}.cfg", harness::provision::DEFAULT_MAC)).is_file());
}

/// An unknown case, a filter naming several, a bad profile: one line on stderr, exit 2, nothing written.
#[test]
fn provision_refuses_an_unknown_or_ambiguous_case_and_a_bad_profile() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let out = out.to_str().unwrap();
    let aastra = "aastra:ip=127.0.0.1,mac=00085D000001";
    for (args, says) in [
        (["provision", "--phone", aastra, "--case", "no.such.case", "--out", out], "no case matches"),
        (["provision", "--phone", aastra, "--case", "failover.full-backup", "--out", out], "name one"),
        (["provision", "--phone", "aastra:ip=127.0.0.1", "--case", PROVISION_CASE, "--out", out], "mac="),
        (["provision", "--phone", "aastra:ip=127.0.0.1,mac=123", "--case", PROVISION_CASE, "--out", out], "not a MAC"),
    ] {
        let output = sipharness(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    assert!(!tmp.path().join("out").exists(), "nothing written");
}

/// `provision --addressing ip` names every server by address, for a phone that cannot use the
/// lab's DNS; a case that names its registrar by a SIP service (SRV) cannot, and says so.
#[test]
fn provision_by_address_writes_addresses_or_says_why_it_cannot() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("by-ip");
    let output = sipharness(&[
        "provision",
        "--phone",
        "refphone",
        "--case",
        PROVISION_CASE,
        "--out",
        &out.to_string_lossy(),
        "--addressing",
        "ip",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let cfg = std::fs::read_to_string(out.join("aastra.cfg")).unwrap();
    assert!(cfg.contains("sip outbound proxy: 127.100.0.22\n"), "{cfg}");
    assert!(!cfg.contains(".lab.test"), "{cfg}");

    let srv = sipharness(&[
        "provision",
        "--phone",
        "refphone",
        "--case",
        "dns.no-outbound.srv-priority.udp",
        "--out",
        &tmp.path().join("srv").to_string_lossy(),
        "--addressing",
        "ip",
    ]);
    assert_eq!(srv.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&srv.stderr).contains("needs the lab's DNS"));
}
