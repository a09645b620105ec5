//! Phones that run as child processes (refphone, baresip): started with their output in a log, killed with the harness, and read from their log when they die.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::{Child, Command};

use crate::error::HarnessError;

/// A phone process the harness started. Dropping it kills the process; so does the harness's
/// death, even by SIGKILL (`PR_SET_PDEATHSIG`).
pub(crate) struct ChildPhone {
    program: String,
    child: Option<Child>,
    log: PathBuf,
}

impl ChildPhone {
    /// Starts `binary` with `args` and `env`, stdin closed, stdout and stderr into `log`.
    pub fn spawn(
        binary: &Path,
        args: &[String],
        env: &[(&str, String)],
        log: &Path,
    ) -> Result<ChildPhone, HarnessError> {
        let program = binary.file_name().map_or_else(|| binary.display().to_string(), |n| n.to_string_lossy().into());
        let out = std::fs::File::create(log)?;
        let err = out.try_clone()?;
        let mut command = Command::new(binary);
        command
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        die_with_parent(&mut command);
        let child = command.spawn().map_err(|e| HarnessError::DutStart(format!("{}: {e}", binary.display())))?;
        tracing::info!(pid = child.id(), "{program} started: {} {}", binary.display(), args.join(" "));
        Ok(ChildPhone { program, child: Some(child), log: log.to_owned() })
    }

    /// `Err` with the log's last lines once the process has exited.
    pub fn check_alive(&mut self) -> Result<(), HarnessError> {
        let Some(child) = &mut self.child else { return Ok(()) };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                Err(HarnessError::DutStart(format!("{} exited ({status}): {}", self.program, self.log_tail())))
            }
            Err(e) => Err(HarnessError::Io(e)),
        }
    }

    /// Kills the process and reaps it.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// The log's last five lines, joined.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }
}

/// Finds `program` on PATH.
pub(crate) fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}

/// Asks the kernel to kill the child when the thread that spawned it dies, so no phone outlives
/// the harness even on SIGKILL or a panic that aborts (kill_on_drop covers unwinding).
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
