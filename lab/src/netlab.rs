//! The whole lab: topology, router, lab API server, controller, one speaker and one
//! kube-proxy stand-in per node, the demo pods and their Kubernetes objects.
//!
//! The same code serves the `ferrolb-lab up/demo/down` command (fixed prefix `ferrolb`,
//! processes detached so they outlive the command, state in `/run/ferrolb-lab`) and the
//! end-to-end tests (a unique prefix per run, processes owned by the test, everything torn
//! down when the [`NetLab`] is dropped, also during a panic).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferrolb_netns::{Family, KernelRoute, RibRoute, Signal};
use ipnet::IpNet;
use kube::Client;

mod apiserver;

pub use apiserver::{Kind as ApiServerKind, default_kind as default_apiserver};

use crate::procs::{self, StateDir};
use crate::router::{Router, RouterBfd, RouterKind, RouterSpec};
use crate::topology::{self, Names, addr};
use crate::{k8s, nsexec};

/// The prefix of the `ferrolb-lab` command's lab (namespaces `ferrolb-rt`, ...).
pub const CLI_PREFIX: &str = "ferrolb";
/// The `ferrolb-lab` command's state directory (pid files, logs, configs, kubeconfig).
pub const CLI_STATE_DIR: &str = "/run/ferrolb-lab";

/// The binaries the lab runs.
#[derive(Debug, Clone)]
pub struct Bins {
    /// `ferrolb-lab` (API server, fib-sync, kube-proxy stand-in, http-echo).
    pub lab: PathBuf,
    /// `ferrolb-controller`.
    pub controller: PathBuf,
    /// `ferrolb-speaker`.
    pub speaker: PathBuf,
}

impl Bins {
    /// The three binaries in directory `dir` (e.g. `target/release`).
    pub fn in_dir(dir: &Path) -> Bins {
        Bins {
            lab: dir.join("ferrolb-lab"),
            controller: dir.join("ferrolb-controller"),
            speaker: dir.join("ferrolb-speaker"),
        }
    }

    /// Fails with the build command if one is missing.
    pub fn check(&self) -> Result<()> {
        for b in [&self.lab, &self.controller, &self.speaker] {
            if !b.is_file() {
                bail!(
                    "{} is missing: build it with `cargo build --release -p ferrolb-lab -p ferrolb-controller -p ferrolb-speaker` (or use scripts/lab.sh)",
                    b.display()
                );
            }
        }
        Ok(())
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct LabSpec {
    /// Name prefix of namespaces (`{prefix}-rt`, `{prefix}-node1`, ...).
    pub prefix: String,
    /// Where pid files, logs, configs and the kubeconfig go.
    pub state_dir: PathBuf,
    /// Number of nodes (>= 1).
    pub nodes: u8,
    /// Demo pods per node (>= 1).
    pub pods: u8,
    /// The routing daemon on `rt`.
    pub router: RouterKind,
    /// BFD on the router towards every node (BIRD or FRR).
    pub router_bfd: Option<RouterBfd>,
    /// The demo Service's `externalTrafficPolicy` (`Local` or `Cluster`).
    pub policy: String,
    /// The MetalLB configuration (the ConfigMap's `config` key).
    pub config: String,
    /// The binaries.
    pub bins: Bins,
    /// Leave the processes running when this handle goes away (the CLI's `up`).
    pub detach: bool,
    /// IPv6 as well: addresses on both segments and in the pods, a second (IPv6) BGP
    /// session per node, IPv6 pod CIDRs, a `RequireDualStack` Service. Set it with
    /// [`LabSpec::set_dual_stack`], which also switches to the dual-stack configuration.
    pub dual_stack: bool,
    /// The real kube-apiserver (default where available) or the lab API server.
    pub apiserver: ApiServerKind,
    /// More flags for every speaker (e.g. `--on-sigterm drain`).
    pub speaker_args: Vec<String>,
}

/// The seed ConfigMap's configuration (`manifests/config.yaml`).
fn seed_config() -> String {
    k8s::config_text(include_str!("../../manifests/config.yaml")).unwrap_or_default()
}

impl LabSpec {
    /// The seed lab: 3 nodes, 2 pods each, gobgpd, `Local` policy, the seed ConfigMap.
    pub fn seed(prefix: &str, state_dir: impl Into<PathBuf>, bins: Bins) -> LabSpec {
        LabSpec {
            prefix: prefix.to_string(),
            state_dir: state_dir.into(),
            nodes: 3,
            pods: 2,
            router: RouterKind::Gobgp,
            router_bfd: None,
            policy: "Local".into(),
            config: seed_config(),
            bins,
            detach: false,
            dual_stack: false,
            apiserver: default_apiserver(),
            speaker_args: Vec::new(),
        }
    }

    /// Makes the lab dual-stack (or not) and uses the matching seed configuration
    /// ([`topology::dual_stack_config`] or the seed ConfigMap); set `config` afterwards to
    /// use another one.
    pub fn set_dual_stack(&mut self, on: bool) {
        self.dual_stack = on;
        self.config = if on {
            topology::dual_stack_config(None)
        } else {
            seed_config()
        };
    }

    /// BGP sessions the router has when every node is up: one per node and family.
    pub fn sessions(&self) -> usize {
        usize::from(self.nodes) * if self.dual_stack { 2 } else { 1 }
    }
}

/// Checks what the lab needs before touching anything: root, iproute2, the router's
/// daemon. Each failure is one sentence with the fix.
pub fn preflight(spec: &LabSpec) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "the netns lab needs root (network namespaces): run it with sudo, e.g. `sudo scripts/lab.sh demo`"
        );
    }
    if !Path::new("/usr/bin/ip").exists() && !Path::new("/sbin/ip").exists() {
        bail!("`ip` is missing: apt-get install -y iproute2");
    }
    for (bin, pkg) in spec.router.requirements() {
        if !Path::new(bin).exists() {
            bail!(
                "{bin} is missing (router {:?}): apt-get install -y {pkg}",
                spec.router
            );
        }
    }
    spec.bins.check()
}

