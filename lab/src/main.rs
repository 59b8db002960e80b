//! `ferrolb-lab`: the lab command (a lab and test fixture, not a product component).
//!
//! - `up` / `demo` / `down` / `status`: the seed topology in network namespaces;
//! - `apiserver --listen ADDR`: the in-memory lab Kubernetes API server;
//! - `fib-sync`: runs inside the router namespace and programs gobgpd's RIB into the kernel;
//! - `http-echo`, `kube-proxy`: the demo pods' server and the per-node kube-proxy stand-in.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use ferrolb_lab::netlab::{self, ApiServerKind, Bins, LabSpec, NetLab};
use ferrolb_lab::router::RouterKind;

#[derive(Parser)]
#[command(
    name = "ferrolb-lab",
    version,
    about = "ferrolb's netns lab (the seed topology on one machine, on a real kube-apiserver or the lab API server)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Clone)]
struct LabArgs {
    /// Number of nodes (172.17.0.21, .22, ...; pod CIDR 10.244.N.0/24).
    #[arg(long, default_value_t = 3)]
    nodes: u8,
    /// Demo pods per node.
    #[arg(long, default_value_t = 2)]
    pods: u8,
    /// The router's routing daemon.
    #[arg(long, value_enum, default_value_t = RouterKind::Gobgp)]
    router: RouterKind,
    /// externalTrafficPolicy of the demo Service.
    #[arg(long, value_parser = ["Local", "Cluster"], default_value = "Local")]
    policy: String,
    /// Dual stack: IPv6 on both segments, in the nodes and pods, an IPv6 BGP session per
    /// node, an IPv6 pool and a RequireDualStack Service (see docs/lab.md).
    #[arg(long)]
    dual_stack: bool,
    /// MetalLB configuration: a ConfigMap manifest (its `config` key is used) or the bare
    /// YAML. Default: the seed lab's (manifests/config.yaml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory with ferrolb-lab, ferrolb-controller and ferrolb-speaker (default: the
    /// directory of this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// The Kubernetes API server: `real` (kube-apiserver v1.28.7 + etcd, from
    /// ../shared/k8s/ or FERROLB_KUBE_APISERVER; the default when available) or `lab` (the
    /// in-memory lab API server).
    #[arg(long, value_enum)]
    apiserver: Option<ApiServerArg>,
}

/// `--apiserver` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ApiServerArg {
    /// kube-apiserver v1.28.7 with etcd.
    Real,
    /// The in-memory lab API server.
    Lab,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the lab and leave it running (removes an earlier lab first).
    Up(LabArgs),
    /// `up`, then show the Service's IP, the router's paths and traffic from the client.
    Demo(LabArgs),
    /// Remove the lab: processes, namespaces, state (always safe to run).
    Down,
    /// Show what runs.
    Status,
    /// Serve the lab Kubernetes API server (in memory; a test fixture, not a product).
    Apiserver {
        /// Address to listen on.
        #[arg(
            long,
            default_value = "127.0.0.1:6443",
            env = "FERROLB_LAB_APISERVER_LISTEN"
        )]
        listen: SocketAddr,
        /// Write a kubeconfig pointing at the server to this file.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
    /// Keep the kernel's `proto bgp` routes equal to gobgpd's RIB (run inside the router netns).
    FibSync {
        /// gobgpd's API: `unix:///path.sock` (as given to gobgpd `--api-hosts`), HOST:PORT
        /// or PORT. Overrides --api-port.
        #[arg(long)]
        api: Option<String>,
        /// gobgpd's gRPC API port on 127.0.0.1.
        #[arg(long, default_value_t = 50051)]
        api_port: u16,
        /// Full resync period in milliseconds (monitor events trigger passes in between).
        #[arg(long, default_value_t = 500)]
        period_ms: u64,
    },
    /// A demo pod: answers every HTTP request with `node=NODE pod=POD`.
    HttpEcho {
        #[arg(long)]
        node: String,
        #[arg(long)]
        pod: String,
        #[arg(long, default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
    },
    /// The kube-proxy stand-in of one node: LoadBalancer IP:port -> ready endpoints.
    KubeProxy {
        #[arg(long)]
        kubeconfig: PathBuf,
        #[arg(long)]
        node_name: String,
    },
}

fn spec(args: &LabArgs) -> Result<LabSpec> {
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()
            .context("locating ferrolb-lab")?
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default(),
    };
    let mut spec = LabSpec::seed(
        netlab::CLI_PREFIX,
        netlab::CLI_STATE_DIR,
        Bins::in_dir(&bin_dir),
    );
    spec.nodes = args.nodes;
    spec.pods = args.pods;
    spec.router = args.router;
    spec.policy = args.policy.clone();
    spec.detach = true;
    spec.set_dual_stack(args.dual_stack);
    spec.apiserver = match args.apiserver {
        Some(ApiServerArg::Real) => ApiServerKind::Real,
        Some(ApiServerArg::Lab) => ApiServerKind::Lab,
        None => netlab::default_apiserver(),
    };
    if let Some(path) = &args.config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        spec.config = ferrolb_lab::k8s::config_text(&text)?;
    }
    Ok(spec)
}

