//! The reconciler task: folds learned-route diffs in, and makes the kernel match.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use ferrolb_bgp::prefix_map::{PrefixMap, PrefixSet};
use ipnet::IpNet;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::desired::{Exclusions, Learned, Op, SkipReason};
use super::netlink::{KernelRoutes, NetlinkError, ROUTE_PROTOCOL};
use super::{Command, Inputs, LearnedReceiver, PassReport, PodRoutesOptions, Snapshot, ecmp};

mod pass;

/// Individual log lines about refused prefixes per pass; the rest are counted in one.
const LOG_LINES_PER_PASS: usize = 20;

pub(super) struct Reconciler {
    opts: PodRoutesOptions,
    rx: mpsc::UnboundedReceiver<Command>,
    feed: Option<LearnedReceiver>,
    snapshot: watch::Sender<Snapshot>,
    learned: Learned,
    exclusions: Exclusions,
    kernel: Option<KernelRoutes>,
    /// Our routes in the kernel as of the end of the last pass, kept up to date from
    /// the writes that succeeded, so a pass after a change need not dump a large table
    /// again; re-read from the kernel on every resync, `reconcile_now` and after errors.
    view: Option<pass::View>,
    /// Prefixes whose learned routes changed since the last pass: a pass after a change
    /// looks at these only.
    dirty: PrefixSet,
    /// Something every prefix depends on changed (inputs, addresses, the peer set): the
    /// next pass looks at all of them.
    full_needed: bool,
    /// Learned prefixes not installed, and why.
    skipped: PrefixMap<SkipReason>,
    /// Prefixes whose last kernel write failed (retried): wanted next hops and error.
    failed: BTreeMap<IpNet, (Vec<IpAddr>, String)>,
    /// ECMP routes installed over only some of their next hops (see `ecmp`).
    partial: ecmp::PartialInstalls,
    /// Delay before the next retry after a failed pass (exponential back-off).
    retry_delay: Duration,
    /// Routes of a previous run are no longer protected from deletion.
    settled: bool,
    /// Until settled: prefixes of ours found in the kernel at start (a previous run's)
    /// that have not been wanted since; only these are kept from deletion.
    adopted: Option<PrefixSet>,
    /// The latest a previous run's routes are kept, whatever the sessions do.
    settle_deadline: Option<Instant>,
    /// Peers that delivered their initial table.
    synced: BTreeSet<IpAddr>,
    /// When each peer's session came up (its table is taken as complete `settle` later
    /// when it sends no End-of-RIB).
    up_since: HashMap<IpAddr, Instant>,
    expected_peers: Option<BTreeSet<IpAddr>>,
    /// The daemon's inputs are all known (see [`Inputs::complete`]).
    inputs_complete: bool,
    /// What was logged about each failed prefix (logged again only when it changes).
    logged_failures: HashMap<IpNet, String>,
}

impl Reconciler {
    pub(super) fn new(
        opts: PodRoutesOptions,
        rx: mpsc::UnboundedReceiver<Command>,
        feed: LearnedReceiver,
        snapshot: watch::Sender<Snapshot>,
    ) -> Self {
        Reconciler {
            exclusions: Exclusions {
                prefixes: opts.exclusions.clone(),
                ..Default::default()
            },
            retry_delay: opts.retry_interval,
            settled: opts.settle.is_none(),
            adopted: None,
            settle_deadline: opts.settle.map(|d| Instant::now() + d * 4),
            opts,
            rx,
            feed: Some(feed),
            snapshot,
            learned: Learned::default(),
            kernel: None,
            view: None,
            dirty: PrefixSet::new(),
            full_needed: true,
            skipped: PrefixMap::new(),
            failed: BTreeMap::new(),
            partial: ecmp::PartialInstalls::new(),
            synced: BTreeSet::new(),
            up_since: HashMap::new(),
            expected_peers: None,
            inputs_complete: false,
            logged_failures: HashMap::new(),
        }
    }

