//! The topology owner: creates namespaces, veths and bridges with unique names, and tears
//! everything down on drop — including while a panic unwinds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::cmd::{self, DEFAULT_TIMEOUT};
use crate::error::{Error, Result};
use crate::kernel;
use crate::names::{self, DEFAULT_PREFIX};
use crate::netns::{self, Netns};
use crate::process::ProcRegistry;

/// Set this environment variable to keep a lab's work directory (configs, logs) after
/// teardown, for debugging.
pub const KEEP_DIR_ENV: &str = "FERROLB_NETNS_KEEP";

/// The two interface names of a veth pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Veth {
    /// The end in the first namespace given.
    pub a: String,
    /// The end in the second namespace given.
    pub b: String,
}

/// Owns a topology. Dropping it (normally or during a panic) stops the processes it
/// started, deletes the links it put in the root namespace and deletes its namespaces.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    id: String,
    dir: PathBuf,
    procs: Arc<ProcRegistry>,
    namespaces: Mutex<Vec<String>>,
    root_links: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where every lab's work directory lives.
pub fn work_root() -> PathBuf {
    std::env::temp_dir().join("ferrolb-netns")
}

fn run_ip<S: AsRef<str>>(args: &[S]) -> Result<String> {
    let mut c = Command::new("ip");
    c.args(args.iter().map(AsRef::as_ref));
    cmd::run(c, DEFAULT_TIMEOUT)?.into_stdout()
}

/// True for the "already gone" errors that teardown tolerates.
fn is_gone(e: &Error) -> bool {
    match e {
        Error::CommandFailed { stderr, .. } => {
            stderr.contains("Cannot find device")
                || stderr.contains("No such file")
                || stderr.contains("does not exist")
        }
        _ => false,
    }
}

impl Lab {
    /// A new, empty lab with the default `flb` prefix.
    pub fn new() -> Result<Lab> {
        Lab::with_prefix(DEFAULT_PREFIX)
    }

    /// A new, empty lab whose objects are named `{prefix}-...` (1-4 chars of `[a-z0-9]`).
    /// Use distinct prefixes for independent tools so their `cleanup_stale` calls never meet.
    pub fn with_prefix(prefix: &str) -> Result<Lab> {
        let id = names::unique_name(prefix)?;
        let dir = work_root().join(&id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("create lab directory {}", dir.display()), e))?;
        tracing::info!(lab = %id, dir = %dir.display(), "lab created");
        Ok(Lab {
            prefix: prefix.to_string(),
            id,
            dir,
            procs: Arc::new(ProcRegistry::default()),
            namespaces: Mutex::new(Vec::new()),
            root_links: Mutex::new(Vec::new()),
        })
    }

    /// This lab's unique id (also the name of its work directory).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The work directory (configs, logs, control sockets).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A handle to the root namespace; links the lab creates there are deleted at teardown.
    pub fn root(&self) -> Netns {
        Netns::new(None, self.dir.clone(), self.procs.clone())
    }

    /// Creates a namespace named `{prefix}-{pid}-{sfx}-{role}` with `lo` up.
    pub fn netns(&self, role: &str) -> Result<Netns> {
        let base = names::unique_name(&self.prefix)?;
        let role = names::sanitize_role(role);
        let name = if role.is_empty() {
            base
        } else {
            format!("{base}-{role}")
        };
        run_ip(&["netns", "add", &name])?;
        lock(&self.namespaces).push(name.clone());
        let ns = Netns::new(Some(name), self.dir.clone(), self.procs.clone());
        ns.set_link("lo", true)?;
        tracing::debug!(lab = %self.id, ns = ns.label(), "namespace created");
        Ok(ns)
    }

    /// Creates a veth pair with one end in `a` and the other in `b`, both up.
    pub fn veth(&self, a: &Netns, b: &Netns) -> Result<Veth> {
        let va = names::unique_name(&self.prefix)?;
        let vb = names::unique_name(&self.prefix)?;
        match (a.name(), b.name()) {
            (None, None) => {
                run_ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb])?;
                lock(&self.root_links).extend([va.clone(), vb.clone()]);
            }
            (None, Some(nb)) => {
                run_ip(&[
                    "link", "add", &va, "type", "veth", "peer", "name", &vb, "netns", nb,
                ])?;
                lock(&self.root_links).push(va.clone());
            }
            (Some(na), None) => {
                run_ip(&[
                    "link", "add", &vb, "type", "veth", "peer", "name", &va, "netns", na,
                ])?;
                lock(&self.root_links).push(vb.clone());
            }
            (Some(na), Some(nb)) => {
                run_ip(&[
                    "-n", na, "link", "add", &va, "type", "veth", "peer", "name", &vb, "netns", nb,
                ])?;
            }
        }
        a.set_link(&va, true)?;
        b.set_link(&vb, true)?;
        tracing::debug!(lab = %self.id, a = %va, a_ns = a.label(), b = %vb, b_ns = b.label(), "veth created");
        Ok(Veth { a: va, b: vb })
    }

    /// Creates a Linux bridge (STP off, up) in `ns`; returns its name.
    pub fn bridge(&self, ns: &Netns) -> Result<String> {
        let br = names::unique_name(&self.prefix)?;
        ns.ip(&[
            "link",
            "add",
            &br,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ])?;
        if ns.name().is_none() {
            lock(&self.root_links).push(br.clone());
        }
        ns.set_link(&br, true)?;
        tracing::debug!(lab = %self.id, bridge = %br, ns = ns.label(), "bridge created");
        Ok(br)
    }

    /// Connects `ns` to `bridge` (which lives in `bridge_ns`) with a veth; `a` is the end in
    /// `ns` (put addresses there), `b` the bridge port.
    pub fn connect(&self, ns: &Netns, bridge_ns: &Netns, bridge: &str) -> Result<Veth> {
        let v = self.veth(ns, bridge_ns)?;
        bridge_ns.ip(&["link", "set", "dev", &v.b, "master", bridge])?;
        Ok(v)
    }

    /// Stops processes, deletes root-namespace links and namespaces, removes the work
    /// directory. Idempotent and tolerant of things that are already gone; tries every step
    /// and reports what failed.
    pub fn teardown(&self) -> Result<()> {
        let mut errors = Vec::new();
        self.procs.kill_all();
        let namespaces: Vec<String> = std::mem::take(&mut *lock(&self.namespaces));
        for ns in &namespaces {
            kill_namespace_pids(ns);
        }
        let links: Vec<String> = std::mem::take(&mut *lock(&self.root_links));
        for link in links.iter().rev() {
            match run_ip(&["link", "del", "dev", link]) {
                Err(e) if !is_gone(&e) => errors.push(e.to_string()),
                _ => {}
            }
        }
        for ns in namespaces.iter().rev() {
            match run_ip(&["netns", "del", ns]) {
                Err(e) if !is_gone(&e) => errors.push(e.to_string()),
                _ => {}
            }
        }
        if std::env::var_os(KEEP_DIR_ENV).is_none() {
            match std::fs::remove_dir_all(&self.dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    errors.push(format!("remove {}: {e}", self.dir.display()))
                }
                _ => {}
            }
        }
        tracing::info!(lab = %self.id, namespaces = namespaces.len(), errors = errors.len(), "lab torn down");
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Teardown(errors))
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if thread::panicking() {
            tracing::warn!(lab = %self.id, "tearing down lab during a panic");
        }
        if let Err(e) = self.teardown() {
            tracing::error!(lab = %self.id, error = %e, "lab teardown incomplete");
        }
    }
}

