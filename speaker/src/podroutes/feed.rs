//! Plugs the reconciler into the speaker daemon.
//!
//! [`installer`] returns the [`PodRouteInstaller`] that `crate::Options` takes: it hands
//! the BGP speaker's learned-route feed to the reconciler as it is (the one path learned
//! routes take, in the daemon and in the tests), turns the daemon's small
//! [`PodRouteContext`] and the Nodes' pod CIDRs into the reconciler's [`Inputs`], and
//! reports what is in the kernel back for the status page.
//!
//! On shutdown (the feed's cancel token) our routes are removed: the BGP sessions that
//! justified them are being closed, which is the same as a session drop. Except on a
//! restart (`--on-sigterm restart`, [`PodRouteFeed::keep_routes_on_stop`]): then, as when
//! a speaker is killed, they stay and the successor adopts them (see the module doc of
//! [`super`]), so this node's pods keep reaching the others while the speaker restarts.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ipnet::IpNet;
use tracing::{info, warn};

use super::nodes::NodePodCidrs;
use super::{Inputs, PodRoutes, PodRoutesHandle, PodRoutesOptions, Snapshot};
use crate::learned::{
    InstalledRoute, PodRouteContext, PodRouteFeed, PodRouteInstaller, PodRouteReport,
};

/// The pod-route installer for `crate::Options::pod_route_installer`. `opts.exclusions`
/// should hold the LoadBalancer IPs/pools (the feed only carries our pod CIDRs).
pub fn installer(opts: PodRoutesOptions) -> PodRouteInstaller {
    Box::new(move |feed: PodRouteFeed| tokio::spawn(follow(opts, feed)))
}

async fn follow(opts: PodRoutesOptions, feed: PodRouteFeed) {
    let PodRouteFeed {
        routes: learned,
        mut context,
        mut node_pod_cidrs,
        report,
        cancel,
        keep_routes_on_stop,
    } = feed;
    let base = opts.exclusions.clone();
    let (routes, task) = PodRoutes::spawn(opts, learned);
    let mut status = routes.subscribe();
    push(
        &routes,
        &context.borrow_and_update(),
        &node_pod_cidrs.borrow_and_update(),
        &base,
    );
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            changed = context.changed() => {
                if changed.is_err() {
                    break;
                }
                push(&routes, &context.borrow_and_update(), &node_pod_cidrs.borrow(), &base);
            }
            changed = node_pod_cidrs.changed() => {
                if changed.is_err() {
                    break;
                }
                push(&routes, &context.borrow(), &node_pod_cidrs.borrow_and_update(), &base);
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
    match routes.stop(!keep_routes_on_stop).await {
        Ok(_) if keep_routes_on_stop => {
            info!("pod routes left in the kernel for the next instance (restart)");
        }
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

/// Hands the daemon's context to the reconciler. Without the Nodes' pod CIDRs (not
/// listed yet) nothing is allowed without an allow-list: an empty set, not "no rule".
fn push(
    routes: &PodRoutesHandle,
    ctx: &PodRouteContext,
    node_pod_cidrs: &NodePodCidrs,
    base: &BTreeSet<IpNet>,
) {
    let mut exclusions = base.clone();
    exclusions.extend(ctx.local_pod_cidrs.iter().copied());
    exclusions.extend(ctx.load_balancer_prefixes.iter().copied());
    routes.set_inputs(Inputs {
        exclusions,
        pod_cidrs: Some(node_pod_cidrs.clone().unwrap_or_default()),
        peers: ctx.peers.clone(),
        expected_peers: ctx.peers_known.then(|| ctx.peers.clone()),
        complete: ctx.peers_known && node_pod_cidrs.is_some(),
    });
}

/// The status page's rows: installed routes, and routes the kernel refused (with the
/// error and the next hops we wanted); refusals counted per reason.
fn to_report(s: &Snapshot) -> PodRouteReport {
    let errors: HashMap<IpNet, &String> = s.failed.iter().map(|f| (f.0, &f.2)).collect();
    let mut rows: Vec<InstalledRoute> = s
        .installed
        .iter()
        .map(|(prefix, hops)| InstalledRoute {
            prefix: *prefix,
            next_hops: hops.clone(),
            error: errors.get(prefix).map(|e| (*e).clone()),
        })
        .collect();
    let installed: BTreeSet<IpNet> = s.installed.iter().map(|r| r.0).collect();
    for (prefix, hops, error) in &s.failed {
        if !hops.is_empty() && !installed.contains(prefix) {
            rows.push(InstalledRoute {
                prefix: *prefix,
                next_hops: hops.clone(),
                error: Some(error.clone()),
            });
        }
    }
    rows.sort_by_key(|r| r.prefix);
    let refused: BTreeMap<String, usize> = s
        .refused
        .iter()
        .map(|(k, v)| ((*k).to_string(), *v))
        .collect();
    PodRouteReport {
        routes: rows,
        installed_count: s.installed_count,
        refused,
        learned_prefixes: s.learned_prefixes,
    }
}
