//! `sipharness explore` end to end, kept short: a passing exploration against refphone, and a quirk found, shrunk to a few steps, and replayed from the schedule it printed.

use std::process::{Command, Output};

fn sipharness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sipharness")).args(args).output().expect("sipharness runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The requirement the first failure cites (`      R2.3: at step 2 ...`).
fn first_requirement(text: &str) -> Option<String> {
    text.lines().map(str::trim).find(|l| l.contains(": at step ")).and_then(|l| l.split(':').next()).map(str::to_owned)
}

#[test]
fn refphone_passes_a_short_exploration() {
    let output = sipharness(&["explore", "--phone", "refphone", "--seed", "1", "--steps", "6"]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(out.contains("PASS  explore.full-backup.seed-1.tcp"), "{out}");
    assert!(!out.lines().any(|l| l.starts_with("step ")), "{out}");
    // Progress on stderr: one line per step.
    let progress = String::from_utf8_lossy(&output.stderr);
    assert_eq!(progress.lines().filter(|l| l.starts_with("explore: step ")).count(), 6, "{progress}");
}

#[test]
fn a_quirk_is_found_shrunk_and_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("no-failback.schedule");
    let saved = saved.to_str().unwrap();
    let phone = "refphone:quirk=no-failback";
    let args = ["explore", "--phone", phone, "--seed", "1", "--steps", "6", "--shrink-replays", "10", "--save", saved];
    let output = sipharness(&args);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}\n{}", String::from_utf8_lossy(&output.stderr));
    let steps: Vec<&str> = out.lines().filter(|l| l.starts_with("step ")).collect();
    assert!(!steps.is_empty() && steps.len() <= 6, "{out}");
    assert!(out.contains(&format!("replay: sipharness explore --replay {saved} --phone {phone}")), "{out}");
    // The minimal schedule's failure cites a failback bullet (the quirk never moves back).
    let requirement = first_requirement(out.rsplit("minimal schedule").nth(1).unwrap_or(&out)).expect("a failure");
    assert!(["R1.4", "R1.5", "R2.3", "R3.3"].contains(&requirement.as_str()), "{requirement}\n{out}");
    // The file holds exactly the printed steps, and replays to the same failure.
    let file = std::fs::read_to_string(saved).unwrap();
    let file_steps: Vec<&str> = file.lines().filter(|l| l.starts_with("step ")).collect();
    assert_eq!(file_steps, steps);
    let replayed = sipharness(&["explore", "--replay", saved, "--phone", phone]);
    let again = stdout(&replayed);
    assert_eq!(replayed.status.code(), Some(1), "{again}");
    assert_eq!(first_requirement(&again), Some(requirement), "{again}");
}

#[test]
fn a_bad_replay_file_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.schedule");
    std::fs::write(&bad, "schedule no-outbound udp\nstep 1 restore proxy-a\n").unwrap();
    let output = sipharness(&["explore", "--replay", bad.to_str().unwrap(), "--phone", "refphone"]);
    assert_eq!(output.status.code(), Some(2));
    let error = String::from_utf8_lossy(&output.stderr);
    assert_eq!(error.lines().count(), 1, "{error}");
    assert!(error.contains("step 1: proxy-a is not failed"), "{error}");
    assert!(output.stdout.is_empty());
    let missing = sipharness(&["explore", "--replay", "/nonexistent/x.schedule", "--phone", "refphone"]);
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(sipharness(&["explore", "--phone", "refphone", "--steps", "0"]).status.code(), Some(2));
}
