//! Pod CIDR routes learned over BGP, installed in the kernel (`--pod-cidr-mode
//! advertise-and-install`).
//!
//! Peers announce the other nodes' pod CIDRs; this module keeps the union of what every
//! peer offers (their Adj-RIB-In) and makes the kernel's main table match it,
//! level-triggered: each pass reads our routes back from the kernel, computes the desired
//! table ([`desired::desired`]), and applies the difference ([`desired::plan`]).
//!
//! - [`desired`]: the pure rules (exclusions, ECMP, plan); [`rules`]: what is never
//!   installed in any mode (martians, connected subnets, peers' and our own addresses).
//! - [`netlink`]: the rtnetlink driver; our routes carry protocol [`ROUTE_PROTOCOL`].
//! - `ecmp`: when the kernel refuses an ECMP route because one gateway is unusable, the
//!   route goes in over the gateways it accepts.
//!
//! Learned routes arrive over the BGP speaker's learned-route feed
//! ([`ferrolb_bgp::session::learned`]): bounded, coalescing diffs, the same path in the
//! daemon and in the tests. A pass runs right after a change (bursts are coalesced),
//! periodically to repair routes deleted by hand, and after a failed pass with an
//! exponential back-off. Kernel writes go in batches, many routes per system call
//! (`batch`).
//!
//! At start, routes with our protocol left by a previous run are either removed at once
//! ([`PodRoutesOptions::settle`] `None`) or adopted: kept while the sessions deliver
//! their tables, so a restart never takes a wanted route out of the kernel, and only
//! what is still stale once every expected peer sent End-of-RIB (or the settle time
//! ran out) is removed. Netlink errors are logged once per prefix and retried, never
//! fatal. Dropping every [`PodRoutesHandle`] stops the task and leaves the kernel as it
//! is; [`PodRoutesHandle::stop`] can remove our routes first.

mod batch;
pub mod desired;
mod ecmp;
mod feed;
mod hops;
mod message;
pub mod netlink;
pub mod nodes;
mod reconciler;
pub mod rules;
pub mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use desired::{Desired, Exclusions, InstallPolicy, Learned, NextHops, Op, Rules, SkipReason};
pub use feed::installer;
pub use ferrolb_bgp::session::learned::next_hop_address as kernel_next_hop;
pub use ferrolb_bgp::session::{LearnedReceiver, LearnedRoute, LearnedSender, learned_feed};
pub use netlink::{DEFAULT_METRIC, KernelRoutes, NetlinkError, ROUTE_PROTOCOL};

/// Rows of each list a [`Snapshot`] carries (the counts are complete): what the status
/// page shows of a large table.
pub const SNAPSHOT_ROWS: usize = 1000;

/// Pending learned-route changes before the BGP sessions stop reading their sockets.
/// The reconciler takes them all at once (~120 bytes each while handed over), so this
/// bounds that transient memory; a pass plans 1,024 prefixes a step anyway.
pub const FEED_CAPACITY: usize = 1024;

/// How long a restarted speaker waits, after each session came up, for the peer's table
/// (unless it sends End-of-RIB sooner) before removing what its predecessor left and
/// nobody wants; four times this after the start at the latest.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(30);

/// How the reconciler runs.
#[derive(Debug, Clone)]
pub struct PodRoutesOptions {
    /// Network namespace file to manage (e.g. `/var/run/netns/NAME`); `None`: the
    /// namespace the process runs in (the daemon runs in the host network).
    pub netns: Option<PathBuf>,
    /// Full resync period, which repairs routes changed behind our back.
    pub resync_interval: Duration,
    /// How long to wait after a change for more changes before a pass.
    pub coalesce: Duration,
    /// Delay before the next pass after a failed one; doubles with every further failed
    /// pass, up to `retry_max`.
    pub retry_interval: Duration,
    /// Longest delay between retries of failed kernel writes.
    pub retry_max: Duration,
    /// Metric of our routes.
    pub metric: u32,
    /// Which learned prefixes may be installed.
    pub policy: InstallPolicy,
    /// Initial excluded prefixes (our pod CIDRs, LoadBalancer IPs).
    pub exclusions: BTreeSet<IpNet>,
    /// Adopt the routes of a previous run until every expected peer sent End-of-RIB or
    /// has been up this long (four times this after the start at the latest; see the
    /// module doc); `None`: remove them at start.
    pub settle: Option<Duration>,
}

impl Default for PodRoutesOptions {
    fn default() -> Self {
        PodRoutesOptions {
            netns: None,
            resync_interval: Duration::from_secs(10),
            coalesce: Duration::from_millis(10),
            retry_interval: Duration::from_secs(2),
            retry_max: Duration::from_secs(60),
            metric: DEFAULT_METRIC,
            policy: InstallPolicy::default(),
            exclusions: BTreeSet::new(),
            settle: None,
        }
    }
}

