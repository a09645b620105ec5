//! refphone's command line as the harness and a lab engineer rely on it (BRIEF §6): quirks listed, bad input refused with exit 2.
//!
//! Also makes `cargo test --workspace` build the `refphone` binary, which the suites run.

use std::process::Command;

fn refphone(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_refphone")).args(args).output().expect("refphone runs")
}

#[test]
fn list_quirks_prints_name_tab_description() {
    let output = refphone(&["--list-quirks"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    let names: Vec<&str> = text.lines().map(|l| l.split('\t').next().unwrap_or("")).collect();
    for line in text.lines() {
        let (name, what) = line.split_once('\t').unwrap_or_else(|| panic!("no tab in {line:?}"));
        assert!(!name.is_empty() && !what.is_empty(), "{line:?}");
    }
    for quirk in ["no-backup-registrar", "late-refresh"] {
        assert!(names.contains(&quirk), "{quirk} missing from {text}");
    }
}

#[test]
fn help_teaches_every_flag() {
    let output = refphone(&["--help"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for flag in ["--config", "--mac", "--bind", "--dns", "--ca", "--http", "--state-dir", "--quirk", "--list-quirks"] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let dir = std::env::temp_dir().join(format!("refphone-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good_cfg = dir.join("good.cfg");
    std::fs::write(&good_cfg, "sip proxy ip: 127.77.0.2\n").unwrap();
    let bad_cfg = dir.join("bad.cfg");
    std::fs::write(&bad_cfg, "sip proxy ip: proxy-a.lab.test\nsip registration period: soon\n").unwrap();
    for args in [
        vec!["--config", good_cfg.to_str().unwrap(), "--quirk", "no-such-quirk"],
        vec!["--config", bad_cfg.to_str().unwrap()],
        vec!["--config", dir.join("missing.cfg").to_str().unwrap()],
        vec!["--frobnicate"],
    ] {
        let output = refphone(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    }
    let output = refphone(&["--config", bad_cfg.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.cfg:2") && stderr.contains("sip registration period"),
        "names file, line and key: {stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
