//! Allocator timing and memory: 100,000 allocations from an IPv4 /8 and from an IPv6 /64,
//! 100,000 frees, refilling holes freed in the middle, churn on a /28 vs a /8 (cost must
//! not depend on pool size), and 100,000 allocations with 20 pools reserved by
//! `serviceAllocation` (selected, and passed over to reach the fallback pool).
//!
//! Prints, per phase, the wall time and the time this thread actually ran on a CPU (from
//! `/proc/thread-self/schedstat`; on a shared machine the wall time includes time the thread
//! waited for a core), and VmRSS from `/proc/self/status` before and after.
//!
//! Run: `cargo run --release -p ferrolb-controller --example allocator_bench`

use std::hint::black_box;
use std::time::Instant;

use ferrolb_controller::allocator::{
    Allocator, Family, FamilyPolicy, LabelMatcher, Labels, Pool, PoolSet, Request,
    ServiceAllocation,
};

const N: usize = 100_000;

/// VmRSS in KiB (0 if /proc is unavailable).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Nanoseconds this thread has run on a CPU (0 if unavailable).
fn on_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Runs `f`, printing wall and on-CPU milliseconds.
fn phase<T>(label: &str, f: impl FnOnce() -> T) -> T {
    let (wall, cpu) = (Instant::now(), on_cpu_ns());
    let out = f();
    let wall_ms = wall.elapsed().as_secs_f64() * 1e3;
    let cpu_ms = on_cpu_ns().saturating_sub(cpu) as f64 / 1e6;
    println!("{label:<52} wall {wall_ms:8.2} ms   on-CPU {cpu_ms:8.2} ms");
    out
}

fn requests(prefix: &str, family: Family, n: usize) -> Vec<Request> {
    (0..n)
        .map(|i| Request {
            family: FamilyPolicy::SingleStack(family),
            ..Request::new(format!("{prefix}/svc-{i}"))
        })
        .collect()
}

fn keys(prefix: &str) -> Vec<String> {
    (0..N).map(|i| format!("{prefix}/svc-{i}")).collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pools = PoolSet::new(vec![
        Pool::new("v4-slash8").with_cidr("10.0.0.0/8".parse()?),
        Pool::new("v6-slash64").with_cidr("fd00:1::/64".parse()?),
    ])?;
    let mut a = Allocator::new(pools);
    let (keys4, keys6) = (keys("v4"), keys("v6"));
    let v4 = requests("v4", Family::V4, N);
    let v6 = requests("v6", Family::V6, N);
    let refill: Vec<Request> = requests("v4", Family::V4, N)
        .into_iter()
        .step_by(2)
        .collect();
    let again = requests("v4", Family::V4, N);

    let rss_start = rss_kib();
    println!("VmRSS before allocating (inputs prepared): {rss_start} KiB");

    phase(&format!("{N} assigns from IPv4 /8"), || {
        v4.into_iter()
            .try_for_each(|r| a.assign(r).map(|x| drop(black_box(x))))
    })?;
    phase(&format!("{N} assigns from IPv6 /64"), || {
        v6.into_iter()
            .try_for_each(|r| a.assign(r).map(|x| drop(black_box(x))))
    })?;
    let rss_full = rss_kib();
    let grown = rss_full.saturating_sub(rss_start);
    println!(
        "VmRSS with {} services held: {rss_full} KiB (+{grown} KiB, {:.0} bytes/service)",
        2 * N,
        grown as f64 * 1024.0 / (2 * N) as f64
    );

    phase(
        &format!("{} frees in the middle (every other IPv4)", N / 2),
        || {
            keys4
                .iter()
                .step_by(2)
                .for_each(|k| drop(black_box(a.release(k))))
        },
    );
    phase(&format!("{} assigns refilling those holes", N / 2), || {
        refill
            .into_iter()
            .try_for_each(|r| a.assign(r).map(|x| drop(black_box(x))))
    })?;
    phase(&format!("{N} idempotent re-assigns (IPv4)"), || {
        again
            .into_iter()
            .try_for_each(|r| a.assign(r).map(|x| drop(black_box(x))))
    })?;
    phase(&format!("{N} frees (IPv4)"), || {
        keys4.iter().for_each(|k| drop(black_box(a.release(k))))
    });
    phase(&format!("{N} frees (IPv6)"), || {
        keys6.iter().for_each(|k| drop(black_box(a.release(k))))
    });
    let in_use: u128 = a.pool_stats().iter().map(|s| s.in_use).sum();
    println!(
        "after freeing everything: in_use = {in_use}, services = {}, VmRSS {} KiB (the C allocator keeps freed pages)",
        a.services_len(),
        rss_kib()
    );
    drop(a);

    // Reference for this machine's speed, measured in the same run: the least any
    // key-addressed allocator must do per Service is one map insert keyed by its name.
    let reference_keys = keys("ref");
    phase(
        &format!("reference: {N} std HashMap<String, u32> inserts"),
        || {
            let mut m = std::collections::HashMap::new();
            for (i, k) in reference_keys.iter().enumerate() {
                m.insert(k.clone(), i as u32);
            }
            black_box(m)
        },
    );
    drop(reference_keys);

    service_allocation_phases()?;

    // Churn next to a fragmented, nearly full small pool vs a huge pool: same cost per op.
    for (name, net) in [("/28", "192.168.0.0/28"), ("/8", "10.0.0.0/8")] {
        let mut a = Allocator::new(PoolSet::new(vec![Pool::new("p").with_cidr(net.parse()?)])?);
        let held = requests("held", Family::V4, 15);
        for r in held.iter().cloned() {
            a.assign(r)?;
        }
        let churn = Request::new("churn/svc");
        phase(
            &format!("{N} assign+release pairs on a {name}, 15 held"),
            || -> Result<(), Box<dyn std::error::Error>> {
                for i in 0..N {
                    black_box(a.assign(churn.clone())?);
                    black_box(a.release(&churn.key));
                    if i.is_multiple_of(7) {
                        // Free and retake a held address so the pool stays fragmented.
                        let r = &held[i % held.len()];
                        a.release(&r.key);
                        a.assign(r.clone())?;
                    }
                }
                Ok(())
            },
        )?;
    }
    Ok(())
}

