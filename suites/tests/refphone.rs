//! Runs every case against the reference phone: each must pass with a stable snapshot, and fail against the quirk that breaks it.

use harness::dut::Profile;
use harness::runner::run_case;
use harness::{Case, CaseResult, Verdict};

fn case(id: &str) -> Case {
    suites::catalog().into_iter().find(|c| c.id == id).unwrap_or_else(|| panic!("no case {id}"))
}

async fn run(id: &str, profile: &str) -> CaseResult {
    let profile = Profile::parse(profile).expect("profile parses");
    run_case(&case(id), &profile).await
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

async fn passes_with_snapshot(id: &str) {
    let result = run(id, "refphone").await;
    assert_eq!(result.verdict, Verdict::Pass, "{}", explain(&result));
    assert_ladder_snapshot(&result);
}

async fn fails_citing(id: &str, profile: &str, requirement: &str) {
    let result = run(id, profile).await;
    assert_eq!(result.verdict, Verdict::Fail, "{}", explain(&result));
    let failure = &result.failures[0];
    assert_eq!(failure.requirement, requirement, "{}", explain(&result));
    assert!(!failure.expected.is_empty() && !failure.arrived.is_empty(), "{}", explain(&result));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_basic_passes() {
    passes_with_snapshot("register.no-outbound.basic.udp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_registrar_fails_silent_passes() {
    passes_with_snapshot("failover.no-outbound.primary-registrar-fails.silent.udp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_registrar_fails_refuse_passes() {
    passes_with_snapshot("failover.no-outbound.primary-registrar-fails.refuse.udp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_registrar_fails_reject_503_passes() {
    passes_with_snapshot("failover.no-outbound.primary-registrar-fails.reject-503.udp").await;
}

/// BRIEF §7: the same case run twice gives byte-identical snapshots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_case_twice_gives_identical_ladders() {
    let id = "failover.no-outbound.primary-registrar-fails.silent.udp";
    let (first, second) = tokio::join!(run(id, "refphone"), run(id, "refphone"));
    assert_eq!(first.verdict, Verdict::Pass, "{}", explain(&first));
    assert_eq!(second.verdict, Verdict::Pass, "{}", explain(&second));
    assert_eq!(first.ladder, second.ladder);
}

/// BRIEF §6, the ratchet: every case is listed in `QUIRK_CATCHES`, and fails against its quirk
/// citing the requirement, saying what was expected and what arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_fails_against_its_quirk() {
    for case in suites::catalog() {
        assert!(
            suites::QUIRK_CATCHES.iter().any(|(_, id, _)| *id == case.id),
            "{} is caught by no quirk: a case that cannot fail checks nothing",
            case.id
        );
    }
    let mut runs = tokio::task::JoinSet::new();
    for (quirk, id, requirement) in suites::QUIRK_CATCHES {
        runs.spawn(async move { fails_citing(id, &format!("refphone:quirk={quirk}"), requirement).await });
    }
    while let Some(joined) = runs.join_next().await {
        if let Err(e) = joined {
            std::panic::resume_unwind(e.into_panic());
        }
    }
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