/// A running lab.
pub struct NetLab {
    spec: LabSpec,
    names: Names,
    state: StateDir,
    router: Router,
    children: Mutex<Vec<Child>>,
}

impl std::fmt::Debug for NetLab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetLab")
            .field("prefix", &self.spec.prefix)
            .finish()
    }
}

/// Prints progress for the CLI; silent in tests.
pub type Progress<'a> = &'a mut dyn FnMut(&str);

impl NetLab {
    /// A handle on an existing lab (for `down`, `status`): nothing is started.
    pub fn attach(spec: LabSpec) -> NetLab {
        let names = Names::new(spec.prefix.clone());
        let state = StateDir::new(spec.state_dir.clone());
        let mut router = Router::new(spec.router, &names, &state);
        router.ipv6 = spec.dual_stack;
        NetLab {
            spec,
            names,
            state,
            router,
            children: Mutex::new(Vec::new()),
        }
    }

    /// Builds and starts the lab. Leftovers of an earlier run with the same prefix are
    /// removed first (starting twice, or after a crash, works).
    pub fn up(spec: LabSpec, progress: Progress<'_>) -> Result<NetLab> {
        preflight(&spec)?;
        let lab = NetLab::attach(spec);
        let removed = procs::teardown_prefix(&lab.spec.prefix, Duration::from_secs(2))?;
        if !removed.is_empty() {
            progress(&format!(
                "removed {} namespaces left over from an earlier run",
                removed.len()
            ));
        }
        lab.state.remove()?;
        lab.state.create()?;
        // From here on a failure tears down what was built (unless detached: then `down`).
        match lab.start_all(progress) {
            Ok(()) => Ok(lab),
            Err(e) => {
                // Keep the state directory: its logs explain the failure.
                let _ = procs::teardown_prefix(&lab.spec.prefix, Duration::from_secs(2));
                Err(e.context(format!(
                    "starting the lab failed (logs kept in {})",
                    lab.state.root().display()
                )))
            }
        }
    }

