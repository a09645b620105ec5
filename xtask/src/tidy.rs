//! Tidy checks as tests: house rules (BRIEF §8) that a reviewer would otherwise have to remember.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name == "target" || name.to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    fn workspace_files() -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
        let mut files = Vec::new();
        for member in ["sip", "harness", "suites", "phone", "xtask", "fuzz"] {
            rust_files(&root.join(member), &mut files);
        }
        assert!(files.len() > 20, "found only {} files", files.len());
        files
    }

    /// The fuzz crate is a workspace of its own with its own lock file, which CI builds with
    /// `--locked`: a dependency added to `sip`, `harness` or `phone` must update it too.
    #[test]
    fn the_fuzz_crates_lock_file_is_up_to_date() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
        let status = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["metadata", "--format-version", "1", "--locked", "--manifest-path"])
            .arg(root.join("fuzz/Cargo.toml"))
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "fuzz/Cargo.lock is stale: run `cargo check --manifest-path fuzz/Cargo.toml` and commit it"
        );
    }

    /// Every file opens with one `//!` line saying why it exists.
    #[test]
    fn every_file_opens_with_a_module_doc_line() {
        let offenders: Vec<String> = workspace_files()
            .into_iter()
            .filter(|f| !std::fs::read_to_string(f).unwrap_or_default().starts_with("//! "))
            .map(|f| f.display().to_string())
            .collect();
        assert!(offenders.is_empty(), "files without an opening `//!` line: {offenders:#?}");
    }

    /// Libraries log with tracing; only binaries' entry points and tests print.
    #[test]
    fn no_println_in_libraries() {
        let offenders: Vec<String> = workspace_files()
            .into_iter()
            .filter(|f| {
                let path = f.to_string_lossy();
                let library =
                    (path.contains("/sip/src/") || path.contains("/harness/src/") || path.contains("/suites/src/"))
                        && !path.ends_with("main.rs");
                library && std::fs::read_to_string(f).unwrap_or_default().contains("println!")
            })
            .map(|f| f.display().to_string())
            .collect();
        assert!(offenders.is_empty(), "println! in library code: {offenders:#?}");
    }

    /// Cases never sleep: they wait for events with deadlines (BRIEF §8).
    #[test]
    fn no_sleeps_in_cases_or_tests() {
        let offenders: Vec<String> = workspace_files()
            .into_iter()
            .filter(|f| {
                let path = f.to_string_lossy();
                (path.contains("/suites/") || path.contains("/tests/")) && !path.contains("/xtask/")
            })
            .filter(|f| {
                let text = std::fs::read_to_string(f).unwrap_or_default();
                text.contains("thread::sleep") || text.contains("time::sleep(")
            })
            .map(|f| f.display().to_string())
            .collect();
        assert!(offenders.is_empty(), "sleeps in cases or tests: {offenders:#?}");
    }
}