fn up(args: &LabArgs, started: Instant) -> Result<NetLab> {
    let spec = spec(args)?;
    let mut progress = |msg: &str| println!("[{:5.1}s] {msg}", started.elapsed().as_secs_f64());
    NetLab::up(spec, &mut progress)
}

fn after_up_hint() {
    println!("\nThe lab keeps running. Look around:");
    println!("  ip netns exec ferrolb-client curl -s http://172.17.254.1/");
    println!(
        "  gobgp --target unix://{}/gobgp.sock global rib",
        netlab::CLI_STATE_DIR
    );
    println!(
        "  ip -n ferrolb-rt route; logs in {}/logs/",
        netlab::CLI_STATE_DIR
    );
    println!("Remove it with: ferrolb-lab down  (or scripts/lab.sh down)");
}

fn status() -> Result<()> {
    let names = ferrolb_lab::procs::namespaces_with_prefix(netlab::CLI_PREFIX)?;
    if names.is_empty() {
        println!("no lab is running (start one with `ferrolb-lab up` or `demo`)");
        return Ok(());
    }
    println!("namespaces: {}", names.join(" "));
    let state = ferrolb_lab::procs::StateDir::new(netlab::CLI_STATE_DIR);
    if let Ok(entries) = std::fs::read_dir(state.path("pids")) {
        let mut rows: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .map(|s| s.trim_end_matches(".pid").to_string())
            })
            .collect();
        rows.sort();
        for name in rows {
            let pid = state.pid(&name);
            let alive = pid.is_some_and(ferrolb_lab::procs::pid_alive);
            println!(
                "  {name:<14} pid {:<8} {}",
                pid.map(|p| p.to_string()).unwrap_or_default(),
                if alive { "running" } else { "NOT RUNNING" }
            );
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            // kube's HTTP trace layer logs every failed request while the API server starts;
            // the lab reports what matters itself.
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,kube_client::client::builder=off")
            }),
        )
        .with_writer(std::io::stderr)
        // Lab processes log to files: colour codes only on a terminal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Cmd::Up(args) => {
            let started = Instant::now();
            up(&args, started)?;
            println!("[{:5.1}s] lab is up", started.elapsed().as_secs_f64());
            after_up_hint();
            Ok(())
        }
        Cmd::Demo(args) => {
            let started = Instant::now();
            let lab = up(&args, started)?;
            let mut out = std::io::stdout();
            ferrolb_lab::demo::show(&lab, started, &mut out)?;
            after_up_hint();
            Ok(())
        }
        Cmd::Down => {
            let lab = NetLab::attach(LabSpec::seed(
                netlab::CLI_PREFIX,
                netlab::CLI_STATE_DIR,
                Bins::in_dir(std::path::Path::new(".")),
            ));
            if !nix::unistd::geteuid().is_root() {
                anyhow::bail!("removing the lab needs root: sudo ferrolb-lab down");
            }
            let removed = lab.down()?;
            if removed.is_empty() {
                println!(
                    "nothing to remove: no ferrolb-* namespaces (state in {} cleared)",
                    netlab::CLI_STATE_DIR
                );
            } else {
                println!(
                    "removed {} namespaces and their processes: {}",
                    removed.len(),
                    removed.join(" ")
                );
            }
            Ok(())
        }
        Cmd::Status => status(),
        Cmd::Apiserver { listen, kubeconfig } => {
            let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| {
                        format!(
                            "cannot listen on {listen} (port in use? pick another with --listen)"
                        )
                    })?;
                let addr = listener.local_addr()?;
                if let Some(path) = kubeconfig {
                    std::fs::write(
                        &path,
                        ferrolb_apiserver::kubeconfig_for(&format!("http://{addr}")),
                    )
                    .with_context(|| format!("writing {}", path.display()))?;
                }
                tracing::info!(%addr, "lab API server listening");
                ferrolb_apiserver::serve(listener).await.context("serving")
            })
        }
        Cmd::FibSync {
            api,
            api_port,
            period_ms,
        } => {
            let api = match api {
                Some(a) => ferrolb_lab::fib::GobgpApi::parse(&a)?,
                None => ferrolb_lab::fib::GobgpApi::port(api_port),
            };
            ferrolb_lab::fib::run_loop(&api, Duration::from_millis(period_ms))
        }
        Cmd::HttpEcho { node, pod, listen } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(ferrolb_lab::echo::serve(listen, node, pod))
        }
        Cmd::KubeProxy {
            kubeconfig,
            node_name,
        } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let client = ferrolb_lab::k8s::client(&kubeconfig).await?;
                ferrolb_lab::kubeproxy::run(client, node_name).await
            })
        }
    }
}
