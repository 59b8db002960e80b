//! The reconciler task: folds learned-route diffs in, and makes the kernel match.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::desired::{self, Exclusions, Learned, Op, SkipReason};
use super::netlink::{KernelRoutes, NetlinkError, ROUTE_PROTOCOL};
use super::{Command, Inputs, LearnedReceiver, PassReport, PodRoutesOptions, Snapshot, ecmp};

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
    /// ECMP routes installed over only some of their next hops (see `ecmp`).
    partial: ecmp::PartialInstalls,
    /// Delay before the next retry after a failed pass (exponential back-off).
    retry_delay: Duration,
    /// Routes of a previous run are no longer protected from deletion.
    settled: bool,
    /// Until settled: prefixes of ours found in the kernel at start (a previous run's)
    /// that have not been wanted since; only these are kept from deletion.
    adopted: Option<BTreeSet<IpNet>>,
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
    /// What was logged about each refused prefix (logged again only when it changes).
    logged_skips: HashMap<IpNet, SkipReason>,
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
            partial: ecmp::PartialInstalls::new(),
            synced: BTreeSet::new(),
            up_since: HashMap::new(),
            expected_peers: None,
            inputs_complete: false,
            logged_skips: HashMap::new(),
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
                            let report = self.pass().await;
                            (pending, next_resync) = self.schedule(report);
                            let _ = reply.send(report);
                        }
                        Command::Stop { remove_routes, done } => {
                            let report = if remove_routes {
                                self.learned = Learned::default();
                                self.settled = true;
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
                    let report = self.pass().await;
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
        for r in &batch.routes {
            changed |= self.learned.apply(r);
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

    /// Logs each refused prefix once (and again only when its reason changes), at most
    /// [`LOG_LINES_PER_PASS`] lines a pass plus one line counting the rest.
    fn log_skipped(&mut self, skipped: &BTreeMap<IpNet, SkipReason>) {
        self.logged_skips.retain(|p, _| skipped.contains_key(p));
        let mut lines = 0;
        let mut more = 0;
        for (prefix, reason) in skipped {
            if self.logged_skips.get(prefix) == Some(reason) {
                continue;
            }
            self.logged_skips.insert(*prefix, reason.clone());
            if lines < LOG_LINES_PER_PASS {
                lines += 1;
                info!(%prefix, %reason, "learned route not installed");
            } else {
                more += 1;
            }
        }
        if more > 0 {
            info!(
                more,
                "more learned routes not installed (see the status page)"
            );
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
        self.log_skipped(&want.skipped);
        let mut ops = desired::plan(&want.routes, &current, self.opts.metric);
        if self.settled {
            self.adopted = None;
        } else {
            // Adopting a previous run's routes: those not wanted (yet) stay until settled.
            let adopted = self
                .adopted
                .get_or_insert_with(|| current.iter().map(|r| r.prefix).collect());
            adopted.retain(|p| !want.routes.contains_key(p));
            ops.retain(|op| !matches!(op, Op::Delete { prefix, .. } if adopted.contains(prefix)));
        }
        let mut lost = false;
        let mut failed = Vec::new();
        // Partial installs are remembered only while the prefix still wants those hops.
        self.partial
            .retain(|prefix, p| want.routes.get(prefix) == Some(&p.wanted));
        let mut results = Vec::with_capacity(ops.len());
        if let Some(kernel) = &self.kernel {
            // Deletes first (a replace may depend on one), each group pipelined.
            let split = ops.partition_point(|op| matches!(op, Op::Delete { .. }));
            results.extend(kernel.apply_all(&ops[..split]).await);
            results.extend(kernel.apply_all(&ops[split..]).await);
        }
        let mut noisy = 0usize;
        let mut lines = 0usize;
        for (op, mut result) in ops.iter().zip(results) {
            if result.is_ok() {
                self.partial.remove(&op.prefix());
                self.logged_failures.remove(&op.prefix());
            }
            if let (Err(e), Op::Replace { prefix, next_hops }, Some(kernel)) =
                (&result, op, &self.kernel)
                && next_hops.len() > 1
                && !e.is_connection_lost()
            {
                let installed = current
                    .iter()
                    .find(|r| r.prefix == *prefix)
                    .map(|r| &r.next_hops);
                match ecmp::install_usable(kernel, *prefix, next_hops, installed, &mut self.partial)
                    .await
                {
                    Ok(Some(p)) => {
                        // Still a failure: retried, so the full set returns once the
                        // kernel accepts it.
                        report.failed += 1;
                        let (hops, error) = p.refused_summary();
                        if self.log_failure(*prefix, &error) && lines < LOG_LINES_PER_PASS {
                            lines += 1;
                            let usable: Vec<String> =
                                p.usable.iter().map(ToString::to_string).collect();
                            warn!(%prefix, usable = %usable.join(","), %error, "ECMP pod route installed without the next hops the kernel refused; will retry");
                        }
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
                    log_applied(op, report.applied);
                }
                Err(e) => {
                    report.failed += 1;
                    let text = e.to_string();
                    if self.log_failure(op.prefix(), &text) && lines < LOG_LINES_PER_PASS {
                        lines += 1;
                        warn!(prefix = %op.prefix(), error = %text, "pod route change failed; will retry with back-off");
                    } else {
                        noisy += 1;
                    }
                    lost |= e.is_connection_lost();
                    let hops = match op {
                        Op::Replace { next_hops, .. } => next_hops.iter().copied().collect(),
                        Op::Delete { .. } => Vec::new(),
                    };
                    failed.push((op.prefix(), hops, text));
                }
            }
        }
        if noisy > 0 {
            debug!(
                failures = noisy,
                "pod route changes failed again or beyond the lines of this pass"
            );
        }
        let failed_now: BTreeSet<IpNet> = failed.iter().map(|f| f.0).collect();
        self.logged_failures.retain(|p, _| failed_now.contains(p));
        if report.applied > 1 {
            info!(
                applied = report.applied,
                failed = report.failed,
                proto = ROUTE_PROTOCOL,
                "pod routes changed"
            );
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
        let mut refused: BTreeMap<&'static str, usize> = BTreeMap::new();
        for reason in want.skipped.values() {
            *refused.entry(reason.label()).or_default() += 1;
        }
        if !failed.is_empty() {
            refused.insert("kernel_refused", failed.len());
        }
        let snapshot = Snapshot {
            installed: installed
                .into_iter()
                .map(|r| (r.prefix, r.next_hops.into_iter().collect()))
                .collect::<BTreeMap<_, _>>()
                .into_iter()
                .collect(),
            skipped: want.skipped.into_iter().collect(),
            failed,
            refused,
            learned_prefixes: self.learned.prefix_count(),
            settled: self.settled,
        };
        self.snapshot.send_if_modified(|s| {
            let changed = *s != snapshot;
            *s = snapshot;
            changed
        });
        report
    }

    /// Reads our routes and the node's addresses and subnets (never next hops or
    /// destinations).
    async fn read(&mut self) -> Result<Vec<desired::InstalledRoute>, NetlinkError> {
        let kernel = self.kernel()?;
        let (local, connected) = kernel.addresses().await?;
        let current = kernel.list().await?;
        self.exclusions.local_addresses = local;
        self.exclusions.connected = connected;
        Ok(current)
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
