//! One test per case against the reference phone (passes, with its snapshot), one per ratchet pair (the quirk makes the case fail citing its requirement), one per legal variant and case it names (passes), and the ratchet's own bookkeeping.
//!
//! `cargo test -p suites --test cases -- <case id> --exact` runs one case and its snapshot alone;
//! `cargo test -p suites --test cases -- ratchet` runs the quirk pairs.

use harness::dut::Profile;
use harness::runner::run_case;
use harness::{Case, CaseResult, Catalog, Requirement, Verdict};
use libtest_mimic::{Arguments, Failed, Trial};

/// Cases run at once unless `--test-threads` says otherwise: each has its own loopback block
/// and phone, and mostly waits on the phone's timers.
const JOBS: usize = 6;

fn main() {
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() {
        args.test_threads = Some(JOBS);
    }
    let catalog = suites::catalog();
    let mut trials = Vec::new();
    for case in catalog.cases.clone() {
        trials.push(Trial::test(case.id.clone(), move || passes_with_its_snapshot(&case)));
    }
    for (quirk, id, requirement) in catalog.quirk_pairs() {
        let case = find(&catalog, &id);
        trials.push(Trial::test(format!("ratchet::{quirk}::{id}"), move || fails_against(&case, quirk, requirement)));
    }
    for (quirk, id) in catalog.legal_pairs() {
        let case = find(&catalog, &id);
        trials.push(Trial::test(format!("legal::{quirk}::{id}"), move || passes_against(&case, quirk)));
    }
    trials.push(Trial::test("bookkeeping::every_case_is_caught_by_a_quirk", {
        let catalog = catalog.clone();
        move || every_case_is_caught(&catalog)
    }));
    trials.push(Trial::test("bookkeeping::every_quirk_is_caught_or_pending", {
        let catalog = catalog.clone();
        move || every_quirk_is_caught_or_pending(&catalog)
    }));
    trials.push(Trial::test("bookkeeping::every_seed_bullet_has_a_case_and_a_quirk", {
        let catalog = catalog.clone();
        move || every_seed_bullet_is_covered(&catalog)
    }));
    trials.push(Trial::test("bookkeeping::coverage_md_is_fresh", {
        let catalog = catalog.clone();
        move || coverage_is_fresh(&catalog)
    }));
    trials.push(Trial::test("stability::same_case_twice_gives_identical_ladders", {
        let catalog = catalog.clone();
        move || same_case_twice(&catalog)
    }));
    libtest_mimic::run(&args, trials).exit();
}

fn find(catalog: &Catalog, id: &str) -> Case {
    catalog.cases.iter().find(|c| c.id == id).cloned().unwrap_or_else(|| panic!("no case {id}"))
}

fn profile(text: &str) -> Profile {
    Profile::parse(text).expect("profile parses")
}

fn run(case: &Case, phone: &str) -> CaseResult {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(run_case(case, &profile(phone)))
}

fn explain(result: &CaseResult) -> String {
    let failures: Vec<String> = result.failures.iter().map(ToString::to_string).collect();
    format!(
        "{} {:?} reason={:?}\n{}\ntrace:\n{}",
        result.id,
        result.verdict,
        result.reason,
        failures.join("\n"),
        result.full_ladder
    )
}

/// BRIEF §6, §7: the case passes against refphone, and its ladder matches its snapshot (kept
/// beside the case's area, `suites/src/<area>/snapshots/`).
fn passes_with_its_snapshot(case: &Case) -> Result<(), Failed> {
    let result = run(case, "refphone");
    if result.verdict != Verdict::Pass {
        return Err(explain(&result).into());
    }
    let area = result.id.split('.').next().unwrap_or("misc");
    insta::with_settings!({
        snapshot_path => format!("../src/{area}/snapshots"),
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!(result.id.clone(), result.ladder);
    });
    Ok(())
}

/// BRIEF §6, the ratchet: the quirk makes the case fail (a `fail`, never an `error`), citing
/// the requirement declared for it, saying what was expected and what arrived.
fn fails_against(case: &Case, quirk: &str, requirement: Requirement) -> Result<(), Failed> {
    let result = run(case, &format!("refphone:quirk={quirk}"));
    let ok = result.verdict == Verdict::Fail
        && result
            .failures
            .first()
            .is_some_and(|f| f.requirement == requirement && !f.expected.is_empty() && !f.arrived.is_empty());
    if ok {
        Ok(())
    } else {
        Err(format!("quirk {quirk} should fail {} citing {requirement}:\n{}", case.id, explain(&result)).into())
    }
}

/// A legal variant (a quirk within the spec) passes the case: no case fails a legal phone.
fn passes_against(case: &Case, quirk: &str) -> Result<(), Failed> {
    let result = run(case, &format!("refphone:quirk={quirk}"));
    if result.verdict == Verdict::Pass {
        Ok(())
    } else {
        Err(format!("the legal variant {quirk} should pass {}:\n{}", case.id, explain(&result)).into())
    }
}

