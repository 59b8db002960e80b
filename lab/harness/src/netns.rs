//! A handle to one network namespace (or to the root namespace) of a [`crate::Lab`].

use std::fs::File;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ipnet::IpNet;

use crate::cmd::{self, CmdOutput, DEFAULT_TIMEOUT};
use crate::error::{Error, Result};
use crate::kernel::{self, Address, Family, KernelRoute, Link};
use crate::process::{Proc, ProcRegistry};

/// A network namespace made by a [`crate::Lab`] (or the root namespace, from
/// [`crate::Lab::root`]). Cheap to clone; the lab deletes the namespace at teardown, after
/// which operations on a leftover handle fail with a command error.
#[derive(Clone, Debug)]
pub struct Netns {
    inner: Arc<NsInner>,
}

#[derive(Debug)]
struct NsInner {
    /// `None` is the root namespace.
    name: Option<String>,
    dir: PathBuf,
    procs: Arc<ProcRegistry>,
}

static SPAWNED: AtomicU64 = AtomicU64::new(0);

impl Netns {
    pub(crate) fn new(name: Option<String>, dir: PathBuf, procs: Arc<ProcRegistry>) -> Netns {
        Netns {
            inner: Arc::new(NsInner { name, dir, procs }),
        }
    }

    /// The namespace name as in `ip netns list`; `None` for the root namespace.
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    /// The name for messages: the namespace name or `root`.
    pub fn label(&self) -> &str {
        self.name().unwrap_or("root")
    }

