//! Controller benchmark against the real kube-apiserver v1.28.7 (issue 11), with a reference
//! client in the same run.
//!
//! For each N (default 1,000 and 5,000) one fresh kube-apiserver + etcd is started
//! (`ferrolb-kubeapi`, etcd in memory, no audit log), ferrolb's RBAC and FlowSchema
//! manifests are applied, and two sets of N waiting LoadBalancer Services
//! (`allocateLoadBalancerNodePorts: false`) are created. A run ends when a watch from this
//! process has seen every Service of its set with an IP.
//!
//! - **reference**: a bare kube client with the controller's ServiceAccount token (so the
//!   same priority level) lists its N Services (class `bench-reference`, which the
//!   controller ignores) and writes the same status patch the controller writes (ingress IP
//!   and an annotation of the same size, one merge patch of `/status`), at each concurrency
//!   of `--concurrency`; the concurrency with the best median counts.
//! - **controller**: the real `ferrolb-controller` binary, started with the same token,
//!   assigns the other N (reset to waiting before each run). Its RSS is sampled from
//!   `/proc`; every Lease round it makes (a renewal is one PUT; `--lease-duration 3`, so one
//!   every ~0.43 s) is taken from its debug log.
//!
//! Each of `--repeat` rounds runs the reference at every concurrency and then the controller
//! at every `--controller-concurrency`, so all see the same machine load; medians are
//! compared.
//!
//! ```text
//! cargo build --release -p ferrolb-controller --bin ferrolb-controller --example controller_bench
//! target/release/examples/controller_bench [--services 1000,5000] [--concurrency 8,16,32,64]
//!     [--controller-concurrency 16] [--repeat 3]
//! ```

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferrolb_kubeapi::{KubeApiServer, Options};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};

/// The reference writes an annotation of the same size as the controller's pool annotation
/// under another key: with the controller's own key on its (foreign-class) Services the
/// controller would consider them its own and clear them.
const REFERENCE_ANN: &str = "reference.example/ip-allocated-from-pool";
const POOL_ANN: &str = "metallb.universe.tf/ip-allocated-from-pool";
/// The controller's pool (its IPs start with this).
const POOL_PREFIX: &str = "10.128.";

fn arg_list(args: &[String], flag: &str, default: &[usize]) -> Vec<usize> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

fn controller_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .context("locating target dir")?;
    let bin = dir.join("ferrolb-controller");
    if !bin.exists() {
        bail!(
            "{} not found: cargo build --release -p ferrolb-controller --bin ferrolb-controller",
            bin.display()
        );
    }
    Ok(bin)
}

fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The current first ingress IP of every Service of a namespace, as a watch sees them.
#[derive(Clone, Default)]
struct Observer(Arc<Mutex<HashMap<String, String>>>);

impl Observer {
    fn start(client: kube::Client, ns: &str) -> Observer {
        let obs = Observer::default();
        let map = obs.0.clone();
        let api: Api<Service> = Api::namespaced(client, ns);
        tokio::spawn(async move {
            let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
            while let Ok(Some(ev)) = stream.try_next().await {
                let (svc, deleted) = match ev {
                    watcher::Event::Apply(s) | watcher::Event::InitApply(s) => (s, false),
                    watcher::Event::Delete(s) => (s, true),
                    _ => continue,
                };
                let Some(name) = svc.metadata.name.clone() else {
                    continue;
                };
                let ip = svc
                    .status
                    .and_then(|s| s.load_balancer)
                    .and_then(|lb| lb.ingress)
                    .and_then(|i| i.into_iter().next())
                    .and_then(|i| i.ip);
                let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
                match ip.filter(|_| !deleted) {
                    Some(ip) => m.insert(name, ip),
                    None => m.remove(&name),
                };
            }
        });
        obs
    }

