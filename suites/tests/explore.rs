//! `sipharness explore` end to end, kept short: a passing exploration against refphone, a quirk found, shrunk to a few steps, and replayed from the schedule it printed, and every regression schedule in `suites/regressions/` replayed to its recorded outcome.

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
    let args = ["explore", "--phone", phone, "--seed", "1", "--steps", "8", "--shrink-replays", "4", "--save", saved];
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

/// One file of `suites/regressions/`: its phone, what it must do, and its path.
struct Regression {
    path: std::path::PathBuf,
    phone: String,
    /// `None`: it must pass; `Some(requirement)`: it must fail that requirement.
    fails: Option<String>,
}

/// Reads the `# phone: PROFILE` and `# expect: pass|fail REQUIREMENT` lines of a regression case.
fn regression(path: std::path::PathBuf) -> Regression {
    let text = std::fs::read_to_string(&path).unwrap();
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix('#').map(str::trim).and_then(|l| l.strip_prefix(key)).map(str::trim))
            .unwrap_or_else(|| panic!("{}: no `# {key}` line", path.display()))
            .to_owned()
    };
    let phone = value("phone:");
    let expect = value("expect:");
    let fails = match expect.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["pass"] => None,
        ["fail", requirement] => Some((*requirement).to_owned()),
        _ => panic!("{}: `# expect: {expect}`: expected `pass` or `fail REQUIREMENT`", path.display()),
    };
    Regression { path, phone, fails }
}

/// Every minimal schedule kept in `suites/regressions/` replays to its recorded outcome: a quirk's
/// schedule fails the requirement it failed when it was found, refphone's own pass. Played four
/// at a time, each in its own lab.
#[test]
fn every_regression_schedule_replays_to_its_recorded_outcome() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "schedule"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no regression schedules in {}", dir.display());
    let cases: Vec<Regression> = files.into_iter().map(regression).collect();
    let mut played = Vec::new();
    for chunk in cases.chunks(4) {
        let replays: Vec<_> = chunk
            .iter()
            .map(|case| {
                let (path, phone) = (case.path.to_str().unwrap().to_owned(), case.phone.clone());
                std::thread::spawn(move || sipharness(&["explore", "--replay", &path, "--phone", &phone]))
            })
            .collect();
        played.extend(chunk.iter().zip(replays.into_iter().map(|r| r.join().unwrap())));
    }
    let mut wrong = Vec::new();
    for (case, output) in played {
        let out = stdout(&output);
        let name = case.path.file_name().unwrap().to_string_lossy().into_owned();
        let outcome = match output.status.code() {
            Some(0) => None,
            Some(1) => Some(first_requirement(&out).unwrap_or_default()),
            _ => {
                wrong.push(format!(
                    "{name}: exit {:?}: {}",
                    output.status.code(),
                    String::from_utf8_lossy(&output.stderr)
                ));
                continue;
            }
        };
        if outcome != case.fails {
            wrong.push(format!("{name} against {}: expected {:?}, got {outcome:?}\n{out}", case.phone, case.fails));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}
