//! The `sipharness` binary: the harness's command line over this build's catalog of cases.

fn main() -> std::process::ExitCode {
    harness::cli::main(suites::catalog())
}
