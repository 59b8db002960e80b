//! Every Node's `spec.podCIDRs`, for the safe-install rule: without `--pod-route-allow`
//! only a prefix inside some Node's pod CIDR is installed.
//!
//! A watch of all Nodes reduced at once to their pod CIDRs; the union is published on a
//! watch channel once the initial list is in (`None` until then: nothing learned is
//! installed before it is known).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use futures::{StreamExt, TryStreamExt};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The union of every Node's pod CIDRs; `None` until the first list arrived.
pub type NodePodCidrs = Option<BTreeSet<IpNet>>;

/// A Node's `spec.podCIDRs` (and the older `spec.podCIDR`), the unparsable ones left out.
pub fn pod_cidrs_of(node: &Node) -> Vec<IpNet> {
    let Some(spec) = &node.spec else {
        return Vec::new();
    };
    spec.pod_cidrs
        .iter()
        .flatten()
        .chain(spec.pod_cidr.iter())
        .filter_map(|c| c.parse::<IpNet>().ok())
        .map(|n| n.trunc())
        .collect()
}

/// Watches every Node until `cancel`.
pub fn watch_node_pod_cidrs(
    client: kube::Client,
    cancel: CancellationToken,
) -> (watch::Receiver<NodePodCidrs>, JoinHandle<()>) {
    let (tx, rx) = watch::channel(None);
    let task = tokio::spawn(async move {
        let api: Api<Node> = Api::all(client);
        let mut stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut by_node: BTreeMap<String, Vec<IpNet>> = BTreeMap::new();
        let mut relist: Option<HashSet<String>> = None;
        let mut synced = false;
        loop {
            let ev = tokio::select! {
                () = cancel.cancelled() => return,
                ev = stream.try_next() => ev,
            };
            match ev {
                Ok(Some(Event::Init)) => relist = Some(HashSet::new()),
                Ok(Some(Event::InitApply(n) | Event::Apply(n))) => {
                    let name = n.metadata.name.clone().unwrap_or_default();
                    if let Some(seen) = &mut relist {
                        seen.insert(name.clone());
                    }
                    by_node.insert(name, pod_cidrs_of(&n));
                }
                Ok(Some(Event::Delete(n))) => {
                    by_node.remove(n.metadata.name.as_deref().unwrap_or_default());
                }
                Ok(Some(Event::InitDone)) => {
                    if let Some(seen) = relist.take() {
                        by_node.retain(|name, _| seen.contains(name));
                    }
                    synced = true;
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(watch = "nodes (pod CIDRs)", error = %e, "watch error (retrying with backoff)");
                    continue;
                }
            }
            if synced && relist.is_none() {
                let all: BTreeSet<IpNet> = by_node.values().flatten().copied().collect();
                tx.send_if_modified(|cur| {
                    let changed = cur.as_ref() != Some(&all);
                    if changed {
                        *cur = Some(all);
                    }
                    changed
                });
            }
        }
    });
    (rx, task)
}
