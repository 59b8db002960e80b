//! One reconcile pass: the prefixes to look at (all of them, or only those whose learned
//! routes changed), their desired routes, the kernel writes, and the status snapshot.
//! Nothing here copies the whole table per change: a pass after a change costs what
//! changed, a full pass (resync, new inputs) streams the kernel dump into the compact
//! [`View`].

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use tracing::{debug, info, warn};

use super::super::desired::{self, InstalledRoute, Op, RouteTable, Rules};
use super::super::netlink::{NetlinkError, ROUTE_PROTOCOL};
use super::super::table::Gateways;
pub(in super::super) use super::super::table::View;
use super::super::{PassReport, SNAPSHOT_ROWS, Snapshot, ecmp};
use super::{LOG_LINES_PER_PASS, Reconciler, log_applied};

/// The view's routes for one prefix, as the planner takes them.
fn current_for(view: &View, prefix: IpNet) -> Vec<InstalledRoute> {
    view.routes(&prefix)
        .iter()
        .map(|(m, g)| InstalledRoute {
            prefix,
            metric: *m,
            next_hops: g.hops(),
        })
        .collect()
}

/// The operations for one prefix: the common cases (nothing to do, a new route, a
/// changed single route) without building anything, the rest by [`desired::plan`].
fn plan_prefix(
    view: &View,
    prefix: IpNet,
    want: Option<desired::NextHops>,
    metric: u32,
    ops: &mut Vec<Op>,
) {
    let current = view.routes(&prefix);
    let only = current.len() == 1;
    match (want, current.first()) {
        (None, None) => {}
        (Some(next_hops), None) => ops.push(Op::Replace { prefix, next_hops }),
        (Some(next_hops), Some((m, g))) if only && *m == metric => {
            if g.hops() != next_hops {
                ops.push(Op::Replace { prefix, next_hops });
            }
        }
        (want, _) => {
            let table: RouteTable = want.into_iter().map(|h| (prefix, h)).collect();
            ops.extend(desired::plan(&table, &current_for(view, prefix), metric));
        }
    }
}

/// Prefixes planned and written per step of a pass (the kernel writes of a step are
/// batched; a step's results are taken before the next step is planned). A step holds
/// its operations and their results (~250 bytes a prefix): 4,096 were ~1 MB of the
/// speaker's peak heap at 10,000 routes, 1,024 write as fast (16 system calls a step).
const APPLY_CHUNK: usize = 1024;

