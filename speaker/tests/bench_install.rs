//! Pod-route install benchmark, side by side in one run: BIRD 2 as the node agent
//! (`protocol kernel`, export all) against `ferrolb-speaker --pod-cidr-mode
//! advertise-and-install`, each receiving the same N /32s (inside the allow-list) from
//! the same feeder (`ferrolb-bgp-bench`, passive, on the node's LAN) in the same
//! namespace setup. Measured: time from the feeder's session going Established (its
//! first UPDATE follows at once) until all N routes are in the node's kernel table
//! (polled from /proc/PID/net/route every 50 ms), and the receiver's peak RSS (VmHWM).
//!
//! `cargo test -p ferrolb-speaker --test bench_install` runs the CI smoke size (N = 500)
//! and checks both receivers complete; the published table comes from
//! `FERROLB_INSTALL_BENCH_SIZES=10000,100000 cargo test --release -p ferrolb-speaker
//! --test bench_install -- --ignored --nocapture` (speaker/README.md).

mod support;

use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferrolb_netns::{Bird, BirdBgp, BirdConfig, BirdKernel};
use ferrolb_netns::{Family, Netns};
use support::*;

const FEEDER: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 6);
const FEEDER_AS: u32 = 64700;
const BASE: &str = "10.128.0.0";

#[derive(Debug, Clone)]
struct Row {
    receiver: &'static str,
    n: u32,
    secs: f64,
    peak_mib: f64,
    /// The largest anonymous RSS sampled (heap, stacks; not the mapped binary, which
    /// counts in VmHWM: ferrolb's text is ~12 MiB resident, BIRD's ~1 MiB).
    anon_mib: f64,
}

fn bench_dir() -> PathBuf {
    std::env::var_os("FERROLB_BENCH_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_BIN_EXE_ferrolb-speaker"))
                .parent()
                .expect("bin dir")
                .to_path_buf()
        })
}

/// Number of routes inside 10.128.0.0/9 in `pid`'s network namespace's IPv4 main table.
fn kernel_routes(pid: u32) -> usize {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/route")).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|d| u32::from_str_radix(d, 16).ok())
        // Little-endian: the first octet is the lowest byte.
        .filter(|d| d & 0xff == 10 && (d >> 8) & 0xff >= 128)
        .count()
}

/// `RssAnon` now (KiB).
fn anon_kib(pid: u32) -> u64 {
    status_kib(pid, "RssAnon:")
}

fn peak_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// The feeder namespace on the LAN, running `ferrolb-bgp-bench --passive` towards
/// `node`; returns when it printed `established` (the start of the clock).
struct Feeder {
    _ns: Netns,
    proc: ferrolb_netns::Proc,
}

