//! Pod CIDR routes learned over BGP, installed in the kernel (`--pod-cidr-mode
//! advertise-and-install`).
//!
//! Peers announce the other nodes' pod CIDRs; this module keeps the union of what every
//! peer offers (their Adj-RIB-In) and makes the kernel's main table match it,
//! level-triggered: each pass reads our routes back from the kernel, computes the desired
//! table ([`desired::desired`]), and applies the difference ([`desired::plan`]).
//!
//! - [`desired`]: the pure rules (exclusions, ECMP, plan).
//! - [`netlink`]: the rtnetlink driver; our routes carry protocol [`ROUTE_PROTOCOL`].
//! - `ecmp`: when the kernel refuses an ECMP route because one gateway is unusable, the
//!   route goes in over the gateways it accepts.
//!
//! A pass runs right after a change (bursts are coalesced), periodically to repair routes
//! deleted by hand, sooner after a failed pass, and at start — which removes routes with
//! our protocol left by a previous run. Netlink errors are logged and retried, never
//! fatal. Dropping every [`PodRoutesHandle`] stops the task and leaves the kernel as it
//! is (the next start cleans up); [`PodRoutesHandle::stop`] can remove our routes first.

pub mod desired;
mod ecmp;
mod feed;
pub mod netlink;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ferrolb_bgp::fsm::State;
use ferrolb_bgp::session::SpeakerEvent;
use ferrolb_bgp::wire::NextHop;
use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

pub use desired::{Desired, Exclusions, InstallPolicy, Learned, NextHops, Op, SkipReason};
pub use feed::installer;
pub use netlink::{DEFAULT_METRIC, KernelRoutes, NetlinkError, ROUTE_PROTOCOL};

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
    /// Delay before the next pass after a failed one.
    pub retry_interval: Duration,
    /// Metric of our routes.
    pub metric: u32,
    /// Which learned prefixes may be installed.
    pub policy: InstallPolicy,
    /// Initial excluded prefixes (our pod CIDRs, LoadBalancer IPs).
    pub exclusions: BTreeSet<IpNet>,
}

