//! The `sipharness` binary: the harness's command line over this build's catalog of cases.

/// mimalloc, not the system allocator: every message parsed, recorded and answered is a few
/// dozen small allocations, and under a load test glibc's malloc and free took a third of the
/// CPU (measured with perf against SIPp at 10k REGISTER/s).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    harness::cli::main(suites::catalog())
}
