//! The runner: one case in its own lab under a watchdog, or many at once, each with a verdict.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::case::{Case, CaseResult, CaseTrace, Verdict};
use crate::dut::{Capabilities, Dut, Profile, aastra};
use crate::error::{CaseError, HarnessError};
use crate::lab::{BlockChoice, Lab, LabSpec};
use crate::provision::Provisioning;
use crate::topology::Topology;

/// Selects case ids (BRIEF §5): whole dotted segments from the start, or a glob when it holds `*`.
pub fn filter_matches(filter: &str, id: &str) -> bool {
    if filter.contains('*') {
        return glob::Pattern::new(filter).is_ok_and(|p| p.matches(id));
    }
    let mut id_segments = id.split('.');
    filter.split('.').all(|segment| id_segments.next() == Some(segment))
}

/// `--shard K/N` (BRIEF §5): the K-th of N stable parts of the selected cases, so a CI matrix
/// runs them on N machines. Shard K takes the cases whose position among the selected ids,
/// sorted, is K-1 modulo N: the parts differ in size by one at most, each area is spread over
/// all of them, and the same catalog and FILTER give the same parts on every machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1-based.
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The most parts a run is split into.
    pub const MAX_COUNT: usize = 1000;

    /// `K/N` with 1 <= K <= N <= [`Shard::MAX_COUNT`]; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let (index, count) = text.split_once('/').ok_or_else(|| "expected K/N, e.g. 2/4".to_owned())?;
        let number = |part: &str| part.trim().parse::<usize>().map_err(|_| "expected K/N, e.g. 2/4".to_owned());
        let (index, count) = (number(index)?, number(count)?);
        if count == 0 || count > Shard::MAX_COUNT {
            return Err(format!("N must be 1 to {}", Shard::MAX_COUNT));
        }
        if index == 0 || index > count {
            return Err(format!("K must be 1 to N ({count})"));
        }
        Ok(Shard { index, count })
    }

    /// The cases of `selected` in this shard, in their order in `selected`.
    pub fn take(self, selected: Vec<&Case>) -> Vec<&Case> {
        let mut by_id: Vec<usize> = (0..selected.len()).collect();
        by_id.sort_by(|&a, &b| selected[a].id.cmp(&selected[b].id));
        let mut mine = vec![false; selected.len()];
        for &position in by_id.iter().skip(self.index - 1).step_by(self.count) {
            mine[position] = true;
        }
        selected.into_iter().zip(mine).filter_map(|(case, mine)| mine.then_some(case)).collect()
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

fn expected_failure(case: &Case, capabilities: &Capabilities) -> Option<String> {
    capabilities
        .expected_failures
        .iter()
        .find(|(pattern, _)| filter_matches(pattern, &case.id) || pattern == &case.id)
        .map(|(_, reason)| reason.clone())
}

/// The lab `case` gets with `profile`: the case's own, adjusted for a phone at a fixed address
/// (`aastra`: the block its address names, pinned, and its MAC), on the addresses of a lab file
/// when one is given (`--lab`).
pub fn lab_spec(case: &Case, profile: &Profile, lab: Option<&Arc<Topology>>) -> LabSpec {
    let mut spec = LabSpec::for_case(case);
    if let Some(options) = fixed_phone(profile) {
        aastra::adjust_lab(&options, &mut spec);
    }
    if let Some(lab) = lab {
        spec.block = BlockChoice::Lab(lab.clone());
    }
    spec
}

/// The cfg files `profile` is served for `case`, made as `Lab::start` makes them (what `sipharness
/// provision` writes): the case's lab, its timers raised to the profile's floors, on the block the
/// profile pins or else the first block, 127.100.0.16 (the files name elements by FQDN, so the
/// block does not show in them).
pub fn provisioning_for(
    case: &Case,
    profile: &Profile,
    lab: Option<&Arc<Topology>>,
) -> Result<(Provisioning, Topology), HarnessError> {
    let spec = lab_spec(case, profile, lab);
    let floors = profile.driver()?.capabilities().floors;
    let topology = match &spec.block {
        BlockChoice::Lab(topology) => Topology::clone(topology),
        BlockChoice::Pinned(base) => Topology::new(*base, &spec.zone),
        BlockChoice::Spread | BlockChoice::FirstFree => Topology::new(crate::topology::sequential_block(0), &spec.zone),
    };
    Ok((spec.provisioning(&topology, &floors), topology))
}

/// How long `case` may run against a phone of `capabilities` before its watchdog stops it, as
/// its lab will derive it.
pub fn case_budget(case: &Case, capabilities: &Capabilities) -> std::time::Duration {
    LabSpec::for_case(case).timing(capabilities).case_budget()
}

/// The options of a profile naming one device at a fixed address (its cases run one at a time).
fn fixed_phone(profile: &Profile) -> Option<aastra::AastraOptions> {
    (profile.name == "aastra").then(|| aastra::AastraOptions::of(profile).ok()).flatten()
}

/// Runs one case against a fresh phone of `profile`.
pub async fn run_case(case: &Case, profile: &Profile) -> CaseResult {
    run_case_in(case, profile, None).await
}

/// Runs one case against a fresh phone of `profile`, on a lab file's addresses when given.
pub async fn run_case_in(case: &Case, profile: &Profile, lab: Option<&Arc<Topology>>) -> CaseResult {
    match profile.driver() {
        Ok(dut) => run_case_on(case, profile, dut, lab).await,
        Err(e) => CaseResult::without_lab(case, Verdict::Error, e.to_string()),
    }
}

/// Runs one case against `dut`, a fresh driver of `profile` (a test may wrap the driver to see
/// what the lab hands it).
pub async fn run_case_on(case: &Case, profile: &Profile, dut: Box<dyn Dut>, lab: Option<&Arc<Topology>>) -> CaseResult {
    let started = Instant::now();
    let capabilities = dut.capabilities().clone();
    if let Some(reason) = capabilities.lacks(case, &profile.to_string()) {
        return CaseResult::without_lab(case, Verdict::Skip, reason);
    }
    if let Some((_, why)) = capabilities.unstable.iter().find(|(pattern, _)| filter_matches(pattern, &case.id)) {
        return CaseResult::without_lab(case, Verdict::Skip, format!("unstable with {profile}: {why}"));
    }
    let spec = lab_spec(case, profile, lab);
    let mut lab = match Lab::start(&spec, dut).await {
        Ok(lab) => lab,
        Err(e) => {
            return CaseResult {
                duration: started.elapsed(),
                ..CaseResult::without_lab(case, Verdict::Error, e.to_string())
            };
        }
    };
    let budget = lab.budget();
    let outcome = match tokio::time::timeout(budget, (case.run)(&mut lab)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(CaseError::Harness(HarnessError::Watchdog { budget_s: budget.as_secs_f64() })),
    };
    lab.shutdown().await;
    let waited = lab.waited();
    let (ladder, full_ladder) = (lab.ladder(), lab.full_ladder());
    let (verdict, failures, reason) = match outcome {
        Ok(()) => (Verdict::Pass, Vec::new(), None),
        Err(CaseError::Violation(v)) => (Verdict::Fail, vec![*v], None),
        Err(CaseError::Harness(e)) => (Verdict::Error, Vec::new(), Some(e.to_string())),
    };
    let (verdict, reason) = match (verdict, expected_failure(case, &capabilities)) {
        (Verdict::Fail, Some(reason)) => (Verdict::Xfail, Some(reason)),
        (Verdict::Pass, Some(reason)) => (Verdict::Xpass, Some(format!("expected to fail: {reason}"))),
        (v, _) => (v, reason),
    };
    let trace = CaseTrace::of(&lab);
    CaseResult {
        id: case.id.clone(),
        verdict,
        duration: started.elapsed(),
        waited,
        failures,
        reason,
        ladder,
        full_ladder,
        requirements: case.requirements.clone(),
        trace: Some(Arc::new(trace)),
    }
}

/// The cases running now, each with when it started: what a long run's progress line names.
#[derive(Debug, Default)]
pub struct Running {
    cases: std::sync::Mutex<Vec<(String, Instant)>>,
}

impl Running {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, Instant)>> {
        self.cases.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn start(&self, id: &str) {
        self.lock().push((id.to_owned(), Instant::now()));
    }

    fn finish(&self, id: &str) {
        self.lock().retain(|(running, _)| running != id);
    }

    /// Each running case and how long it has run, longest first.
    pub fn snapshot(&self) -> Vec<(String, std::time::Duration)> {
        let mut cases: Vec<_> = self.lock().iter().map(|(id, at)| (id.clone(), at.elapsed())).collect();
        cases.sort_by_key(|(_, ran)| std::cmp::Reverse(*ran));
        cases
    }
}

/// How many cases run at once: `jobs`, but one for one device, or on one set of a lab file's
/// addresses.
pub fn jobs_at_once(profile: &Profile, lab_file: bool, jobs: usize) -> usize {
    if profile.is_one_device() || lab_file { 1 } else { jobs.max(1) }
}

/// Runs cases `jobs` at a time; `on_result` sees each result as it lands (progress), and
/// `running` holds the cases in flight.
pub async fn run_cases(
    cases: Vec<Case>,
    profile: &Profile,
    lab: Option<Arc<Topology>>,
    jobs: usize,
    running: Arc<Running>,
    mut on_result: impl FnMut(&mut CaseResult, usize, usize),
) -> Vec<CaseResult> {
    let total = cases.len();
    let jobs = jobs_at_once(profile, lab.is_some(), jobs);
    let permits = Arc::new(Semaphore::new(jobs));
    let mut set = JoinSet::new();
    for (position, case) in cases.into_iter().enumerate() {
        let permits = permits.clone();
        let profile = profile.clone();
        let lab = lab.clone();
        let running = running.clone();
        set.spawn(async move {
            let _permit = permits.acquire_owned().await;
            running.start(&case.id);
            // A panic in a case is the harness's fault: it becomes an `error` verdict, not a lost case.
            let this = case.clone();
            let result = match tokio::spawn(async move { run_case_in(&case, &profile, lab.as_ref()).await }).await {
                Ok(result) => result,
                Err(e) => CaseResult::without_lab(&this, Verdict::Error, format!("the case panicked: {e}")),
            };
            running.finish(&result.id);
            (position, result)
        });
    }
    let mut results: Vec<(usize, CaseResult)> = Vec::with_capacity(total);
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((position, mut result)) => {
                on_result(&mut result, results.len() + 1, total);
                results.push((position, result));
            }
            Err(e) => tracing::error!("a runner task failed: {e}"),
        }
    }
    results.sort_by_key(|(position, _)| *position);
    results.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::Shard;

    #[test]
    fn shards_are_k_of_n_within_bounds() {
        assert_eq!(Shard::parse("2/4"), Ok(Shard { index: 2, count: 4 }));
        assert_eq!(Shard::parse("1000/1000"), Ok(Shard { index: 1000, count: 1000 }));
        for bad in ["0/3", "4/3", "1/0", "1/1001", "3", "a/b", "-1/3", "1/3/5", ""] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Shard::parse("2/4").unwrap().to_string(), "2/4");
    }
}