    fn count(&self, prefix: &str) -> usize {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|ip| ip.starts_with(prefix))
            .count()
    }

    fn distinct(&self) -> usize {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.values().collect::<std::collections::HashSet<_>>().len()
    }

    async fn wait(&self, prefix: &str, want: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while self.count(prefix) != want {
            if Instant::now() > deadline {
                bail!("{} of {want} with {prefix}* seen", self.count(prefix));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }
}

async fn create_services(
    admin: &kube::Client,
    ns: &str,
    n: usize,
    class: Option<&str>,
) -> Result<()> {
    let nss: Api<Namespace> = Api::all(admin.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
    )
    .await?;
    let svcs: Api<Service> = Api::namespaced(admin.clone(), ns);
    futures::stream::iter(0..n)
        .map(|i| {
            let svcs = svcs.clone();
            async move {
                let s: Service = serde_json::from_value(json!({
                    "metadata": {"name": format!("svc-{i:05}")},
                    "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
                             "loadBalancerClass": class,
                             "selector": {"app": format!("a{i}")},
                             "ports": [{"port": 80, "protocol": "TCP"}]}
                }))?;
                svcs.create(&PostParams::default(), &s).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// One status patch per Service of `ns` (listed first) at `concurrency`.
async fn patch_all(
    client: &kube::Client,
    ns: &str,
    concurrency: usize,
    patch: impl Fn(usize) -> Value,
) -> Result<()> {
    let svcs: Api<Service> = Api::namespaced(client.clone(), ns);
    let names: Vec<String> = svcs
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    let pp = PatchParams {
        field_manager: Some("bench-reference".into()),
        ..PatchParams::default()
    };
    let patch = &patch;
    futures::stream::iter(names.into_iter().enumerate())
        .map(|(i, name)| {
            let (svcs, pp) = (svcs.clone(), pp.clone());
            async move {
                svcs.patch_status(&name, &pp, &Patch::Merge(patch(i)))
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// The reference: list + N status patches with IPs `10.{round}.x.y`, until all are seen.
async fn reference(
    sa: &kube::Client,
    obs: &Observer,
    n: usize,
    concurrency: usize,
    round: usize,
) -> Result<Duration> {
    let prefix = format!("10.{round}.");
    let start = Instant::now();
    patch_all(sa, "bench-ref", concurrency, |i| {
        json!({"metadata": {"annotations": {REFERENCE_ANN: "bench"}},
               "status": {"loadBalancer": {"ingress": [{"ip": format!("{prefix}{}.{}", i / 256, i % 256)}]}}})
    })
    .await?;
    obs.wait(&prefix, n, Duration::from_secs(300)).await?;
    Ok(start.elapsed())
}

/// Back to waiting: status and pool annotation cleared, as seen by the observer.
async fn reset(admin: &kube::Client, obs: &Observer) -> Result<()> {
    patch_all(admin, "bench", 16, |_| {
        json!({"metadata": {"annotations": {POOL_ANN: null}},
               "status": {"loadBalancer": {"ingress": null}}})
    })
    .await?;
    obs.wait(POOL_PREFIX, 0, Duration::from_secs(120)).await
}

/// Lease round latencies (ms) from the controller's debug lines `lease round elapsed_us=..`.
fn lease_rounds(log: &Path) -> Vec<f64> {
    let Ok(f) = std::fs::File::open(log) else {
        return Vec::new();
    };
    std::io::BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter(|l| l.contains("lease round"))
        .filter_map(|l| {
            let v = l.split("elapsed_us=").nth(1)?;
            v.split_whitespace().next()?.parse::<f64>().ok()
        })
        .map(|us| us / 1000.0)
        .collect()
}

struct Run {
    time: Duration,
    rss_peak_mib: f64,
    lease_ms: Vec<f64>,
}

/// One run of the real binary until the observer has seen all `n` Services with an IP.
async fn run_controller(
    bin: &Path,
    kubeconfig: &Path,
    dir: &Path,
    n: usize,
    concurrency: usize,
    obs: &Observer,
) -> Result<Run> {
    let log = dir.join("controller.log");
    let start = Instant::now();
    let mut child = Command::new(bin)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--listen", "127.0.0.1:0", "--identity", "bench"])
        .args(["--lease-duration", "3"])
        .args(["--write-concurrency", &concurrency.to_string()])
        .env(
            "RUST_LOG",
            std::env::var("BENCH_RUST_LOG")
                .unwrap_or_else(|_| "warn,ferrolb_controller::leader=debug".into()),
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("spawning {}", bin.display()))?;
    let pid = child.id();
    let mut peak = 0;
    while obs.count(POOL_PREFIX) < n {
        if let Some(r) = rss_kib(pid) {
            peak = peak.max(r);
        }
        if start.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            bail!("controller: {} of {n} after 300 s", obs.count(POOL_PREFIX));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let time = start.elapsed();
    if obs.distinct() != n {
        bail!("{} distinct IPs for {n} Services", obs.distinct());
    }
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    if let Some(keep) = std::env::var_os("BENCH_KEEP_LOG") {
        let _ = std::fs::copy(
            &log,
            PathBuf::from(keep).join(format!("controller-{n}.log")),
        );
    }
    Ok(Run {
        time,
        rss_peak_mib: peak as f64 / 1024.0,
        lease_ms: lease_rounds(&log),
    })
}

struct Row {
    n: usize,
    /// Per reference concurrency, its runs.
    reference: Vec<(usize, Vec<Duration>)>,
    /// Per controller write concurrency, its runs.
    controller: Vec<(usize, Vec<Run>)>,
}

async fn one(n: usize, sweep: &[usize], ctl: &[usize], repeat: usize, bin: &Path) -> Result<Row> {
    let opts = Options {
        audit: false,
        ..Options::default()
    };
    let server = tokio::task::spawn_blocking(move || KubeApiServer::start(opts)).await??;
    let admin = server.client().await?;
    ferrolb_kubeapi::apply::apply_rbac_manifests(&admin, "controller-bench").await?;
    let sa_yaml = server
        .service_account_kubeconfig("metallb-system", "controller")
        .await?;
    let dir = std::env::temp_dir().join(format!("controller-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, &sa_yaml)?;
    let sa =
        kube::Client::try_from(ferrolb_kubeapi::kubeconfig::config_from_yaml(&sa_yaml).await?)?;
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), "metallb-system");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "config"},
            "data": {"config": "address-pools:\n- name: bench\n  protocol: bgp\n  addresses:\n  - 10.128.0.0/16\n"}
        }))?,
    )
    .await?;
    let t = Instant::now();
    create_services(&admin, "bench-ref", n, Some("bench-reference")).await?;
    create_services(&admin, "bench", n, None).await?;
    eprintln!(
        "N={n}: created 2 x {n} Services in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let obs_ref = Observer::start(admin.clone(), "bench-ref");
    let obs_ctl = Observer::start(admin.clone(), "bench");
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Every round: the reference at each concurrency, then the controller at each of its
    // concurrencies, so all of them see the same machine load.
    let mut round = 0;
    let mut swept: Vec<(usize, Vec<Duration>)> = sweep.iter().map(|c| (*c, Vec::new())).collect();
    let mut runs: Vec<(usize, Vec<Run>)> = ctl.iter().map(|c| (*c, Vec::new())).collect();
    for r in 0..repeat {
        for (c, list) in &mut swept {
            round += 1;
            let d = reference(&sa, &obs_ref, n, *c, round).await?;
            eprintln!(
                "N={n} run {r}: reference, concurrency {c:3}: {:.2} s",
                d.as_secs_f64()
            );
            list.push(d);
        }
        for (c, list) in &mut runs {
            reset(&admin, &obs_ctl).await?;
            let run = run_controller(bin, &kubeconfig, &dir, n, *c, &obs_ctl).await?;
            eprintln!(
                "N={n} run {r}: controller, --write-concurrency {c:3}: {:.2} s",
                run.time.as_secs_f64()
            );
            list.push(run);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    drop(server);
    Ok(Row {
        n,
        reference: swept,
        controller: runs,
    })
}

fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s.get(s.len() / 2).copied().unwrap_or_default()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

fn secs(v: &[Duration]) -> String {
    v.iter()
        .map(|d| format!("{:.2}", d.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let ns = arg_list(&args, "--services", &[1000, 5000]);
    let sweep = arg_list(&args, "--concurrency", &[8, 16, 32, 64]);
    let ctl = arg_list(&args, "--controller-concurrency", &[16]);
    let repeat = arg_list(&args, "--repeat", &[3])
        .first()
        .copied()
        .unwrap_or(3);
    let bin = controller_binary()?;
    let mut rows = Vec::new();
    for n in ns {
        rows.push(one(n, &sweep, &ctl, repeat, &bin).await?);
    }
    println!(
        "\n| N | reference runs per concurrency (s) | reference: best median | ferrolb-controller runs (s) | controller median | ratio | controller peak RSS | Lease rounds during the runs: n, p50, p99, max |"
    );
    println!("|---:|---|---|---|---|---:|---:|---|");
    for r in &rows {
        let (best_c, best) = r
            .reference
            .iter()
            .map(|(c, v)| (*c, median(v)))
            .min_by_key(|(_, m)| *m)
            .unwrap_or((0, Duration::ZERO));
        let sweep: Vec<String> = r
            .reference
            .iter()
            .map(|(c, v)| format!("{c}: {}", secs(v)))
            .collect();
        for (c, list) in &r.controller {
            let times: Vec<Duration> = list.iter().map(|x| x.time).collect();
            let med = median(&times);
            let mut lease: Vec<f64> = list.iter().flat_map(|x| x.lease_ms.clone()).collect();
            lease.sort_by(f64::total_cmp);
            let rss = list.iter().map(|x| x.rss_peak_mib).fold(0.0, f64::max);
            println!(
                "| {} | {} | {:.2} s ({best_c}) | ({c}) {} | {:.2} s | {:.2}x | {rss:.1} MiB | {}, {:.1} ms, {:.1} ms, {:.1} ms |",
                r.n,
                sweep.join("; "),
                best.as_secs_f64(),
                secs(&times),
                med.as_secs_f64(),
                med.as_secs_f64() / best.as_secs_f64(),
                lease.len(),
                pct(&lease, 0.5),
                pct(&lease, 0.99),
                lease.last().copied().unwrap_or(f64::NAN),
            );
        }
    }
    Ok(())
}
