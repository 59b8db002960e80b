//! Controller benchmark against the real kube-apiserver v1.28.7 (issue 11), with a reference
//! client in the same run.
//!
//! For each N (default 1,000 and 5,000) one fresh kube-apiserver + etcd is started
//! (`ferrolb-kubeapi`, etcd in memory, no audit log), ferrolb's RBAC and FlowSchema
//! manifests are applied, and two sets of N waiting LoadBalancer Services
//! (`allocateLoadBalancerNodePorts: false`) are created. Then, observed through a watch
//! from this process (the end of a run = the watch has seen every Service with an IP):
//!
//! 1. **reference**: a bare kube client with the controller's ServiceAccount token lists
//!    its N Services (class `bench-reference`, which the controller ignores) and writes the
//!    same status patch the controller writes (ingress IP + pool annotation, one merge patch
//!    of `/status`), at each concurrency of `--concurrency`; the best one counts;
//! 2. **controller**: the real `ferrolb-controller` binary starts with the same token and
//!    assigns the other N. Its RSS is sampled from `/proc` every 50 ms; every Lease round it
//!    makes during the burst (GET + PUT, `--lease-duration 3`, so one every ~0.43 s) is taken
//!    from its debug log.
//!
//! ```text
//! cargo build --release -p ferrolb-controller --bin ferrolb-controller --example controller_bench
//! target/release/examples/controller_bench [--services 1000,5000] [--concurrency 16,32,64,128]
//! ```

use std::collections::HashSet;
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
use serde_json::json;

const POOL_ANN: &str = "metallb.universe.tf/ip-allocated-from-pool";

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

/// A watcher in `ns` counting Services whose first ingress IP starts with `prefix`.
fn observe(
    client: kube::Client,
    ns: &str,
) -> Arc<Mutex<std::collections::HashMap<String, String>>> {
    let seen = Arc::new(Mutex::new(std::collections::HashMap::new()));
    let out = seen.clone();
    let api: Api<Service> = Api::namespaced(client, ns);
    tokio::spawn(async move {
        let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
        while let Ok(Some(ev)) = stream.try_next().await {
            let svc = match ev {
                watcher::Event::Apply(s) | watcher::Event::InitApply(s) => s,
                _ => continue,
            };
            let ip = svc
                .status
                .and_then(|s| s.load_balancer)
                .and_then(|lb| lb.ingress)
                .and_then(|i| i.into_iter().next())
                .and_then(|i| i.ip);
            if let (Some(name), Some(ip)) = (svc.metadata.name, ip) {
                out.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(name, ip);
            }
        }
    });
    seen
}

fn count_with_prefix(
    seen: &Mutex<std::collections::HashMap<String, String>>,
    prefix: &str,
) -> usize {
    seen.lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .filter(|ip| ip.starts_with(prefix))
        .count()
}