impl Reconciler {
    /// One level-triggered pass. `full_read`: dump the kernel instead of trusting the
    /// view (resync, `reconcile_now`).
    pub(super) async fn pass(&mut self, full_read: bool) -> PassReport {
        let mut report = PassReport::default();
        let mut view = match self.read(full_read).await {
            Ok(v) => v,
            Err(e) => {
                self.failed(&e);
                report.failed += 1;
                return report;
            }
        };
        let full = std::mem::take(&mut self.full_needed) || full_read;
        // A sorted list, not a set: 18 bytes a prefix (a BTreeSet of 100,000 was 3.4 MB).
        let mut prefixes: Vec<IpNet> = if full {
            self.skipped.clear();
            self.learned
                .prefixes()
                .chain(view.prefixes())
                .chain(self.failed.keys().copied())
                .collect()
        } else {
            std::mem::take(&mut self.dirty)
                .keys()
                .chain(self.failed.keys().copied())
                .collect()
        };
        prefixes.sort_unstable();
        prefixes.dedup();
        self.dirty.clear();
        if !self.settled && self.adopted.is_none() {
            self.adopted = Some(view.prefixes().collect());
        }
        if self.settled {
            self.adopted = None;
        }
        let metric = self.opts.metric;
        let mut ops = Vec::new();
        let mut skip_lines = 0;
        let mut skip_more = 0;
        let mut lost = false;
        let mut failure_lines = 0usize;
        // Planned and written chunk by chunk: a large pass never holds every operation
        // (100,000 were 4.3 MB, plus as much again while the list grew) nor every result.
        for chunk in prefixes.chunks(APPLY_CHUNK) {
            let rules = Rules::new(&self.learned, &self.exclusions, &self.opts.policy);
            for prefix in chunk {
                let want = rules.evaluate(prefix, self.learned.offered(prefix));
                self.failed.remove(prefix);
                match &want {
                    Err(reason) => {
                        if self.skipped.get(prefix) != Some(reason) {
                            if skip_lines < LOG_LINES_PER_PASS {
                                skip_lines += 1;
                                info!(%prefix, %reason, "learned route not installed");
                            } else {
                                skip_more += 1;
                            }
                        }
                        self.skipped.insert(*prefix, reason.clone());
                    }
                    Ok(_) => {
                        self.skipped.remove(prefix);
                        if let Some(a) = self.adopted.as_mut() {
                            a.remove(prefix);
                        }
                    }
                }
                if self
                    .partial
                    .get(prefix)
                    .is_some_and(|p| want.as_ref().ok() != Some(&p.wanted))
                {
                    self.partial.remove(prefix);
                }
                plan_prefix(&view, *prefix, want.ok(), metric, &mut ops);
            }
            if let Some(adopted) = &self.adopted {
                // Adopting a previous run's routes: those not wanted (yet) stay until settled.
                ops.retain(
                    |op| !matches!(op, Op::Delete { prefix, .. } if adopted.contains(prefix)),
                );
            }
            // Deletes first (a replace may depend on one; both are of this chunk's prefixes).
            ops.sort_by_key(|op| !matches!(op, Op::Delete { .. }));
            lost = self
                .apply(&ops, &mut view, &mut report, &mut failure_lines)
                .await;
            ops.clear();
            if lost {
                // The prefixes not reached yet are looked at again, all of them.
                self.full_needed = true;
                self.kernel = None;
                break;
            }
        }
        if skip_more > 0 {
            info!(
                more = skip_more,
                "more learned routes not installed (see the status page)"
            );
        }
        if report.applied > 1 {
            info!(
                applied = report.applied,
                failed = report.failed,
                proto = ROUTE_PROTOCOL,
                "pod routes changed"
            );
        }
        report.installed = view.len();
        self.publish(&view);
        self.view = (!lost).then_some(view);
        report
    }

    /// Writes `ops` (pipelined) and keeps `view` in step; returns whether the netlink
    /// connection was lost. `lines`: failure lines logged so far in this pass.
    async fn apply(
        &mut self,
        ops: &[Op],
        view: &mut View,
        report: &mut PassReport,
        lines: &mut usize,
    ) -> bool {
        let Some(kernel) = self.kernel.take() else {
            return false;
        };
        let split = ops.partition_point(|op| matches!(op, Op::Delete { .. }));
        let mut lost = false;
        let mut quiet = 0usize;
        let mut results = kernel.apply_all(&ops[..split]).await;
        results.extend(kernel.apply_all(&ops[split..]).await);
        for (op, mut result) in ops.iter().zip(results) {
            let prefix = op.prefix();
            if let (Err(e), Op::Replace { next_hops, .. }) = (&result, op)
                && next_hops.len() > 1
                && !e.is_connection_lost()
            {
                let installed = view.get(&prefix, self.opts.metric).map(Gateways::hops);
                match ecmp::install_usable(
                    &kernel,
                    prefix,
                    next_hops,
                    installed.as_ref(),
                    &mut self.partial,
                )
                .await
                {
                    Ok(Some(p)) => {
                        // Still a failure: retried, so the full set returns once the
                        // kernel accepts it.
                        report.failed += 1;
                        let (hops, error) = p.refused_summary();
                        if self.log_failure(prefix, &error) && *lines < LOG_LINES_PER_PASS {
                            *lines += 1;
                            let usable: Vec<String> =
                                p.usable.iter().map(ToString::to_string).collect();
                            warn!(%prefix, usable = %usable.join(","), %error, "ECMP pod route installed without the next hops the kernel refused; will retry");
                        }
                        if let Some(g) = Gateways::from_hops(&p.usable) {
                            view.insert(prefix, self.opts.metric, g);
                        }
                        self.failed.insert(prefix, (hops, error));
                        continue;
                    }
                    Ok(None) => {}
                    Err(lost_conn) => result = Err(lost_conn),
                }
            }
            match result {
                Ok(()) => {
                    report.applied += 1;
                    self.partial.remove(&prefix);
                    self.logged_failures.remove(&prefix);
                    log_applied(op, report.applied);
                    match op {
                        Op::Replace { next_hops, .. } => {
                            if let Some(g) = Gateways::from_hops(next_hops) {
                                view.insert(prefix, self.opts.metric, g);
                            }
                        }
                        Op::Delete { metric, .. } => {
                            view.remove(&prefix, *metric);
                        }
                    }
                }
                Err(e) => {
                    report.failed += 1;
                    let text = e.to_string();
                    if self.log_failure(prefix, &text) && *lines < LOG_LINES_PER_PASS {
                        *lines += 1;
                        warn!(%prefix, error = %text, "pod route change failed; will retry with back-off");
                    } else {
                        quiet += 1;
                    }
                    lost |= e.is_connection_lost();
                    let hops = match op {
                        Op::Replace { next_hops, .. } => next_hops.iter().copied().collect(),
                        Op::Delete { .. } => Vec::new(),
                    };
                    self.failed.insert(prefix, (hops, text));
                }
            }
        }
        if quiet > 0 {
            debug!(
                failures = quiet,
                "pod route changes failed again or beyond the lines of this pass"
            );
        }
        let failed_now = &self.failed;
        self.logged_failures
            .retain(|p, _| failed_now.contains_key(p));
        if !lost {
            self.kernel = Some(kernel);
        }
        lost
    }