impl Default for PodRoutesOptions {
    fn default() -> Self {
        PodRoutesOptions {
            netns: None,
            resync_interval: Duration::from_secs(10),
            coalesce: Duration::from_millis(100),
            retry_interval: Duration::from_secs(2),
            metric: DEFAULT_METRIC,
            policy: InstallPolicy::default(),
            exclusions: BTreeSet::new(),
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
    /// Our routes in the kernel, with their next hops (sorted by prefix).
    pub installed: Vec<(IpNet, Vec<IpAddr>)>,
    /// Learned prefixes not installed, and why.
    pub skipped: Vec<(IpNet, SkipReason)>,
    /// Routes the kernel refused in the last pass: the wanted next hops and the error. For
    /// an ECMP route installed over only some of its next hops, the refused ones.
    pub failed: Vec<(IpNet, Vec<IpAddr>, String)>,
}

enum Command {
    Learned {
        peer: IpAddr,
        prefix: IpNet,
        next_hop: IpAddr,
    },
    Withdrawn {
        peer: IpAddr,
        prefix: IpNet,
    },
    PeerDown {
        peer: IpAddr,
    },
    SetExclusions(BTreeSet<IpNet>),
    SetLearned(Learned),
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
    /// `peer` offers `prefix` via `next_hop` (replaces its previous route for it).
    pub fn learned(&self, peer: IpAddr, prefix: IpNet, next_hop: IpAddr) {
        let _ = self.tx.send(Command::Learned {
            peer,
            prefix,
            next_hop,
        });
    }

    /// `peer` withdrew `prefix`.
    pub fn withdrawn(&self, peer: IpAddr, prefix: IpNet) {
        let _ = self.tx.send(Command::Withdrawn { peer, prefix });
    }

    /// `peer`'s session is down: forget everything it offered.
    pub fn peer_down(&self, peer: IpAddr) {
        let _ = self.tx.send(Command::PeerDown { peer });
    }

    /// Replaces the excluded prefixes: our own pod CIDRs and LoadBalancer IPs/prefixes.
    pub fn set_exclusions(&self, prefixes: BTreeSet<IpNet>) {
        let _ = self.tx.send(Command::SetExclusions(prefixes));
    }

    /// Replaces everything learned at once (for callers that keep the Adj-RIB-In
    /// themselves and hand over the whole table on each change).
    pub fn set_learned(&self, learned: Learned) {
        let _ = self.tx.send(Command::SetLearned(learned));
    }

    /// Feeds one event of the BGP speaker (see [`apply_speaker_event`]).
    pub fn speaker_event(&self, event: &SpeakerEvent) {
        apply_speaker_event(self, event);
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

    /// Runs a pass now (after every update sent before) and waits for it.
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

/// The next hop to install for a learned BGP route: IPv4 as is; IPv6 its global
/// address (a link-local-only next hop would need the interface, which we do not track).
pub fn kernel_next_hop(nh: &NextHop) -> Option<IpAddr> {
    match nh {
        NextHop::V4(a) => Some(IpAddr::V4(*a)),
        NextHop::V6 { global, .. } if !global.is_unspecified() => Some(IpAddr::V6(*global)),
        NextHop::V6 { .. } => None,
    }
}

/// Maps a BGP speaker event to the reconciler: learned and withdrawn routes, and a
/// session leaving Established drops every route of that peer. A learned route without a
/// usable next hop counts as a withdrawal (its previous next hop must not stay).
pub fn apply_speaker_event(handle: &PodRoutesHandle, event: &SpeakerEvent) {
    match event {
        SpeakerEvent::RouteLearned {
            peer,
            prefix,
            route,
        } => match kernel_next_hop(&route.next_hop) {
            Some(nh) => handle.learned(*peer, *prefix, nh),
            None => handle.withdrawn(*peer, *prefix),
        },
        SpeakerEvent::RouteWithdrawn { peer, prefix } => handle.withdrawn(*peer, *prefix),
        SpeakerEvent::PeerStateChanged { peer, to, .. } if *to != State::Established => {
            handle.peer_down(*peer);
        }
        SpeakerEvent::PeerStateChanged { .. } | SpeakerEvent::EndOfRibSent { .. } => {}
    }
}

/// Starts the reconciler.
pub struct PodRoutes;

impl PodRoutes {
    /// Spawns the reconciler on the current tokio runtime. It connects to netlink itself
    /// (and keeps retrying if it cannot) and runs its first pass at once, removing stale
    /// routes with our protocol.
    pub fn spawn(opts: PodRoutesOptions) -> (PodRoutesHandle, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (snapshot, snapshot_rx) = watch::channel(Snapshot::default());
        let task = Reconciler {
            exclusions: Exclusions {
                prefixes: opts.exclusions.clone(),
                ..Default::default()
            },
            opts,
            rx,
            snapshot,
            learned: Learned::default(),
            kernel: None,
            partial: ecmp::PartialInstalls::new(),
        };
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

struct Reconciler {
    opts: PodRoutesOptions,
    rx: mpsc::UnboundedReceiver<Command>,
    snapshot: watch::Sender<Snapshot>,
    learned: Learned,
    exclusions: Exclusions,
    kernel: Option<KernelRoutes>,
    /// ECMP routes installed over only some of their next hops (see `ecmp`).
    partial: ecmp::PartialInstalls,
}

impl Reconciler {
    async fn run(mut self) {
        let now = Instant::now();
        // The first pass runs at once: it removes stale routes of a previous run.
        let mut pending: Option<Instant> = Some(now);
        let mut next_resync = now + self.opts.resync_interval;
        loop {
            let wake = pending.map_or(next_resync, |p| p.min(next_resync));
            tokio::select! {
                cmd = self.rx.recv() => {
                    let Some(cmd) = cmd else {
                        debug!("pod route handles dropped; reconciler stops");
                        return;
                    };
                    match cmd {
                        Command::ReconcileNow(reply) => {
                            let report = self.pass().await;
                            (pending, next_resync) = self.schedule(report);
                            let _ = reply.send(report);
                        }
                        Command::Stop { remove_routes, done } => {
                            let report = if remove_routes {
                                self.learned = Learned::default();
                                self.pass().await
                            } else {
                                PassReport::default()
                            };
                            info!(remove_routes, "pod route reconciler stopped");
                            let _ = done.send(report);
                            return;
                        }
                        other => {
                            if self.update(other) && pending.is_none() {
                                pending = Some(Instant::now() + self.opts.coalesce);
                            }
                        }
                    }
                }
                () = tokio::time::sleep_until(wake) => {
                    let report = self.pass().await;
                    (pending, next_resync) = self.schedule(report);
                }
            }
        }
    }

    /// When the next pass is due: soon after a failure, else only at the next resync.
    fn schedule(&self, report: PassReport) -> (Option<Instant>, Instant) {
        let now = Instant::now();
        let pending = (report.failed > 0).then(|| now + self.opts.retry_interval);
        (pending, now + self.opts.resync_interval)
    }

    /// Applies an update to the state; returns whether it changed anything.
    fn update(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Learned {
                peer,
                prefix,
                next_hop,
            } => self.learned.learn(peer, prefix, next_hop),
            Command::Withdrawn { peer, prefix } => self.learned.withdraw(peer, prefix),
            Command::PeerDown { peer } => self.learned.peer_down(peer),
            Command::SetExclusions(p) => {
                let changed = self.exclusions.prefixes != p;
                self.exclusions.prefixes = p;
                changed
            }
            Command::SetLearned(l) => {
                let changed = self.learned != l;
                self.learned = l;
                changed
            }
            Command::ReconcileNow(_) | Command::Stop { .. } => false,
        }
    }

    fn kernel(&mut self) -> Result<&KernelRoutes, NetlinkError> {
        if self.kernel.is_none() {
            let k = KernelRoutes::connect(self.opts.netns.as_deref(), self.opts.metric)?;
            self.kernel = Some(k);
        }
        self.kernel
            .as_ref()
            .ok_or_else(|| NetlinkError::Connect(std::io::Error::other("no connection")))
    }

    fn failed(&mut self, error: &NetlinkError) {
        warn!(%error, "pod route reconcile failed; will retry");
        if error.is_connection_lost() {
            self.kernel = None;
        }
    }

    /// One level-triggered pass: read the kernel, compute, apply the difference.
    async fn pass(&mut self) -> PassReport {
        let mut report = PassReport::default();
        let current = match self.read().await {
            Ok(c) => c,
            Err(e) => {
                self.failed(&e);
                report.failed += 1;
                return report;
            }
        };
        let want = desired::desired(&self.learned, &self.exclusions, &self.opts.policy);
        for (prefix, reason) in &want.skipped {
            debug!(%prefix, %reason, "learned pod route not installed");
        }
        let ops = desired::plan(&want.routes, &current, self.opts.metric);
        let mut lost = false;
        let mut failed = Vec::new();
        // Partial installs are remembered only while the prefix still wants those hops.
        self.partial
            .retain(|prefix, p| want.routes.get(prefix) == Some(&p.wanted));
        if let Some(kernel) = &self.kernel {
            for op in &ops {
                let mut result = kernel.apply(op).await;
                if result.is_ok() {
                    self.partial.remove(&op.prefix());
                }
                if let (Err(e), Op::Replace { prefix, next_hops }) = (&result, op)
                    && next_hops.len() > 1
                    && !e.is_connection_lost()
                {
                    let installed = current
                        .iter()
                        .find(|r| r.prefix == *prefix)
                        .map(|r| &r.next_hops);
                    match ecmp::install_usable(
                        kernel,
                        *prefix,
                        next_hops,
                        installed,
                        &mut self.partial,
                    )
                    .await
                    {
                        Ok(Some(p)) => {
                            // Still a failure: retried, so the full set returns once the
                            // kernel accepts it.
                            report.failed += 1;
                            let (hops, error) = p.refused_summary();
                            let usable: Vec<String> =
                                p.usable.iter().map(ToString::to_string).collect();
                            warn!(%prefix, usable = %usable.join(","), %error, "ECMP pod route installed without the next hops the kernel refused; will retry");
                            failed.push((*prefix, hops, error));
                            continue;
                        }
                        Ok(None) => {}
                        Err(lost_conn) => result = Err(lost_conn),
                    }
                }
                match result {
                    Ok(()) => {
                        report.applied += 1;
                        log_applied(op);
                    }
                    Err(e) => {
                        report.failed += 1;
                        warn!(prefix = %op.prefix(), error = %e, "pod route change failed; will retry");
                        lost |= e.is_connection_lost();
                        let hops = match op {
                            Op::Replace { next_hops, .. } => next_hops.iter().copied().collect(),
                            Op::Delete { .. } => Vec::new(),
                        };
                        failed.push((op.prefix(), hops, e.to_string()));
                    }
                }
            }
        }
        if lost {
            self.kernel = None;
        }
        // What the status page shows is what the kernel holds, not what we hoped for.
        let installed = if ops.is_empty() {
            Ok(current)
        } else {
            match &self.kernel {
                Some(k) => k.list().await,
                None => Ok(Vec::new()),
            }
        };
        let installed = match installed {
            Ok(v) => v,
            Err(e) => {
                self.failed(&e);
                report.failed += 1;
                return report;
            }
        };
        report.installed = installed.len();
        let snapshot = Snapshot {
            installed: installed
                .into_iter()
                .map(|r| (r.prefix, r.next_hops.into_iter().collect()))
                .collect::<BTreeMap<_, _>>()
                .into_iter()
                .collect(),
            skipped: want.skipped.into_iter().collect(),
            failed,
        };
        self.snapshot.send_if_modified(|s| {
            let changed = *s != snapshot;
            *s = snapshot;
            changed
        });
        report
    }

    /// Reads our routes and the node's addresses (which are never next hops).
    async fn read(&mut self) -> Result<Vec<desired::InstalledRoute>, NetlinkError> {
        let kernel = self.kernel()?;
        let local = kernel.local_addresses().await?;
        let current = kernel.list().await?;
        self.exclusions.local_addresses = local;
        Ok(current)
    }
}

fn log_applied(op: &Op) {
    match op {
        Op::Replace { prefix, next_hops } => {
            let hops: Vec<String> = next_hops.iter().map(ToString::to_string).collect();
            info!(%prefix, next_hops = %hops.join(","), proto = ROUTE_PROTOCOL, "pod route installed");
        }
        Op::Delete { prefix, metric } => {
            info!(%prefix, metric, proto = ROUTE_PROTOCOL, "pod route removed");
        }
    }
}