/// True if `pid` runs. A zombie counts as dead: a killed test binary can stay a zombie for
/// a while when its new parent is slow to reap it.
fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// SIGKILLs whatever still runs in `ns` (processes not started through the harness, e.g.
/// backgrounded by an `exec`ed shell) and waits briefly for them to go.
fn kill_namespace_pids(ns: &str) {
    let Ok(pids) = netns::pids_of(ns) else {
        return;
    };
    for pid in &pids {
        tracing::debug!(ns, pid, "killing leftover process in namespace");
        let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && netns::pids_of(ns).map(|p| !p.is_empty()).unwrap_or(false) {
        thread::sleep(Duration::from_millis(10));
    }
}

/// What [`cleanup_stale`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StaleReport {
    /// Namespaces deleted (their processes killed first).
    pub namespaces: Vec<String>,
    /// Root-namespace links deleted.
    pub links: Vec<String>,
    /// Work directories removed.
    pub dirs: Vec<PathBuf>,
}

/// Removes leftovers of crashed runs: namespaces, root-namespace links and work directories
/// named with `prefix` whose owning process (the pid in the name) is dead. Live owners'
/// objects are never touched. (A recycled pid hides a leftover until that process exits.)
pub fn cleanup_stale(prefix: &str) -> Result<StaleReport> {
    names::validate_prefix(prefix)?;
    let mut report = StaleReport::default();
    let stale = |name: &str| names::owner_pid(prefix, name).is_some_and(|pid| !pid_alive(pid));

    let list = run_ip(&["netns", "list"])?;
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        if stale(name) {
            kill_namespace_pids(name);
            match run_ip(&["netns", "del", name]) {
                Err(e) if !is_gone(&e) => return Err(e),
                _ => report.namespaces.push(name.to_string()),
            }
        }
    }
    for link in kernel::parse_links(&run_ip(&["-j", "-d", "link", "show"])?)? {
        // A veth shows as `name@peer` only in text output; JSON has the bare name.
        if stale(&link.name) {
            match run_ip(&["link", "del", "dev", &link.name]) {
                Err(e) if !is_gone(&e) => return Err(e),
                _ => report.links.push(link.name),
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(work_root()) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if stale(&name) {
                let path = entry.path();
                std::fs::remove_dir_all(&path)
                    .map_err(|e| Error::io(format!("remove {}", path.display()), e))?;
                report.dirs.push(path);
            }
        }
    }
    if report != StaleReport::default() {
        tracing::info!(prefix, ?report, "removed stale lab leftovers");
    }
    Ok(report)
}