fn every_case_is_caught(catalog: &Catalog) -> Result<(), Failed> {
    let pairs = catalog.quirk_pairs();
    let uncaught: Vec<&str> =
        catalog.cases.iter().filter(|c| !pairs.iter().any(|(_, id, _)| *id == c.id)).map(|c| c.id.as_str()).collect();
    if uncaught.is_empty() {
        Ok(())
    } else {
        Err(format!("caught by no quirk (a case that cannot fail checks nothing): {uncaught:#?}").into())
    }
}

/// `refphone --list-quirks`: each quirk's name and what it breaks.
fn listed_quirks() -> Vec<(String, String)> {
    let refphone = harness::dut::find_refphone().expect("refphone is built by cargo test --workspace");
    let output = std::process::Command::new(refphone).arg("--list-quirks").output().expect("refphone runs");
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(name, breaks)| (name.to_owned(), breaks.to_owned()))
        .collect()
}

/// Every quirk refphone lists makes some case fail, or is pending with a reason; the pending list
/// names only quirks that exist and that no case catches yet; every quirk the ratchet names exists.
fn every_quirk_is_caught_or_pending(catalog: &Catalog) -> Result<(), Failed> {
    let listed = listed_quirks();
    let known: Vec<&str> = listed.iter().map(|(name, _)| name.as_str()).collect();
    let pairs = catalog.quirk_pairs();
    let mut problems = Vec::new();
    for catch in &catalog.catches {
        match listed.iter().find(|(name, _)| name == catch.quirk) {
            None => problems.push(format!("the ratchet names {}, which refphone --list-quirks lacks", catch.quirk)),
            // The quirk says what it breaks; the ratchet may not make it break something else.
            Some((_, breaks)) if !breaks.contains(catch.requirement.id()) => problems.push(format!(
                "the ratchet expects {} to break {}, but it says it breaks: {breaks}",
                catch.quirk, catch.requirement
            )),
            Some(_) => {}
        }
        if !pairs.iter().any(|(q, _, _)| *q == catch.quirk) {
            problems.push(format!("{} names {:?}, which matches no case", catch.quirk, catch.cases));
        }
    }
    for pending in &catalog.pending {
        if !known.contains(&pending.quirk) {
            problems.push(format!("the pending list names {}, which refphone --list-quirks lacks", pending.quirk));
        }
        if catalog.catches.iter().any(|c| c.quirk == pending.quirk) {
            problems.push(format!("{} is pending but a case catches it: drop it from the pending list", pending.quirk));
        }
    }
    for legal in &catalog.legal {
        if !known.contains(&legal.quirk) {
            problems.push(format!("the legal variants name {}, which refphone --list-quirks lacks", legal.quirk));
        }
        if catalog.catches.iter().any(|c| c.quirk == legal.quirk) {
            problems.push(format!("{} is a legal variant, yet the ratchet expects it to fail a case", legal.quirk));
        }
    }
    for quirk in known {
        let caught = catalog.catches.iter().any(|c| c.quirk == quirk);
        let pending = catalog.pending.iter().any(|p| p.quirk == quirk);
        let legal = catalog.legal.iter().any(|l| l.quirk == quirk);
        if !caught && !pending && !legal {
            problems.push(format!("no case catches the quirk {quirk}, and it is neither pending nor a legal variant"));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("\n").into()) }
}

/// Issue must-show: every seed bullet (R1.1-R3.3) has a case and a quirk proven to break it.
fn every_seed_bullet_is_covered(catalog: &Catalog) -> Result<(), Failed> {
    let pairs = catalog.quirk_pairs();
    let mut problems = Vec::new();
    for requirement in Requirement::ALL.into_iter().filter(|r| r.is_seed_bullet()) {
        if !catalog.cases.iter().any(|c| c.requirements.contains(&requirement)) {
            problems.push(format!("{requirement}: no case"));
        }
        if !pairs.iter().any(|(_, _, r)| *r == requirement) {
            problems.push(format!("{requirement}: no quirk proven to break it"));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("\n").into()) }
}

/// `suites/COVERAGE.md` is exactly what `sipharness coverage` prints.
fn coverage_is_fresh(catalog: &Catalog) -> Result<(), Failed> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("COVERAGE.md");
    let written = std::fs::read_to_string(&path).unwrap_or_default();
    if written == catalog.coverage() {
        Ok(())
    } else {
        Err(format!(
            "{} is stale: run `cargo run -p suites --bin sipharness -- coverage > suites/COVERAGE.md`",
            path.display()
        )
        .into())
    }
}

/// BRIEF §7: the same case run twice, at once, gives byte-identical snapshots.
fn same_case_twice(catalog: &Catalog) -> Result<(), Failed> {
    for id in [
        "failover.no-outbound.primary-registrar-fails.silent.udp",
        "failover.no-outbound.primary-proxy-fails.refuse.tcp",
    ] {
        let case = find(catalog, id);
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let refphone = profile("refphone");
        let (first, second) =
            runtime.block_on(async { tokio::join!(run_case(&case, &refphone), run_case(&case, &refphone)) });
        for result in [&first, &second] {
            if result.verdict != Verdict::Pass {
                return Err(explain(result).into());
            }
        }
        if first.ladder != second.ladder {
            return Err(format!("{id}: the two ladders differ:\n{}\n---\n{}", first.ladder, second.ladder).into());
        }
    }
    Ok(())
}