    fn start_all(&self, progress: Progress<'_>) -> Result<()> {
        let s = &self.spec;
        if s.dual_stack {
            topology::build_dual_stack(&self.names, s.nodes, s.pods)?;
        } else {
            topology::build(&self.names, s.nodes, s.pods)?;
        }
        progress(&format!(
            "network: router {}, client, master, {} nodes with {} pods each",
            self.names.rt(),
            s.nodes,
            s.pods
        ));
        self.start_apiserver()?;
        progress(&format!(
            "Kubernetes API: {} on {}:{}",
            apiserver::label(s.apiserver),
            addr::MASTER,
            addr::APISERVER_PORT
        ));
        self.router.start(&RouterSpec {
            kind: s.router,
            nodes: s.nodes,
            lab_bin: s.bins.lab.clone(),
            bfd: s.router_bfd,
            dual_stack: s.dual_stack,
        })?;
        progress(&format!(
            "router: {} (AS {}) on 172.17.0.1",
            s.router.label(),
            addr::ROUTER_ASN
        ));
        let (nodes, pods, config, policy) = (s.nodes, s.pods, s.config.clone(), s.policy.clone());
        let dual_stack = s.dual_stack;
        self.kube(move |c| async move {
            k8s::apply_namespaces(&c).await?;
            if dual_stack {
                crate::dualstack::apply_nodes(&c, nodes).await?;
            } else {
                k8s::apply_nodes(&c, nodes).await?;
            }
            k8s::apply_config(&c, &config).await?;
            k8s::apply_endpoints(&c, &vec![pods; nodes as usize]).await?;
            k8s::apply_service(&c, &policy).await
        })?;
        if s.dual_stack {
            let (nodes, pods) = (s.nodes, s.pods);
            self.kube(
                move |c| async move { crate::dualstack::apply_objects(&c, nodes, pods).await },
            )?;
        }
        progress(
            "objects: Nodes, ConfigMap metallb-system/config, Service default/web, EndpointSlices",
        );
        for n in 1..=s.nodes {
            for m in 1..=s.pods {
                self.start_pod(n, m)?;
            }
            self.start_kube_proxy(n)?;
        }
        self.start_controller()?;
        for n in 1..=s.nodes {
            self.start_speaker(n)?;
        }
        progress(
            "processes: ferrolb-controller, a ferrolb-speaker and a kube-proxy stand-in per node, pods",
        );
        Ok(())
    }