async fn wait_count(
    seen: &Mutex<std::collections::HashMap<String, String>>,
    prefix: &str,
    n: usize,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while count_with_prefix(seen, prefix) < n {
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} seen with {prefix}*",
                count_with_prefix(seen, prefix)
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
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

/// The reference: list, then one status patch per Service at `concurrency`; IPs
/// `10.{round}.x.y`. Returns the time until the observer saw all of them.
async fn reference(
    client: &kube::Client,
    seen: &Mutex<std::collections::HashMap<String, String>>,
    n: usize,
    concurrency: usize,
    round: usize,
) -> Result<Duration> {
    let prefix = format!("10.{round}.");
    let start = Instant::now();
    let svcs: Api<Service> = Api::namespaced(client.clone(), "bench-ref");
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
    futures::stream::iter(names.into_iter().enumerate())
        .map(|(i, name)| {
            let svcs = svcs.clone();
            let pp = pp.clone();
            let ip = format!("{prefix}{}.{}", i / 256, i % 256);
            async move {
                let p = json!({"metadata": {"annotations": {POOL_ANN: "bench"}},
                               "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}});
                svcs.patch_status(&name, &pp, &Patch::Merge(&p)).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    wait_count(seen, &prefix, n, Duration::from_secs(120)).await?;
    Ok(start.elapsed())
}

/// Lease round latencies (ms) from the controller's debug log lines `lease round elapsed_us=..`.
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

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

struct Row {
    n: usize,
    reference: Vec<(usize, Duration)>,
    controller: Duration,
    rss_peak_mib: f64,
    lease_ms: Vec<f64>,
}

async fn one(n: usize, concurrencies: &[usize], bin: &Path) -> Result<Row> {
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
    let seen_ref = observe(admin.clone(), "bench-ref");
    let seen_ctl = observe(admin.clone(), "bench");
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut reference_times = Vec::new();
    for (round, c) in concurrencies.iter().enumerate() {
        let d = reference(&sa, &seen_ref, n, *c, round + 1).await?;
        eprintln!(
            "N={n}: reference, concurrency {c:3}: {:.2} s",
            d.as_secs_f64()
        );
        reference_times.push((*c, d));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let log = dir.join("controller.log");
    let start = Instant::now();
    let mut child = Command::new(bin)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--identity",
            "bench",
            "--lease-duration",
            "3",
        ])
        .env("RUST_LOG", "warn,ferrolb_controller::leader=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("spawning {}", bin.display()))?;
    let pid = child.id();
    let mut peak = 0;
    while count_with_prefix(&seen_ctl, "10.128.") < n {
        if let Some(r) = rss_kib(pid) {
            peak = peak.max(r);
        }
        if start.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            bail!(
                "controller: only {} of {n} after 300 s",
                count_with_prefix(&seen_ctl, "10.128.")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let controller = start.elapsed();
    let ips: HashSet<String> = seen_ctl
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .cloned()
        .collect();
    if ips.len() != n {
        bail!("{} distinct IPs for {n} Services", ips.len());
    }
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    let mut lease_ms = lease_rounds(&log);
    lease_ms.sort_by(f64::total_cmp);
    let _ = std::fs::remove_dir_all(&dir);
    drop(server);
    Ok(Row {
        n,
        reference: reference_times,
        controller,
        rss_peak_mib: peak as f64 / 1024.0,
        lease_ms,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let ns = arg_list(&args, "--services", &[1000, 5000]);
    let cs = arg_list(&args, "--concurrency", &[16, 32, 64, 128]);
    let bin = controller_binary()?;
    let mut rows = Vec::new();
    for n in ns {
        rows.push(one(n, &cs, &bin).await?);
    }
    println!(
        "\n| N | reference (best concurrency) | all concurrencies | ferrolb-controller | ratio | controller peak RSS | Lease rounds during the run: n, p50, p99, max |"
    );
    println!("|---:|---|---|---|---:|---:|---|");
    for r in &rows {
        let (bc, best) = r
            .reference
            .iter()
            .min_by_key(|(_, d)| *d)
            .copied()
            .unwrap_or((0, Duration::ZERO));
        let all: Vec<String> = r
            .reference
            .iter()
            .map(|(c, d)| format!("{c}: {:.2} s", d.as_secs_f64()))
            .collect();
        println!(
            "| {} | {:.2} s ({bc}) | {} | {:.2} s | {:.2}x | {:.1} MiB | {}, {:.1} ms, {:.1} ms, {:.1} ms |",
            r.n,
            best.as_secs_f64(),
            all.join(", "),
            r.controller.as_secs_f64(),
            r.controller.as_secs_f64() / best.as_secs_f64(),
            r.rss_peak_mib,
            r.lease_ms.len(),
            pct(&r.lease_ms, 0.5),
            pct(&r.lease_ms, 0.99),
            r.lease_ms.last().copied().unwrap_or(f64::NAN),
        );
    }
    Ok(())
}