fn start_feeder(w: &World, node: Ipv4Addr, n: u32) -> (Feeder, std::sync::mpsc::Receiver<Instant>) {
    let ns = w.lab.netns("feeder").expect("feeder ns");
    let port = w.lab.connect(&ns, &w.lan, &w.bridge).expect("feeder port");
    ns.add_addr(&port.a, format!("{FEEDER}/24").parse().unwrap())
        .expect("feeder addr");
    let bin = bench_dir().join("ferrolb-bgp-bench");
    let out = w.lab.dir().join("feeder.out");
    let mut cmd = ns.command(&bin.to_string_lossy());
    cmd.args([
        "--peer",
        &node.to_string(),
        "--peer-as",
        &NODE_AS.to_string(),
        "--local-as",
        &FEEDER_AS.to_string(),
        "--router-id",
        &FEEDER.to_string(),
        "--passive",
        "--port",
        "179",
        "--prefixes",
        &n.to_string(),
        "--base",
        BASE,
        "--hold-secs",
        "600",
        "--timeout-secs",
        "120",
    ]);
    let proc = ns.spawn_command(cmd, &out).expect("feeder");
    // Watch its stdout (the log file) for the `established` line.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Ok(f) = std::fs::File::open(&out)
                && std::io::BufReader::new(f)
                    .lines()
                    .map_while(Result::ok)
                    .any(|l| l.contains("\"established\""))
            {
                let _ = tx.send(Instant::now());
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    (Feeder { _ns: ns, proc }, rx)
}

/// Waits for `established`, then until the receiver's kernel holds the `n` routes.
fn measure(
    receiver: &'static str,
    n: u32,
    pid: u32,
    established: &std::sync::mpsc::Receiver<Instant>,
    feeder: &Feeder,
) -> Row {
    let t0 = established
        .recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| {
            panic!(
                "{receiver}: feeder never established:\n{}",
                feeder.proc.log_tail(20)
            )
        });
    let deadline = t0 + Duration::from_secs(600);
    let mut anon = 0;
    loop {
        anon = anon.max(anon_kib(pid));
        let have = kernel_routes(pid);
        if have >= n as usize {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{receiver}: {have} of {n} routes after 600 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let secs = t0.elapsed().as_secs_f64();
    // Where the memory is, mapping by mapping (`FERROLB_BENCH_SMAPS=DIR`).
    if let Some(dir) = std::env::var_os("FERROLB_BENCH_SMAPS") {
        let to = PathBuf::from(dir).join(format!("{receiver}-{n}.smaps").replace(' ', "_"));
        if let Err(e) = std::fs::copy(format!("/proc/{pid}/smaps"), &to) {
            eprintln!("copying smaps to {}: {e}", to.display());
        }
    }
    // Time for a profiler wrapped around the receiver to stop it and write its data
    // before the namespaces (and every process in them) go (`FERROLB_BENCH_LINGER_SECS`).
    if let Some(secs) = std::env::var("FERROLB_BENCH_LINGER_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        std::thread::sleep(Duration::from_secs(secs));
    }
    Row {
        receiver,
        n,
        secs,
        peak_mib: peak_kib(pid) as f64 / 1024.0,
        anon_mib: anon.max(anon_kib(pid)) as f64 / 1024.0,
    }
}

async fn run_bird(n: u32) -> Row {
    let w = World::new(1).await;
    let node = &w.nodes[0];
    let mut cfg = BirdConfig::new(node.addr);
    cfg.kernel = Some(BirdKernel {
        families: vec![Family::V4],
        ..BirdKernel::default()
    });
    cfg = cfg.bgp(BirdBgp::new(
        "feeder",
        NODE_AS,
        IpAddr::V4(FEEDER),
        FEEDER_AS,
    ));
    let (feeder, est) = start_feeder(&w, node.addr, n);
    let bird = tokio::task::block_in_place(|| Bird::start(&node.ns, &cfg)).expect("bird");
    let pid = bird.proc().pid();
    tokio::task::block_in_place(|| measure("BIRD 2", n, pid, &est, &feeder))
}

async fn run_ferrolb(n: u32) -> Row {
    let w = World::new(1).await;
    w.set_config(&format!(
        r#"peers:
- peer-address: {FEEDER}
  peer-asn: {FEEDER_AS}
  my-asn: {NODE_AS}
address-pools:
- name: default
  protocol: bgp
  addresses: [172.17.254.0/24]
"#
    ))
    .await;
    let node = w.nodes[0].addr;
    let (feeder, est) = start_feeder(&w, node, n);
    let speaker = w.start_speaker(
        0,
        &[
            "--pod-cidr-mode",
            "advertise-and-install",
            "--pod-route-allow",
            "10.128.0.0/9",
            "--max-prefixes",
            "0",
        ],
    );
    let pid = speaker.pid();
    tokio::task::block_in_place(|| measure("ferrolb", n, pid, &est, &feeder))
}

fn sizes(default: &str) -> Vec<u32> {
    std::env::var("FERROLB_INSTALL_BENCH_SIZES")
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

async fn bench(sizes: &[u32]) -> Vec<Row> {
    let mut rows = Vec::new();
    for &n in sizes {
        rows.push(run_bird(n).await);
        rows.push(run_ferrolb(n).await);
    }
    println!(
        "| receiver | N | time to kernel (s) | peak RSS (MiB) | time / BIRD | RSS / BIRD | peak anon RSS (MiB, sampled) | anon / BIRD |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for pair in rows.chunks(2) {
        let bird = &pair[0];
        for r in pair {
            println!(
                "| {} | {} | {:.2} | {:.1} | {:.2} | {:.2} | {:.1} | {:.2} |",
                r.receiver,
                r.n,
                r.secs,
                r.peak_mib,
                r.secs / bird.secs,
                r.peak_mib / bird.peak_mib,
                r.anon_mib,
                r.anon_mib / bird.anon_mib
            );
        }
    }
    rows
}

/// CI smoke run: both receivers get every route in; the numbers are sane.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn install_benchmark_runs_small() {
    if !root_or_skip() {
        return;
    }
    if let Err(e) = ferrolb_netns::check_binary("bird") {
        eprintln!("skipped: {e}");
        return;
    }
    assert!(
        bench_dir().join("ferrolb-bgp-bench").exists(),
        "ferrolb-bgp-bench not built in {} (cargo build --workspace --bins)",
        bench_dir().display()
    );
    let rows = bench(&[500]).await;
    for r in &rows {
        assert!(r.secs > 0.0 && r.secs < 60.0, "{r:?}");
        assert!(r.peak_mib > 1.0, "{r:?}");
    }
}

/// The published table (see the module doc for the command).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run by hand, see the module doc"]
async fn install_benchmark() {
    if !root_or_skip() {
        return;
    }
    bench(&sizes("10000,100000")).await;
}