    /// Removes everything: processes, namespaces, state directory. Idempotent.
    pub fn down(&self) -> Result<Vec<String>> {
        let removed = procs::teardown_prefix(&self.spec.prefix, Duration::from_secs(2))?;
        for mut c in std::mem::take(&mut *self.children.lock().unwrap_or_else(|p| p.into_inner())) {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.state.remove()?;
        Ok(removed)
    }

    /// The spec.
    pub fn spec(&self) -> &LabSpec {
        &self.spec
    }

    /// The names.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// The router.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The state directory.
    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// The kubeconfig every component uses.
    pub fn kubeconfig(&self) -> PathBuf {
        self.state.path("kubeconfig")
    }

    fn spawn(&self, ns: &str, name: &str, prog: &Path, args: Vec<String>) -> Result<u32> {
        let child = procs::spawn_in(&self.state, ns, name, prog, &args, &[("RUST_LOG", "info")])?;
        let pid = child.id();
        if !self.spec.detach {
            self.children
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(child);
        }
        Ok(pid)
    }

    fn reap(&self) {
        let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
        children.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
    }

    /// Starts pod `m` of node `n` (the http-echo server).
    pub fn start_pod(&self, n: u8, m: u8) -> Result<()> {
        self.spawn(
            &self.names.pod_ns(n, m),
            &format!("pod-{n}-{m}"),
            &self.spec.bins.lab,
            vec![
                "http-echo".into(),
                "--node".into(),
                Names::node_name(n),
                "--pod".into(),
                Names::pod_name(n, m),
                "--listen".into(),
                // `[::]` takes IPv4 too (not IPV6_V6ONLY): one server for both families.
                if self.spec.dual_stack {
                    format!("[::]:{}", k8s::POD_PORT)
                } else {
                    format!("0.0.0.0:{}", k8s::POD_PORT)
                },
            ],
        )
        .map(drop)
    }

    fn start_kube_proxy(&self, n: u8) -> Result<()> {
        self.spawn(
            &self.names.node_ns(n),
            &format!("kube-proxy-{n}"),
            &self.spec.bins.lab,
            vec![
                "kube-proxy".into(),
                "--kubeconfig".into(),
                self.kubeconfig().display().to_string(),
                "--node-name".into(),
                Names::node_name(n),
            ],
        )
        .map(drop)
    }

    /// Starts (or restarts after [`NetLab::stop`]) the controller in the master namespace.
    pub fn start_controller(&self) -> Result<u32> {
        self.spawn(
            &self.names.master(),
            "controller",
            &self.spec.bins.controller,
            vec![
                "--kubeconfig".into(),
                self.component_kubeconfig("controller")
                    .display()
                    .to_string(),
                "--namespace".into(),
                k8s::SYSTEM_NS.into(),
                "--config".into(),
                "config".into(),
                "--listen".into(),
                format!("{}:7472", addr::MASTER),
                "--identity".into(),
                "ferrolb-lab-controller".into(),
                "--lease-duration".into(),
                "3".into(),
            ],
        )
    }

    /// Starts (or restarts) node `n`'s speaker (pod CIDR mode advertise-and-install, only
    /// routes inside the cluster pod network installed, as an operator should set it).
    pub fn start_speaker(&self, n: u8) -> Result<u32> {
        self.spawn(
            &self.names.node_ns(n),
            &format!("speaker-{n}"),
            &self.spec.bins.speaker,
            vec![
                "--kubeconfig".into(),
                self.component_kubeconfig("speaker").display().to_string(),
                "--node-name".into(),
                Names::node_name(n),
                "--namespace".into(),
                k8s::SYSTEM_NS.into(),
                "--config".into(),
                "config".into(),
                "--pod-cidr-mode".into(),
                "advertise-and-install".into(),
                "--pod-route-allow".into(),
                if self.spec.dual_stack {
                    format!("{},{}", addr::POD_NET, crate::topology::addr6::POD_NET)
                } else {
                    addr::POD_NET.into()
                },
                "--port".into(),
                "7472".into(),
            ]
            .into_iter()
            .chain(self.spec.speaker_args.iter().cloned())
            .collect(),
        )
    }

    /// The pid of component `name` (`controller`, `speaker-2`, `gobgpd`, ...).
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.state.pid(name).filter(|p| procs::pid_alive(*p))
    }

    /// Sends `signal` to component `name` and, for SIGTERM/SIGKILL, waits until it is gone.
    pub fn stop(&self, name: &str, signal: Signal) -> Result<()> {
        let Some(pid) = self.pid(name) else {
            bail!("{name} is not running");
        };
        procs::signal(pid, signal);
        if matches!(signal, Signal::SIGTERM | Signal::SIGKILL) {
            if !procs::wait_gone(&[pid], Duration::from_secs(10)).is_empty() {
                procs::signal(pid, Signal::SIGKILL);
            }
            self.reap();
            let _ = procs::wait_gone(&[pid], Duration::from_secs(2));
        }
        Ok(())
    }