    pub(super) async fn run(mut self) {
        let now = Instant::now();
        // The first pass runs at once (it removes stale routes unless they are adopted).
        let mut pending: Option<Instant> = Some(now);
        let mut next_resync = now + self.opts.resync_interval;
        loop {
            let mut wake = pending.map_or(next_resync, |p| p.min(next_resync));
            if let Some(at) = self.next_settle_check() {
                wake = wake.min(at);
            }
            let feed_open = self.feed.is_some();
            tokio::select! {
                cmd = self.rx.recv() => {
                    let Some(cmd) = cmd else {
                        debug!("pod route handles dropped; reconciler stops");
                        return;
                    };
                    match cmd {
                        Command::ReconcileNow(reply) => {
                            self.drain_feed();
                            let report = self.pass(true).await;
                            (pending, next_resync) = self.schedule(report);
                            let _ = reply.send(report);
                        }
                        Command::Stop { remove_routes, done } => {
                            let report = if remove_routes {
                                self.learned = Learned::default();
                                self.settled = true;
                                self.pass(true).await
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
                batch = next_batch(&mut self.feed), if feed_open => {
                    match batch {
                        Some(batch) => {
                            if self.fold(batch) && pending.is_none() {
                                pending = Some(Instant::now() + self.opts.coalesce);
                            }
                        }
                        None => self.feed = None,
                    }
                }
                () = tokio::time::sleep_until(wake) => {
                    self.check_settled();
                    let full = Instant::now() >= next_resync;
                    let report = self.pass(full).await;
                    (pending, next_resync) = self.schedule(report);
                }
            }
            if self.check_settled() {
                pending = Some(Instant::now());
            }
        }
    }

    /// Takes every learned-route change sent so far.
    fn drain_feed(&mut self) {
        if let Some(f) = self.feed.as_mut() {
            let batch = f.take();
            self.fold(batch);
        }
    }

    fn fold(&mut self, batch: ferrolb_bgp::session::LearnedBatch) -> bool {
        let mut changed = false;
        let peers_before: Vec<IpAddr> = self.learned.peers().collect();
        for r in &batch.routes {
            if self.learned.apply(r) {
                changed = true;
                self.dirty.add(r.prefix.trunc());
            }
        }
        // A new or vanished peer changes the "covers a peer's address" rule everywhere.
        if changed && !self.learned.peers().eq(peers_before.iter().copied()) {
            self.full_needed = true;
        }
        self.synced.extend(batch.synced);
        let now = Instant::now();
        for peer in batch.up {
            self.up_since.insert(peer, now);
        }
        changed
    }

    /// When the settle state should be looked at again (while not settled).
    fn next_settle_check(&self) -> Option<Instant> {
        if self.settled {
            return None;
        }
        let settle = self.opts.settle.unwrap_or_default();
        self.up_since
            .values()
            .map(|t| *t + settle)
            .chain(self.settle_deadline)
            .filter(|t| *t > Instant::now())
            .min()
    }

    /// Ends the adoption of a previous run's routes once every expected peer delivered
    /// its table, or the settle time is over. True when it ended just now.
    fn check_settled(&mut self) -> bool {
        // Without its inputs the reconciler does not know what is wanted yet, so nothing
        // of the previous run may go, whatever the time.
        if self.settled || !self.inputs_complete {
            return false;
        }
        // Each expected peer sent End-of-RIB, or has been up for the settle time.
        let now = Instant::now();
        let settle = self.opts.settle.unwrap_or_default();
        let all_synced = self.expected_peers.as_ref().is_some_and(|e| {
            e.iter().all(|p| {
                self.synced.contains(p) || self.up_since.get(p).is_some_and(|t| now >= *t + settle)
            })
        });
        let timed_out = self.settle_deadline.is_some_and(|d| now >= d);
        if all_synced || timed_out {
            self.settled = true;
            // Only adopted routes can have become stale: none, no full pass.
            self.full_needed |= self.adopted.as_ref().is_none_or(|a| !a.is_empty());
            info!(
                all_synced,
                "pod routes settled: routes of a previous run that are not wanted are removed now"
            );
            return true;
        }
        false
    }

    /// When the next pass is due: after a failure with an exponential back-off, else
    /// only at the next resync.
    fn schedule(&mut self, report: PassReport) -> (Option<Instant>, Instant) {
        let now = Instant::now();
        let pending = if report.failed > 0 {
            let at = now + self.retry_delay;
            self.retry_delay = (self.retry_delay * 2).min(self.opts.retry_max);
            Some(at)
        } else {
            self.retry_delay = self.opts.retry_interval;
            None
        };
        (pending, now + self.opts.resync_interval)
    }

    /// Applies an update to the state; returns whether it changed anything.
    fn update(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::SetExclusions(p) => {
                let changed = self.exclusions.prefixes != p;
                self.exclusions.prefixes = p;
                self.full_needed |= changed;
                changed
            }
            Command::SetInputs(i) => {
                let Inputs {
                    exclusions,
                    pod_cidrs,
                    peers,
                    expected_peers,
                    complete,
                } = i;
                self.inputs_complete = complete;
                let changed = self.exclusions.prefixes != exclusions
                    || self.exclusions.pod_cidrs != pod_cidrs
                    || self.exclusions.peers != peers;
                self.exclusions.prefixes = exclusions;
                self.exclusions.pod_cidrs = pod_cidrs;
                self.exclusions.peers = peers;
                self.expected_peers = expected_peers;
                self.full_needed |= changed;
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

    /// Whether this failure of `prefix` is new (or its error changed): logged once.
    fn log_failure(&mut self, prefix: IpNet, error: &str) -> bool {
        if self.logged_failures.get(&prefix).map(String::as_str) == Some(error) {
            return false;
        }
        self.logged_failures.insert(prefix, error.to_string());
        true
    }
}

/// The next batch of the feed (never ready without a feed).
async fn next_batch(
    feed: &mut Option<LearnedReceiver>,
) -> Option<ferrolb_bgp::session::LearnedBatch> {
    match feed {
        Some(f) => f.recv().await,
        None => std::future::pending().await,
    }
}

/// One line per route for the first few changes of a pass; a large table is summed up
/// in one line by the pass instead.
fn log_applied(op: &Op, nth: usize) {
    if nth > LOG_LINES_PER_PASS {
        return;
    }
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