/// The outcome of one reconcile pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Kernel operations that succeeded.
    pub applied: usize,
    /// Kernel operations (or reads) that failed; they are retried.
    pub failed: usize,
    /// Routes we have in the kernel after the pass.
    pub installed: usize,
}

/// The reconciler task is gone.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the pod route reconciler has stopped")]
pub struct Stopped;

/// What the status page shows, as of the last pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Our routes in the kernel, with their next hops (sorted by prefix; the first
    /// [`SNAPSHOT_ROWS`] of them).
    pub installed: Vec<(IpNet, Vec<IpAddr>)>,
    /// How many routes of ours are in the kernel.
    pub installed_count: usize,
    /// Learned prefixes not installed, and why (the first [`SNAPSHOT_ROWS`]).
    pub skipped: Vec<(IpNet, SkipReason)>,
    /// Routes the kernel refused in the last pass: the wanted next hops and the error. For
    /// an ECMP route installed over only some of its next hops, the refused ones.
    pub failed: Vec<(IpNet, Vec<IpAddr>, String)>,
    /// Refused prefixes per reason ([`SkipReason::label`], and `kernel_refused`).
    pub refused: BTreeMap<&'static str, usize>,
    /// Distinct prefixes learned from the peers.
    pub learned_prefixes: usize,
    /// Routes of a previous run are no longer adopted (stale ones were removed).
    pub settled: bool,
}

/// What the reconciler needs to know besides the learned routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inputs {
    /// Excluded prefixes: our own pod CIDRs and the LoadBalancer address space.
    pub exclusions: BTreeSet<IpNet>,
    /// Every Node's `spec.podCIDRs` (see [`Exclusions::pod_cidrs`]).
    pub pod_cidrs: Option<BTreeSet<IpNet>>,
    /// Addresses of the configured BGP peers.
    pub peers: BTreeSet<IpAddr>,
    /// The peers whose End-of-RIB ends the settle time; `None` until known.
    pub expected_peers: Option<BTreeSet<IpAddr>>,
    /// Everything above is known (the daemon's first reconcile ran and the Nodes were
    /// listed): a previous run's routes are never removed before.
    pub complete: bool,
}

enum Command {
    SetExclusions(BTreeSet<IpNet>),
    SetInputs(Inputs),
    ReconcileNow(oneshot::Sender<PassReport>),
    Stop {
        remove_routes: bool,
        done: oneshot::Sender<PassReport>,
    },
}

/// Handle to the reconciler (cheap to clone). Updates never block and never fail: if
/// the task has stopped they are dropped.
#[derive(Debug, Clone)]
pub struct PodRoutesHandle {
    tx: mpsc::UnboundedSender<Command>,
    snapshot: watch::Receiver<Snapshot>,
}

impl PodRoutesHandle {
    /// Replaces the excluded prefixes: our own pod CIDRs and LoadBalancer IPs/prefixes.
    pub fn set_exclusions(&self, prefixes: BTreeSet<IpNet>) {
        let _ = self.tx.send(Command::SetExclusions(prefixes));
    }

    /// Replaces everything the reconciler knows besides the learned routes.
    pub fn set_inputs(&self, inputs: Inputs) {
        let _ = self.tx.send(Command::SetInputs(inputs));
    }

    /// Our routes in the kernel after the last pass, with their next hops.
    pub fn installed(&self) -> Vec<(IpNet, Vec<IpAddr>)> {
        self.snapshot.borrow().installed.clone()
    }

    /// Learned prefixes that were not installed in the last pass, and why.
    pub fn skipped(&self) -> Vec<(IpNet, SkipReason)> {
        self.snapshot.borrow().skipped.clone()
    }

    /// The status after every pass that changed it (`changed().await` to follow).
    pub fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.snapshot.clone()
    }

    /// Runs a pass now (after every update and learned route sent before) and waits
    /// for it.
    pub async fn reconcile_now(&self) -> Result<PassReport, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::ReconcileNow(tx))
            .map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// Stops the task; with `remove_routes`, first deletes every route with our protocol
    /// (used when pod route installation is switched off).
    pub async fn stop(&self, remove_routes: bool) -> Result<PassReport, Stopped> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Command::Stop {
                remove_routes,
                done,
            })
            .map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }
}

/// Starts the reconciler.
pub struct PodRoutes;

impl PodRoutes {
    /// Spawns the reconciler on the current tokio runtime, fed by `learned` (the BGP
    /// speaker's learned-route feed, or a test's). It connects to netlink itself (and
    /// keeps retrying if it cannot) and runs its first pass at once.
    pub fn spawn(
        opts: PodRoutesOptions,
        learned: LearnedReceiver,
    ) -> (PodRoutesHandle, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (snapshot, snapshot_rx) = watch::channel(Snapshot::default());
        let task = reconciler::Reconciler::new(opts, rx, learned, snapshot);
        let join = tokio::spawn(task.run());
        (
            PodRoutesHandle {
                tx,
                snapshot: snapshot_rx,
            },
            join,
        )
    }
}
