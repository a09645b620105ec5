//! Runs every case against the reference phone: each must pass with a stable snapshot, and fail against the quirks that break it.

use harness::dut::Profile;
use harness::runner::{run_case, run_cases};
use harness::{Case, CaseResult, Verdict};

/// Cases run at once; each has its own loopback block and phone.
const JOBS: usize = 4;

fn case(id: &str) -> Case {
    suites::catalog().into_iter().find(|c| c.id == id).unwrap_or_else(|| panic!("no case {id}"))
}

fn profile(text: &str) -> Profile {
    Profile::parse(text).expect("profile parses")
}

fn explain(result: &CaseResult) -> String {
    let failures: Vec<String> = result.failures.iter().map(ToString::to_string).collect();
    format!(
        "{} {:?} note={:?}\n{}\ntrace:\n{}",
        result.id,
        result.verdict,
        result.note,
        failures.join("\n"),
        result.full_ladder
    )
}

/// The snapshot lives beside the case's area (`suites/src/<area>/snapshots/`).
fn assert_ladder_snapshot(result: &CaseResult) {
    let area = result.id.split('.').next().unwrap_or("misc");
    insta::with_settings!({
        snapshot_path => format!("../src/{area}/snapshots"),
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!(result.id.clone(), result.ladder);
    });
}

/// BRIEF §6, §7: every case passes against refphone, and its ladder matches its snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_passes_with_its_snapshot() {
    let results = run_cases(suites::catalog(), &profile("refphone"), JOBS, |_, _, _| {}).await;
    let failed: Vec<String> = results.iter().filter(|r| r.verdict != Verdict::Pass).map(explain).collect();
    assert!(failed.is_empty(), "{} of {} cases did not pass:\n{}", failed.len(), results.len(), failed.join("\n\n"));
    for result in &results {
        assert_ladder_snapshot(result);
    }
}

/// BRIEF §7: the same case run twice gives byte-identical snapshots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_case_twice_gives_identical_ladders() {
    for id in [
        "failover.no-outbound.primary-registrar-fails.silent.udp",
        "failover.no-outbound.primary-proxy-fails.refuse.tcp",
    ] {
        let (refphone, case) = (profile("refphone"), case(id));
        let (first, second) = tokio::join!(run_case(&case, &refphone), run_case(&case, &refphone));
        assert_eq!(first.verdict, Verdict::Pass, "{}", explain(&first));
        assert_eq!(second.verdict, Verdict::Pass, "{}", explain(&second));
        assert_eq!(first.ladder, second.ladder, "{id}");
    }
}

/// BRIEF §6, the ratchet: every case is caught by a quirk, and fails against each quirk that
/// names it, citing the requirement, saying what was expected and what arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_fails_against_its_quirks() {
    let pairs = suites::quirk_pairs();
    for case in suites::catalog() {
        assert!(
            pairs.iter().any(|(_, id, _)| *id == case.id),
            "{} is caught by no quirk: a case that cannot fail checks nothing",
            case.id
        );
    }
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(JOBS));
    let mut runs = tokio::task::JoinSet::new();
    for (quirk, id, requirement) in pairs {
        let permits = permits.clone();
        runs.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let result = run_case(&case(&id), &profile(&format!("refphone:quirk={quirk}"))).await;
            let ok = result.verdict == Verdict::Fail
                && result
                    .failures
                    .first()
                    .is_some_and(|f| f.requirement == requirement && !f.expected.is_empty() && !f.arrived.is_empty());
            (!ok).then(|| format!("quirk {quirk} should fail {id} citing {requirement}:\n{}", explain(&result)))
        });
    }
    let mut problems = Vec::new();
    while let Some(joined) = runs.join_next().await {
        if let Some(problem) = joined.expect("a run") {
            problems.push(problem);
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// Every quirk the ratchet names is one refphone knows.
#[test]
fn quirks_in_the_ratchet_exist() {
    let refphone = harness::dut::find_refphone().expect("refphone is built by cargo test --workspace");
    let output = std::process::Command::new(refphone).arg("--list-quirks").output().unwrap();
    assert!(output.status.success());
    let listed = String::from_utf8_lossy(&output.stdout).to_string();
    let known: Vec<&str> = listed.lines().filter_map(|l| l.split('\t').next()).collect();
    for (quirk, _, _) in suites::QUIRK_CATCHES {
        assert!(known.contains(quirk), "refphone --list-quirks lacks {quirk}: {listed}");
    }
}
