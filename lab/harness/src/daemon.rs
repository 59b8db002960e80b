//! Shared start-up logic for real routing daemons: write a config, spawn, poll the control
//! interface until it answers, and fail fast (with the log tail) if the daemon dies.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::process::Proc;

static STEMS: AtomicU64 = AtomicU64::new(0);

/// A fresh `dir/{daemon}-{n}` path stem for a daemon's config, socket and log files.
pub(crate) fn fresh_stem(dir: &Path, daemon: &str) -> PathBuf {
    dir.join(format!(
        "{daemon}-{}",
        STEMS.fetch_add(1, Ordering::Relaxed)
    ))
}

pub(crate) fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(format!("write {}", path.display()), e))
}

/// Number of log lines quoted in start-up errors.
pub(crate) const LOG_TAIL_LINES: usize = 30;

/// Polls `probe` until it succeeds. If the process exits first, or `timeout` passes (the
/// process is then killed), returns a typed error with the log tail.
pub(crate) fn wait_ready(
    daemon: &str,
    proc: &Proc,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<()>,
) -> Result<()> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut last_error: String;
    loop {
        if let Some(status) = proc.try_status() {
            return Err(Error::DaemonExited {
                daemon: daemon.to_string(),
                command: proc.command().to_string(),
                status: status.to_string(),
                log_tail: proc.log_tail(LOG_TAIL_LINES),
            });
        }
        match probe() {
            Ok(()) => {
                tracing::debug!(
                    daemon,
                    pid = proc.pid(),
                    elapsed_ms = start.elapsed().as_millis() as u64,
                    "daemon ready"
                );
                return Ok(());
            }
            Err(e) => last_error = e.to_string(),
        }
        if Instant::now() >= deadline {
            proc.kill();
            return Err(Error::DaemonNotReady {
                daemon: daemon.to_string(),
                command: proc.command().to_string(),
                timeout,
                last_error,
                log_tail: proc.log_tail(LOG_TAIL_LINES),
            });
        }
        thread::sleep(Duration::from_millis(50));
    }
}
