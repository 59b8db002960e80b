//! `IPAddressPool.status` writes: the assigned and available counts per family, as MetalLB
//! 0.15 shows them (`kubectl get ipaddresspools` prints them).
//!
//! The driver hands over the statuses it wants ([`PoolStatusWriter::set`], a watch channel:
//! the newest set wins); one task writes the pools whose status differs from what it last
//! wrote, with a merge patch of the `status` subresource, at most one round per
//! [`ROUND`], so an assignment burst costs one write per pool, not one per Service. A failed
//! write is retried next round (logged rate-limited). Only the leader hands statuses over,
//! and only while the configuration comes from the CRs.

use std::collections::BTreeMap;
use std::time::Duration;

use ferrolb_crds::types::{IPAddressPool, IPAddressPoolStatus};
use ferrolb_daemon::Identity;
use ferrolb_daemon::ratelog::LogLimiter;
use kube::Api;
use kube::api::Patch;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Shortest time between two write rounds.
pub const ROUND: Duration = Duration::from_millis(250);

/// Statuses wanted, by pool name.
pub type Statuses = BTreeMap<String, IPAddressPoolStatus>;

/// The driver's handle.
pub(crate) struct PoolStatusWriter {
    tx: watch::Sender<Statuses>,
}

impl PoolStatusWriter {
    /// Starts the writing task for pools in `namespace`.
    pub(crate) fn spawn(
        client: kube::Client,
        namespace: &str,
        identity: &Identity,
        cancel: CancellationToken,
    ) -> Self {
        let (tx, rx) = watch::channel(Statuses::new());
        let api: Api<IPAddressPool> = Api::namespaced(client, namespace);
        let params = identity.patch_params();
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = write_loop(api, params, rx) => {}
            }
        });
        PoolStatusWriter { tx }
    }

    /// The statuses wanted now (pools not named are left alone).
    pub(crate) fn set(&self, statuses: Statuses) {
        self.tx.send_if_modified(|cur| {
            if *cur == statuses {
                false
            } else {
                *cur = statuses;
                true
            }
        });
    }
}

async fn write_loop(
    api: Api<IPAddressPool>,
    params: kube::api::PatchParams,
    mut rx: watch::Receiver<Statuses>,
) {
    let mut written = Statuses::new();
    let mut log = LogLimiter::new(Duration::from_secs(30));
    let mut retry = false;
    loop {
        if !retry && rx.changed().await.is_err() {
            return;
        }
        let wanted = rx.borrow_and_update().clone();
        retry = false;
        for (name, status) in &wanted {
            if written.get(name) == Some(status) {
                continue;
            }
            let patch = Patch::Merge(serde_json::json!({ "status": status }));
            match api.patch_status(name, &params, &patch).await {
                Ok(_) => {
                    tracing::debug!(pool = %name, ?status, "IPAddressPool status written");
                    written.insert(name.clone(), status.clone());
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    // Deleted meanwhile: the next configuration drops it.
                    written.remove(name);
                }
                Err(e) => {
                    if log.allow().is_some() {
                        tracing::warn!(pool = %name, error = %e, "writing the IPAddressPool status failed; retrying");
                    }
                    retry = true;
                }
            }
        }
        written.retain(|n, _| wanted.contains_key(n));
        tokio::time::sleep(if retry { Duration::from_secs(1) } else { ROUND }).await;
    }
}
