//! Processes of the lab: started inside a namespace, in their own process group, with a log
//! file and a pid file, so they outlive `ferrolb-lab up` and `down` can find them again.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Where a lab keeps pid files and logs.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// A state directory at `root` (created on demand).
    pub fn new(root: impl Into<PathBuf>) -> StateDir {
        StateDir { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `root/name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The log file of component `name`.
    pub fn log(&self, name: &str) -> PathBuf {
        self.root.join("logs").join(format!("{name}.log"))
    }

    /// The pid file of component `name`.
    pub fn pid_file(&self, name: &str) -> PathBuf {
        self.root.join("pids").join(format!("{name}.pid"))
    }

    /// Creates the directory tree.
    pub fn create(&self) -> Result<()> {
        for sub in ["logs", "pids"] {
            let d = self.root.join(sub);
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        }
        Ok(())
    }

    /// The pid recorded for `name`, if any.
    pub fn pid(&self, name: &str) -> Option<u32> {
        std::fs::read_to_string(self.pid_file(name))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The last `lines` lines of `name`'s log.
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log(name)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Removes the directory (tolerates it being gone).
    pub fn remove(&self) -> Result<()> {
        match std::fs::remove_dir_all(&self.root) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", self.root.display()))
            }
            _ => Ok(()),
        }
    }
}

/// Starts `prog args` inside namespace `ns` as component `name`: own process group (a
/// Ctrl-C in the terminal that ran `up` does not reach it), stdin closed, stdout and stderr
/// to `logs/name.log`, pid in `pids/name.pid`. `ip netns exec` execs in place, so the pid is
/// the program's own.
pub fn spawn_in(
    state: &StateDir,
    ns: &str,
    name: &str,
    prog: &Path,
    args: &[String],
    env: &[(&str, &str)],
) -> Result<Child> {
    let log = state.log(name);
    let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone().context("dup log file")?;
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns])
        .arg(prog)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    let child = c
        .spawn()
        .with_context(|| format!("starting {} in namespace {ns}", prog.display()))?;
    std::fs::write(state.pid_file(name), format!("{}\n", child.id()))
        .with_context(|| format!("writing {}", state.pid_file(name).display()))?;
    tracing::debug!(component = name, ns, pid = child.id(), log = %log.display(), "started");
    Ok(child)
}

/// True if `pid` runs (a zombie counts as dead).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Sends `sig` to `pid`, ignoring "no such process".
pub fn signal(pid: u32, sig: Signal) {
    let _ = kill(Pid::from_raw(pid as i32), sig);
}

/// Waits up to `timeout` for every pid in `pids` to be gone; returns the ones still alive.
pub fn wait_gone(pids: &[u32], timeout: Duration) -> Vec<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        let alive: Vec<u32> = pids.iter().copied().filter(|p| pid_alive(*p)).collect();
        if alive.is_empty() || Instant::now() >= deadline {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Pids living in namespace `ns`.
pub fn pids_in(ns: &str) -> Vec<u32> {
    Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Names of the network namespaces whose name starts with `prefix-`.
pub fn namespaces_with_prefix(prefix: &str) -> Result<Vec<String>> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .context("running `ip netns list` (is iproute2 installed?)")?;
    if !out.status.success() {
        bail!(
            "`ip netns list` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let want = format!("{prefix}-");
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&want))
        .map(String::from)
        .collect())
}

/// Stops every process in the namespaces `prefix-*` (SIGTERM, SIGKILL after `grace`) and
/// deletes the namespaces (their veths and bridges go with them). Idempotent; returns the
/// namespaces removed.
pub fn teardown_prefix(prefix: &str, grace: Duration) -> Result<Vec<String>> {
    let namespaces = namespaces_with_prefix(prefix)?;
    let mut pids: Vec<u32> = namespaces.iter().flat_map(|ns| pids_in(ns)).collect();
    pids.sort_unstable();
    pids.dedup();
    for p in &pids {
        signal(*p, Signal::SIGTERM);
        signal(*p, Signal::SIGCONT);
    }
    for p in wait_gone(&pids, grace) {
        signal(p, Signal::SIGKILL);
    }
    let _ = wait_gone(&pids, Duration::from_secs(2));
    let mut errors = Vec::new();
    for ns in &namespaces {
        // Anything started in the namespace behind our back.
        for p in pids_in(ns) {
            signal(p, Signal::SIGKILL);
        }
        let out = Command::new("ip").args(["netns", "del", ns]).output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                let e = String::from_utf8_lossy(&o.stderr).trim().to_string();
                if !e.contains("No such file") {
                    errors.push(format!("ip netns del {ns}: {e}"));
                }
            }
            Err(e) => errors.push(format!("ip netns del {ns}: {e}")),
        }
    }
    if !errors.is_empty() {
        bail!("teardown incomplete: {}", errors.join("; "));
    }
    Ok(namespaces)
}
