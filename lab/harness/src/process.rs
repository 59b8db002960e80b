//! Long-running processes started by the harness, tracked so teardown can stop them.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long a process gets after SIGTERM before SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// A handle to a process started with [`crate::Netns::spawn`]. Cheap to clone; the owning
/// [`crate::Lab`] keeps a clone and stops the process at teardown.
#[derive(Clone, Debug)]
pub struct Proc {
    inner: Arc<ProcInner>,
}

#[derive(Debug)]
struct ProcInner {
    pid: u32,
    command: String,
    log: PathBuf,
    state: Mutex<ProcState>,
}

#[derive(Debug)]
struct ProcState {
    child: Option<Child>,
    status: Option<ExitStatus>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the state inconsistent (plain fields).
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Proc {
    pub(crate) fn new(child: Child, command: String, log: PathBuf) -> Proc {
        Proc {
            inner: Arc::new(ProcInner {
                pid: child.id(),
                command,
                log,
                state: Mutex::new(ProcState {
                    child: Some(child),
                    status: None,
                }),
            }),
        }
    }

    /// The process id (of the program itself: `ip netns exec` execs in place).
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// The command line it was started with.
    pub fn command(&self) -> &str {
        &self.inner.command
    }

    /// The file that receives its stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.inner.log
    }

    /// The last `lines` lines of its log (empty if unreadable).
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.inner.log, lines)
    }

    /// Its exit status if it has exited (reaps it), `None` while it runs.
    pub fn try_status(&self) -> Option<ExitStatus> {
        let mut st = lock(&self.inner.state);
        if st.status.is_none()
            && let Some(child) = st.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            st.status = Some(status);
            st.child = None;
        }
        st.status
    }

    /// True while the process has not exited.
    pub fn is_running(&self) -> bool {
        self.try_status().is_none()
    }

    /// Sends `signal` (e.g. SIGSTOP to make a BGP peer silent, SIGCONT to resume).
    pub fn signal(&self, signal: Signal) -> crate::Result<()> {
        if !self.is_running() {
            return Ok(());
        }
        kill(Pid::from_raw(self.inner.pid as i32), signal).map_err(|e| {
            crate::Error::io(
                format!("kill -{signal} {} ({})", self.inner.pid, self.inner.command),
                std::io::Error::from(e),
            )
        })
    }

    /// Stops the process: SIGTERM (and SIGCONT, in case it was stopped), then SIGKILL after
    /// `grace`, then reaps it. Idempotent; returns the exit status if known.
    pub fn kill_with_grace(&self, grace: Duration) -> Option<ExitStatus> {
        let mut st = lock(&self.inner.state);
        let Some(mut child) = st.child.take() else {
            return st.status;
        };
        if let Ok(Some(status)) = child.try_wait() {
            st.status = Some(status);
            return st.status;
        }
        let pid = Pid::from_raw(self.inner.pid as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let _ = kill(pid, Signal::SIGCONT);
        let deadline = Instant::now() + grace;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    st.status = Some(status);
                    break;
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                _ => {
                    tracing::debug!(pid = self.inner.pid, command = %self.inner.command, "SIGKILL after grace");
                    let _ = child.kill();
                    st.status = child.wait().ok();
                    break;
                }
            }
        }
        tracing::debug!(pid = self.inner.pid, command = %self.inner.command, status = ?st.status, "process stopped");
        st.status
    }

    /// [`Proc::kill_with_grace`] with the default [`KILL_GRACE`].
    pub fn kill(&self) -> Option<ExitStatus> {
        self.kill_with_grace(KILL_GRACE)
    }
}

pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The set of processes a lab owns.
#[derive(Debug, Default)]
pub(crate) struct ProcRegistry {
    procs: Mutex<Vec<Proc>>,
}

impl ProcRegistry {
    pub(crate) fn add(&self, p: Proc) {
        lock(&self.procs).push(p);
    }

    /// Stops every process, newest first; SIGTERM goes to all before anyone waits, so the
    /// total time is one grace period, not one per process.
    pub(crate) fn kill_all(&self) {
        let procs: Vec<Proc> = std::mem::take(&mut *lock(&self.procs));
        for p in procs.iter().rev() {
            if p.is_running() {
                let _ = kill(Pid::from_raw(p.pid() as i32), Signal::SIGTERM);
                let _ = kill(Pid::from_raw(p.pid() as i32), Signal::SIGCONT);
            }
        }
        let deadline = Instant::now() + KILL_GRACE;
        for p in procs.iter().rev() {
            p.kill_with_grace(deadline.saturating_duration_since(Instant::now()));
        }
    }
}
