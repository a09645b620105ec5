//! What a long run says while it runs: which cases are done and which still run.

use std::io::Write as _;

/// How often a long run says what is still running (a real phone's case takes minutes).
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Every [`PROGRESS_EVERY`], while a case has run at least half that, one line on stderr: how
/// many are done and what runs, for how long. Never returns.
pub(super) async fn report_progress(
    running: &crate::runner::Running,
    done: &std::sync::atomic::AtomicUsize,
    total: usize,
) {
    let mut ticks = tokio::time::interval(PROGRESS_EVERY);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let cases = running.snapshot();
        // A case running since before the last line: the run is in a long wait.
        if cases.first().is_none_or(|(_, ran)| *ran < PROGRESS_EVERY / 2) {
            continue;
        }
        let named: Vec<String> = cases.iter().map(|(id, ran)| format!("{id} ({} s)", ran.as_secs())).collect();
        let _ = writeln!(
            std::io::stderr(),
            "sipharness: {}/{total} done; running: {}",
            done.load(std::sync::atomic::Ordering::Relaxed),
            named.join(", ")
        );
    }
}