/// 20 pools (/16 each) reserved by `serviceAllocation` for namespaces labelled `team=tN`
/// (with a priority) plus a fallback /8: N Services spread over the 20 namespaces, then N
/// Services in an unlabelled namespace, which pass over all 20 to reach the fallback.
fn service_allocation_phases() -> Result<(), Box<dyn std::error::Error>> {
    const TEAMS: usize = 20;
    let mut pools: Vec<Pool> = (0..TEAMS)
        .map(|t| {
            let want = format!("t{t}");
            let matcher = LabelMatcher::new(format!("team={want}"), move |l| {
                l.get("team") == Some(&want)
            });
            Pool::new(format!("team-{t}"))
                .with_cidr(format!("10.{}.0.0/16", 100 + t).parse().expect("cidr"))
                .with_service_allocation(ServiceAllocation {
                    priority: Some(i32::try_from(t).unwrap_or(0) + 1),
                    namespace_selectors: vec![matcher],
                    ..ServiceAllocation::default()
                })
        })
        .collect();
    pools.push(Pool::new("fallback").with_cidr("11.0.0.0/8".parse()?));
    let mut a = Allocator::new(PoolSet::new(pools)?);
    let ns_labels: Vec<Labels> = (0..TEAMS)
        .map(|t| [("team", format!("t{t}"))].into_iter().collect())
        .collect();
    let selected: Vec<Request> = (0..N)
        .map(|i| Request {
            namespace_labels: ns_labels[i % TEAMS].clone(),
            ..Request::new(format!("team-{}/svc-{i}", i % TEAMS))
        })
        .collect();
    let passed_over = requests("plain", Family::V4, N);
    phase(
        &format!("{N} assigns, each selected by 1 of {TEAMS} reserved pools"),
        || {
            selected
                .into_iter()
                .try_for_each(|r| a.assign(r).map(|x| drop(black_box(x))))
        },
    )?;
    phase(
        &format!("{N} assigns passing over {TEAMS} reserved pools to the /8"),
        || {
            passed_over
                .into_iter()
                .try_for_each(|r| a.assign(r).map(|x| drop(black_box(x))))
        },
    )?;
    let stats = a.pool_stats();
    assert!(
        stats[..TEAMS]
            .iter()
            .all(|s| s.services_allocated == N / TEAMS)
    );
    assert_eq!(stats[TEAMS].services_allocated, N);
    Ok(())
}
