//! Controller benchmark: 10,000 pending LoadBalancer Services against the lab API server.
//!
//! The lab API server runs in this process; the controller runs as the real
//! `ferrolb-controller` binary (a separate process), so its RSS and CPU are measured alone
//! from `/proc`. Reports: time from controller start until every Service shows its IP in
//! status (observed through a watch), controller RSS at that point, and the controller's CPU
//! use over an idle period afterwards.
//!
//! ```text
//! cargo build --release -p ferrolb-controller --bin ferrolb-controller --example controller_bench
//! target/release/examples/controller_bench [SERVICES] [IDLE_SECONDS] [SETTLE_SECONDS]
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferrolb_apiserver::ApiServer;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::Api;
use kube::api::PostParams;
use kube::runtime::watcher;
use serde_json::json;

fn controller_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/examples/controller_bench -> target/<profile>/ferrolb-controller
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .context("locating target dir")?;
    let bin = dir.join("ferrolb-controller");
    if !bin.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p ferrolb-controller --bin ferrolb-controller`",
            bin.display()
        );
    }
    Ok(bin)
}

/// (RSS in KiB, utime+stime in clock ticks) of `pid`.
fn proc_stats(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11).and_then(|v| v.parse().ok()).context("utime")?;
    let stime: u64 = f.get(12).and_then(|v| v.parse().ok()).context("stime")?;
    Ok((rss, utime + stime))
}

/// `/proc/PID/stat` reports CPU time in USER_HZ units, which Linux fixes at 100 for
/// userspace regardless of the kernel's internal tick rate.
const USER_HZ: f64 = 100.0;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let idle_secs: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let settle_secs: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(10);
    let bin = controller_binary()?;

    let server = ApiServer::start().await?;
    let client = server.client().await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig)?;

    let ns: Api<Namespace> = Api::all(client.clone());
    for name in ["metallb-system", "bench"] {
        ns.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}}))?,
        )
        .await?;
    }
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "metallb-system");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "config"},
            "data": {"config": "address-pools:\n- name: bench\n  protocol: bgp\n  addresses:\n  - 10.128.0.0/16\n"}
        }))?,
    )
    .await?;

    let svcs: Api<Service> = Api::namespaced(client.clone(), "bench");
    let t = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let svcs = svcs.clone();
            async move {
                let s: Service = serde_json::from_value(json!({
                    "metadata": {"name": format!("svc-{i:05}")},
                    "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
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
    eprintln!("created {n} pending Services in {:?}", t.elapsed());

    // Count Services with an IP in status, through a watch (as any observer would see it).
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(0usize);
    let watch_api: Api<Service> = Api::namespaced(client.clone(), "bench");
    tokio::spawn(async move {
        let mut ips: HashMap<String, String> = HashMap::new();
        let mut stream = watcher::watcher(watch_api, watcher::Config::default()).boxed();
        while let Ok(Some(ev)) = stream.try_next().await {
            let svc = match ev {
                watcher::Event::Apply(s) | watcher::Event::InitApply(s) => s,
                _ => continue,
            };
            let name = svc.metadata.name.clone().unwrap_or_default();
            let ip = svc
                .status
                .and_then(|s| s.load_balancer)
                .and_then(|lb| lb.ingress)
                .and_then(|i| i.into_iter().next())
                .and_then(|i| i.ip);
            if let Some(ip) = ip {
                ips.insert(name, ip);
                let _ = done_tx.send(ips.len());
            }
        }
    });

    let me = std::process::id();
    let (_, server_cpu0) = proc_stats(me)?;
    let start = Instant::now();
    let mut child = Command::new(&bin)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--listen", "127.0.0.1:0", "--identity", "bench"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("spawning {}", bin.display()))?;
    let pid = child.id();
    let mut peak_rss = 0;
    loop {
        let done = *done_rx.borrow_and_update();
        if let Ok((rss, _)) = proc_stats(pid) {
            peak_rss = peak_rss.max(rss);
            if std::env::var_os("BENCH_TRACE").is_some() {
                eprintln!(
                    "{:6.2}s assigned {done:5} rss {:.1} MiB",
                    start.elapsed().as_secs_f64(),
                    rss as f64 / 1024.0
                );
            }
        }
        if done >= n {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            bail!("only {done} of {n} assigned after 120 s");
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), done_rx.changed()).await;
    }
    let elapsed = start.elapsed();
    let (rss_done, cpu0) = proc_stats(pid)?;
    let (_, server_cpu1) = proc_stats(me)?;
    println!(
        "{n} pending Services assigned (status written) in {:.2} s ({:.0} Services/s)",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
    println!(
        "CPU during that time: controller {:.2} s, lab API server + observer (this process) {:.2} s",
        cpu0 as f64 / USER_HZ,
        (server_cpu1 - server_cpu0) as f64 / USER_HZ
    );
    println!(
        "controller RSS when done: {:.1} MiB (peak sampled {:.1} MiB)",
        rss_done as f64 / 1024.0,
        peak_rss as f64 / 1024.0
    );

    // Let the deferred Events drain (they yield to Service writes), then measure idle CPU.
    tokio::time::sleep(Duration::from_secs(settle_secs)).await;
    let (_, cpu_a) = proc_stats(pid)?;
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let (rss_idle, cpu_b) = proc_stats(pid)?;
    let tps = USER_HZ;
    println!(
        "controller CPU while idle: {:.2} % of one core over {idle_secs} s (RSS {:.1} MiB); CPU used for the whole run: {:.2} s",
        (cpu_b - cpu_a) as f64 / tps / idle_secs as f64 * 100.0,
        rss_idle as f64 / 1024.0,
        cpu0 as f64 / tps
    );

    // Sanity: no IP handed out twice.
    let list = svcs.list(&Default::default()).await?;
    let mut seen = std::collections::HashSet::new();
    for s in &list.items {
        for ing in s
            .status
            .as_ref()
            .and_then(|st| st.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
        {
            if let Some(ip) = &ing.ip
                && !seen.insert(ip.clone())
            {
                bail!("duplicate IP {ip}");
            }
        }
    }
    println!("checked: {} distinct IPs, no duplicates", seen.len());

    // SIGTERM via the `kill` command keeps this example free of extra dependencies.
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    Ok(())
}