    /// The status snapshot: counts in full, lists cut at [`SNAPSHOT_ROWS`].
    fn publish(&self, view: &View) {
        let mut installed: Vec<(IpNet, Vec<IpAddr>)> = Vec::new();
        for (prefix, routes) in view.iter().take(SNAPSHOT_ROWS) {
            if let Some((_, g)) = routes.first() {
                installed.push((prefix, g.to_vec()));
            }
        }
        let mut refused: BTreeMap<&'static str, usize> = BTreeMap::new();
        for reason in self.skipped.values() {
            *refused.entry(reason.label()).or_default() += 1;
        }
        if !self.failed.is_empty() {
            refused.insert("kernel_refused", self.failed.len());
        }
        let snapshot = Snapshot {
            installed,
            installed_count: view.len(),
            skipped: self
                .skipped
                .iter()
                .take(SNAPSHOT_ROWS)
                .map(|(p, r)| (p, r.clone()))
                .collect(),
            failed: self
                .failed
                .iter()
                .take(SNAPSHOT_ROWS)
                .map(|(p, (h, e))| (*p, h.clone(), e.clone()))
                .collect(),
            refused,
            learned_prefixes: self.learned.prefix_count(),
            settled: self.settled,
        };
        self.snapshot.send_if_modified(|s| {
            let changed = *s != snapshot;
            *s = snapshot;
            changed
        });
    }

    /// Reads the node's addresses and subnets (never next hops or destinations), and
    /// our routes: the view of the last pass unless `full_read` (or there is none).
    async fn read(&mut self, full_read: bool) -> Result<View, NetlinkError> {
        let cached = if full_read { None } else { self.view.take() };
        let kernel = self.kernel()?;
        let (local, connected) = kernel.addresses().await?;
        let view = match cached {
            Some(v) => v,
            None => {
                let mut v = View::new();
                kernel
                    .for_each_route(|r| {
                        let hops = match v.get(&r.prefix, r.metric) {
                            Some(g) => g.hops().into_iter().chain(r.next_hops).collect(),
                            None => r.next_hops,
                        };
                        if let Some(g) = Gateways::from_hops(&hops) {
                            v.insert(r.prefix, r.metric, g);
                        }
                    })
                    .await?;
                v
            }
        };
        if local != self.exclusions.local_addresses || connected != self.exclusions.connected {
            self.full_needed = true;
        }
        self.exclusions.local_addresses = local;
        self.exclusions.connected = connected;
        Ok(view)
    }
}
