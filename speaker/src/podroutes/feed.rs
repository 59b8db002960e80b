//! Plugs the reconciler into the speaker daemon.
//!
//! The daemon keeps the learned routes itself ([`crate::learned::LearnedRoutes`], folded
//! from the BGP speaker's events) and publishes the whole table on a watch channel.
//! [`installer`] returns the [`PodRouteInstaller`] that `crate::Options` takes: it hands
//! every new table to the reconciler whole (level-triggered, so no event can be lost),
//! adds the node's own pod CIDRs and the LoadBalancer address space to the exclusions, and reports what is in the kernel
//! back for the status page.
//!
//! On shutdown (the feed's cancel token) our routes are removed: the BGP sessions that
//! justified them are being closed, which is the same as a session drop.

use std::collections::BTreeSet;

use ipnet::IpNet;
use tracing::{info, warn};

use super::{Learned, PodRoutes, PodRoutesHandle, PodRoutesOptions, Snapshot};
use crate::learned::{InstalledRoute, LearnedRoutes, PodRouteFeed, PodRouteInstaller};

/// The pod-route installer for `crate::Options::pod_route_installer`. `opts.exclusions`
/// should hold the LoadBalancer IPs/pools (the feed only carries our pod CIDRs).
pub fn installer(opts: PodRoutesOptions) -> PodRouteInstaller {
    Box::new(move |feed: PodRouteFeed| tokio::spawn(follow(opts, feed)))
}

async fn follow(opts: PodRoutesOptions, feed: PodRouteFeed) {
    let PodRouteFeed {
        mut learned,
        report,
        cancel,
    } = feed;
    let base = opts.exclusions.clone();
    let (routes, task) = PodRoutes::spawn(opts);
    let mut status = routes.subscribe();
    let first = learned.borrow_and_update().clone();
    push(&routes, &first, &base);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            changed = learned.changed() => {
                if changed.is_err() {
                    break;
                }
                let table = learned.borrow_and_update().clone();
                push(&routes, &table, &base);
            }
            changed = status.changed() => {
                if changed.is_err() {
                    warn!("pod route reconciler ended unexpectedly");
                    break;
                }
                let rows = to_report(&status.borrow_and_update());
                report.send_replace(rows);
            }
        }
    }
    match routes.stop(true).await {
        Ok(r) => info!(
            removed = r.applied,
            failed = r.failed,
            "pod routes removed at shutdown"
        ),
        Err(e) => warn!(error = %e, "pod routes could not be removed at shutdown"),
    }
    report.send_replace(to_report(&status.borrow()));
    if let Err(e) = task.await {
        warn!(error = %e, "pod route reconciler task failed");
    }
}

/// Hands the whole learned table and the exclusions to the reconciler.
fn push(routes: &PodRoutesHandle, table: &LearnedRoutes, base: &BTreeSet<IpNet>) {
    let mut exclusions = base.clone();
    exclusions.extend(table.local_pod_cidrs.iter().copied());
    exclusions.extend(table.load_balancer_prefixes.iter().copied());
    routes.set_exclusions(exclusions);
    let learned: Learned = table
        .routes
        .iter()
        .flat_map(|(prefix, by_peer)| by_peer.iter().map(|(peer, nh)| (*peer, *prefix, *nh)))
        .collect();
    routes.set_learned(learned);
}

/// The status page's rows: installed routes, and routes the kernel refused (with the
/// error and the next hops we wanted).
fn to_report(s: &Snapshot) -> Vec<InstalledRoute> {
    let error_for = |p: &IpNet| s.failed.iter().find(|f| f.0 == *p).map(|f| f.2.clone());
    let mut rows: Vec<InstalledRoute> = s
        .installed
        .iter()
        .map(|(prefix, hops)| InstalledRoute {
            prefix: *prefix,
            next_hops: hops.clone(),
            error: error_for(prefix),
        })
        .collect();
    for (prefix, hops, error) in &s.failed {
        if !hops.is_empty() && !rows.iter().any(|r| r.prefix == *prefix) {
            rows.push(InstalledRoute {
                prefix: *prefix,
                next_hops: hops.clone(),
                error: Some(error.clone()),
            });
        }
    }
    rows.sort_by_key(|r| r.prefix);
    rows
}
