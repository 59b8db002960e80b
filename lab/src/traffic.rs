//! Steady client traffic through a LoadBalancer IP while something happens to the nodes
//! (issue 13's scenarios): `long_lived` connections each exchanging a ping every
//! `ping_every`, and `new_per_second` fresh HTTP connections, counting what breaks. A
//! long-lived connection that fails once counts as broken and is not reopened; a new
//! connection fails when it is refused, reset or not answered within a second.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::echo;

/// The shape of the traffic.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Long-lived connections, opened at the start.
    pub long_lived: usize,
    /// Interval of each long-lived connection's round trips.
    pub ping_every: Duration,
    /// New connections per second (one request each).
    pub new_per_second: u32,
}

impl Load {
    /// The issue's load: 20 long-lived connections pinging every 100 ms, 100 new
    /// connections per second.
    pub const ISSUE_13: Load = Load {
        long_lived: 20,
        ping_every: Duration::from_millis(100),
        new_per_second: 100,
    };
}

/// What happened to the traffic.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Long-lived connections opened.
    pub long_lived: usize,
    /// Of those, how many failed (refused at the start, reset, or a ping unanswered).
    pub long_broken: usize,
    /// New connections tried.
    pub new_total: usize,
    /// Of those, how many failed.
    pub new_failed: usize,
    /// New connections answered, per node, with when they started (since the start).
    pub new_by_node: BTreeMap<String, Vec<Duration>>,
    /// The first few failures, for the test's message.
    pub failures: Vec<String>,
}

impl Report {
    /// New connections answered by `node` that started at or after `since`.
    pub fn new_to_node_since(&self, node: &str, since: Duration) -> usize {
        self.new_by_node
            .get(node)
            .map_or(0, |v| v.iter().filter(|t| **t >= since).count())
    }
}

/// Runs `load` against `target` until `stop` is set; call it inside the client's
/// namespace (e.g. through [`crate::netlab::NetLab::in_ns`]).
pub async fn run(target: SocketAddr, load: Load, stop: Arc<AtomicBool>) -> Result<Report> {
    let start = Instant::now();
    let timeout = Duration::from_secs(1);
    let mut long = Vec::new();
    for _ in 0..load.long_lived {
        let stop = stop.clone();
        long.push(tokio::spawn(async move {
            let mut conn = echo::ping(target, timeout)
                .await
                .map_err(|e| format!("long-lived connect: {e:#}"))?;
            while !stop.load(Ordering::Relaxed) {
                conn.ping(timeout)
                    .await
                    .map_err(|e| format!("long-lived ping: {e:#}"))?;
                tokio::time::sleep(load.ping_every).await;
            }
            Ok::<(), String>(())
        }));
    }
    let mut fresh = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / load.new_per_second.max(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let at = start.elapsed();
        fresh.push(tokio::spawn(async move {
            (
                at,
                echo::get(target, timeout)
                    .await
                    .map_err(|e| format!("{e:#}")),
            )
        }));
    }
    let mut report = Report {
        long_lived: load.long_lived,
        ..Report::default()
    };
    for h in long {
        if let Err(e) = h.await? {
            report.long_broken += 1;
            if report.failures.len() < 5 {
                report.failures.push(e);
            }
        }
    }
    for h in fresh {
        let (at, result) = h.await?;
        report.new_total += 1;
        match result.as_deref().map(echo::parse_body) {
            Ok(Some((node, _))) => report.new_by_node.entry(node).or_default().push(at),
            other => {
                report.new_failed += 1;
                if report.failures.len() < 5 {
                    report
                        .failures
                        .push(format!("new connection at {at:?}: {other:?}"));
                }
            }
        }
    }
    Ok(report)
}

/// [`run`] in namespace `ns` on its own thread, until [`Background::finish`].
#[derive(Debug)]
pub struct Background {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<Report>>,
}

impl Background {
    /// Starts `load` from namespace `ns` (the lab's client) to `target`.
    pub fn start(ns: &str, target: SocketAddr, load: Load) -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let ns = ns.to_string();
        let thread = std::thread::spawn(move || {
            crate::nsexec::block_on_in(&ns, move || run(target, load, flag))
        });
        Background { stop, thread }
    }

    /// Stops the traffic and returns what happened.
    pub fn finish(self) -> Result<Report> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the traffic thread panicked"))?
    }
}
