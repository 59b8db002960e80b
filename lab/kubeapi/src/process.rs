//! Child processes that cannot outlive the test: each is started with
//! `PR_SET_PDEATHSIG = SIGKILL` from one long-lived spawner thread, so when the process that
//! started it ends — normally, by panic, or by `kill -9` — the kernel kills it too.
//!
//! Why a dedicated thread: the death signal fires when the *thread* that forked the child
//! exits, and test threads (and tokio workers) come and go while a shared server must stay.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

type Request = (Command, mpsc::Sender<io::Result<Child>>);

fn spawner() -> &'static Mutex<mpsc::Sender<Request>> {
    static TX: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("kubeapi-spawner".into())
            .spawn(move || {
                // Lives as long as the process: receivers never hang up (the sender is static).
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawning the kubeapi spawner thread");
        Mutex::new(tx)
    })
}

/// Starts `cmd` (stdout and stderr appended to `log`) so that it dies with this process.
pub fn spawn_tied(mut cmd: Command, log: &Path) -> io::Result<Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and only calls async-signal-safe
    // functions (prctl, getppid, _exit).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody would kill us.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    spawner()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((cmd, tx))
        .map_err(|_| io::Error::other("kubeapi spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| io::Error::other("kubeapi spawner thread did not answer"))?
}

/// A started program with its log file.
#[derive(Debug)]
pub struct Proc {
    /// What it is (`etcd`, `kube-apiserver`), for messages.
    pub name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `cmd` tied to this process, logging to `log`.
    pub fn start(name: &'static str, cmd: Command, log: PathBuf) -> io::Result<Proc> {
        let child = spawn_tied(cmd, &log)?;
        Ok(Proc { name, child, log })
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status once it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        log_tail(&self.log, n)
    }

    /// SIGTERM, then SIGKILL after `grace`; reaps it.
    pub fn stop(&mut self, grace: Duration) {
        if self.exited().is_some() {
            return;
        }
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGKILL now (what a crash looks like); reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `n` lines of a file (empty if unreadable).
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tied_child_runs_and_is_stopped() {
        let dir = std::env::temp_dir().join(format!("kubeapi-proc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo started; exec sleep 30"]);
        let mut p = Proc::start("sleep", cmd, dir.join("log")).expect("spawn");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !p.log_tail(5).contains("started") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(p.log_tail(5).contains("started"));
        assert!(p.exited().is_none());
        let pid = p.pid();
        p.stop(Duration::from_secs(2));
        assert!(p.exited().is_some());
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists() || {
                // A zombie would still have a /proc entry; a reaped child has none.
                std::fs::read_to_string(format!("/proc/{pid}/stat")).is_err()
            }
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