    /// Runs `f` with a kube client inside the master namespace (where the API server is).
    pub fn kube<T, F, Fut>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Client) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>>,
    {
        let kc = self.kubeconfig();
        nsexec::block_on_in(&self.names.master(), move || async move {
            let c = k8s::client(&kc).await?;
            f(c).await
        })
    }

    /// Runs an async job inside namespace `ns`.
    pub fn in_ns<T, F, Fut>(&self, ns: &str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>>,
    {
        nsexec::block_on_in(ns, f)
    }

    /// `count` HTTP GETs from namespace `ns` to `target`, each on a new connection; returns
    /// the bodies (errors as `error: ...`).
    pub fn http_from(&self, ns: &str, target: SocketAddr, count: usize) -> Result<Vec<String>> {
        self.in_ns(ns, move || async move {
            let mut out = Vec::with_capacity(count);
            for _ in 0..count {
                match crate::echo::get(target, Duration::from_secs(3)).await {
                    Ok(b) => out.push(b.trim().to_string()),
                    Err(e) => out.push(format!("error: {e:#}")),
                }
            }
            Ok(out)
        })
    }

    /// Waits until every node's kube-proxy stand-in forwards `target` (a Service IP:port):
    /// a request from inside each node namespace is answered. The router may have a path
    /// to a node a moment before that node listens on the Service IP.
    pub fn wait_nodes_forward(&self, target: SocketAddr, timeout: Duration) -> Result<()> {
        for n in 1..=self.spec.nodes {
            let ns = self.names.node_ns(n);
            self.wait(&format!("{ns} forwarding {target}"), timeout, || {
                let answer = self.http_from(&ns, target, 1)?.concat();
                if answer.starts_with("error") {
                    bail!("{answer}");
                }
                Ok(Some(()))
            })?;
        }
        Ok(())
    }

    /// Waits until the Service has an IP; returns it.
    pub fn wait_service_ip(&self, timeout: Duration) -> Result<Ipv4Addr> {
        let ip = self.kube(move |c| async move { k8s::wait_service_ip(&c, timeout).await })?;
        ip.parse()
            .with_context(|| format!("the Service's IP {ip:?} is not IPv4"))
    }

    /// Waits until the router has BGP sessions with `count` nodes.
    pub fn wait_sessions(&self, count: usize, timeout: Duration) -> Result<Vec<IpAddr>> {
        self.wait("BGP sessions", timeout, || {
            let e = self.router.established()?;
            Ok((e.len() == count).then_some(e))
        })
    }

    /// Waits until the Service has an IPv6 address (dual-stack lab); returns it.
    pub fn wait_service_ip6(&self, timeout: Duration) -> Result<Ipv6Addr> {
        self.wait("an IPv6 EXTERNAL-IP", timeout, || {
            let ips = self.kube(|c| async move { k8s::service_ips(&c).await })?;
            Ok(ips.iter().find_map(|ip| ip.parse::<Ipv6Addr>().ok()))
        })
    }

    /// The router's RIB paths for `prefix` (next hops of learned paths).
    pub fn rib_next_hops(&self, prefix: IpNet) -> Result<Vec<IpAddr>> {
        let rib: Vec<RibRoute> = self.router.rib_family(Family::of(prefix.addr()))?;
        let mut hops: Vec<IpAddr> = rib
            .iter()
            .filter(|r| r.prefix == prefix)
            .flat_map(|r| r.paths.iter())
            .filter(|p| p.source.is_some())
            .filter_map(|p| p.next_hops.first().copied())
            .collect();
        hops.sort();
        hops.dedup();
        Ok(hops)
    }

    /// The router's kernel next hops for `prefix` (installed by the routing daemon).
    pub fn fib_next_hops(&self, prefix: IpNet) -> Result<Vec<IpAddr>> {
        let routes: Vec<KernelRoute> = self.router.fib_family(Family::of(prefix.addr()))?;
        let mut hops: Vec<IpAddr> = routes
            .iter()
            .filter(|r| r.dst == prefix)
            .flat_map(|r| r.gateways())
            .collect();
        hops.sort();
        Ok(hops)
    }

    /// Waits until the router's RIB and FIB both have exactly `count` next hops for `prefix`.
    pub fn wait_paths(
        &self,
        prefix: IpNet,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<IpAddr>> {
        self.wait(&format!("{count} paths for {prefix}"), timeout, || {
            let rib = self.rib_next_hops(prefix)?;
            let fib = self.fib_next_hops(prefix)?;
            Ok((rib.len() == count && fib == rib).then_some(fib))
        })
    }

    /// Polls `probe` every 50 ms until it yields a value; the timeout error names `what`
    /// and the last error.
    pub fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut() -> Result<Option<T>>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("condition not met");
        loop {
            match probe() {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => {}
                Err(e) => last = format!("{e:#}"),
            }
            if Instant::now() >= deadline {
                bail!("timed out after {timeout:?} waiting for {what}: {last}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        if self.spec.detach {
            return;
        }
        if let Err(e) = self.down() {
            tracing::error!(prefix = %self.spec.prefix, error = %e, "lab teardown incomplete");
        }
    }
}