    /// The lab's work directory (configs, logs, control sockets live here).
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// A [`Command`] that runs `prog` inside this namespace (`ip netns exec NAME prog`).
    pub fn command(&self, prog: &str) -> Command {
        match self.name() {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, prog]);
                c
            }
            None => Command::new(prog),
        }
    }

    /// Runs `prog args` in the namespace and returns its output whatever the exit status;
    /// fails only if it cannot start or runs longer than 30 s.
    pub fn exec<S: AsRef<str>>(&self, prog: &str, args: &[S]) -> Result<CmdOutput> {
        self.exec_timeout(prog, args, DEFAULT_TIMEOUT)
    }

    /// [`Netns::exec`] with an explicit deadline.
    pub fn exec_timeout<S: AsRef<str>>(
        &self,
        prog: &str,
        args: &[S],
        timeout: Duration,
    ) -> Result<CmdOutput> {
        cmd::check_binary(prog)?;
        let mut c = self.command(prog);
        c.args(args.iter().map(AsRef::as_ref));
        cmd::run(c, timeout)
    }

    /// Runs `prog args` and requires success; returns stdout.
    pub fn run<S: AsRef<str>>(&self, prog: &str, args: &[S]) -> Result<String> {
        self.exec(prog, args)?.into_stdout()
    }

    /// Starts a long-running `prog args` in the namespace with stdout and stderr going to a
    /// log file in the lab directory. The lab stops it at teardown.
    pub fn spawn<S: AsRef<str>>(&self, prog: &str, args: &[S]) -> Result<Proc> {
        let base = Path::new(prog)
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "proc".to_string());
        let n = SPAWNED.fetch_add(1, Ordering::Relaxed);
        let log = self.dir().join(format!("{base}-{n}.log"));
        self.spawn_logged(prog, args, &log)
    }

    /// [`Netns::spawn`] with a chosen log file (truncated first).
    pub fn spawn_logged<S: AsRef<str>>(&self, prog: &str, args: &[S], log: &Path) -> Result<Proc> {
        cmd::check_binary(prog)?;
        let mut c = self.command(prog);
        c.args(args.iter().map(AsRef::as_ref));
        self.spawn_command(c, log)
    }

    /// Starts a prepared command (from [`Netns::command`], with your own environment or
    /// working directory), logging to `log` (truncated first). The lab stops it at teardown.
    pub fn spawn_command(&self, mut c: Command, log: &Path) -> Result<Proc> {
        let out =
            File::create(log).map_err(|e| Error::io(format!("create {}", log.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| Error::io(format!("dup {}", log.display()), e))?;
        c.stdin(Stdio::null()).stdout(out).stderr(err);
        let command = cmd::describe(&c);
        let child = c.spawn().map_err(|source| Error::Spawn {
            command: command.clone(),
            source,
        })?;
        tracing::debug!(ns = self.label(), pid = child.id(), %command, log = %log.display(), "spawned");
        let p = Proc::new(child, command, log.to_path_buf());
        self.inner.procs.add(p.clone());
        Ok(p)
    }

    /// Runs `ip [-n NAME] args...` and requires success; returns stdout.
    pub fn ip<S: AsRef<str>>(&self, args: &[S]) -> Result<String> {
        let mut c = Command::new("ip");
        if let Some(ns) = self.name() {
            c.args(["-n", ns]);
        }
        c.args(args.iter().map(AsRef::as_ref));
        cmd::run(c, DEFAULT_TIMEOUT)?.into_stdout()
    }

    /// Sets a link administratively up or down.
    pub fn set_link(&self, ifname: &str, up: bool) -> Result<()> {
        self.ip(&["link", "set", "dev", ifname, if up { "up" } else { "down" }])
            .map(drop)
    }

    /// Adds an address (v4 or v6; v6 without duplicate address detection, so it is usable
    /// at once).
    pub fn add_addr(&self, ifname: &str, addr: IpNet) -> Result<()> {
        let a = addr.to_string();
        match addr {
            IpNet::V4(_) => self.ip(&["addr", "add", &a, "dev", ifname]),
            IpNet::V6(_) => self.ip(&["-6", "addr", "add", &a, "dev", ifname, "nodad"]),
        }
        .map(drop)
    }

    /// Adds a route to `dst` via one gateway, or an ECMP route when given several.
    pub fn add_route(&self, dst: IpNet, via: &[IpAddr]) -> Result<()> {
        let fam = Family::of(dst.addr()).ip_flag();
        let mut args: Vec<String> = vec![fam.into(), "route".into(), "add".into(), dst.to_string()];
        match via {
            [] => {
                return Err(Error::InvalidName {
                    name: dst.to_string(),
                    reason: "a route needs at least one gateway".into(),
                });
            }
            [one] => args.extend(["via".to_string(), one.to_string()]),
            many => {
                for gw in many {
                    args.extend(["nexthop".to_string(), "via".to_string(), gw.to_string()]);
                }
            }
        }
        self.ip(&args).map(drop)
    }

    /// Turns on IPv4 and IPv6 forwarding (for router namespaces).
    pub fn enable_forwarding(&self) -> Result<()> {
        self.run(
            "sysctl",
            &[
                "-q",
                "-w",
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1",
            ],
        )
        .map(drop)
    }

    /// Routes of the main table.
    pub fn routes(&self, family: Family) -> Result<Vec<KernelRoute>> {
        let json = self.ip(&["-j", family.ip_flag(), "route", "show", "table", "main"])?;
        kernel::parse_routes(family, &json)
    }

    /// Routes of every table (`local`, `main`, others), with their table name.
    pub fn routes_all(&self, family: Family) -> Result<Vec<KernelRoute>> {
        let json = self.ip(&["-j", family.ip_flag(), "route", "show", "table", "all"])?;
        kernel::parse_routes(family, &json)
    }

    /// All addresses on all interfaces.
    pub fn addresses(&self) -> Result<Vec<Address>> {
        kernel::parse_addresses(&self.ip(&["-j", "addr", "show"])?)
    }

    /// All interfaces, with their kind (`veth`, `bridge`, ...).
    pub fn links(&self) -> Result<Vec<Link>> {
        kernel::parse_links(&self.ip(&["-j", "-d", "link", "show"])?)
    }

    /// Pids of processes living in this namespace (`ip netns pids`); empty for root.
    pub fn pids(&self) -> Result<Vec<u32>> {
        let Some(ns) = self.name() else {
            return Ok(Vec::new());
        };
        pids_of(ns)
    }
}

pub(crate) fn pids_of(ns: &str) -> Result<Vec<u32>> {
    let mut c = Command::new("ip");
    c.args(["netns", "pids", ns]);
    let out = cmd::run(c, DEFAULT_TIMEOUT)?.into_stdout()?;
    Ok(out
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}
