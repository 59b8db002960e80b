//! Service writes: bounded concurrency, one write per Service at a time, and
//! "expectations" so a stale watch event does not trigger a duplicate write.
//!
//! Decisions are made serially by the loop; this only carries them out. With 10,000 pending
//! Services a write per Service done one after the other would take far too long, so up to
//! `concurrency` writes run at once (as spawned tasks, so they progress while the loop
//! decides). Two writes to the same Service never overlap: a newer decision waits until the
//! older write finished, so they cannot land out of order.
//!
//! Each decision is **one** merge patch of the `status` subresource carrying both the
//! ingress IPs and the pool annotation: the API server applies metadata changes made
//! through `/status` (its status strategy only resets `spec`), so status and annotation
//! change together, atomically, at the cost of one request instead of two.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use ferrolb_daemon::Identity;
use kube::Api;
use kube::api::Patch;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::k8s::slim::SlimService;
use crate::reconcile::{Desired, WriteOp};
use crate::view::{ANN_ALLOCATED_FROM_POOL, ANN_ALLOCATED_FROM_POOL_IO};

/// After a write succeeded, how long a stale view showing the old state is ignored.
const EXPECTATION_WINDOW: Duration = Duration::from_secs(5);

/// The result of one finished write.
pub struct Done {
    /// `namespace/name`.
    pub key: String,
    /// What was written.
    pub desired: Desired,
    /// Number of API requests made.
    pub requests: u64,
    /// Outcome.
    pub result: Result<(), kube::Error>,
}

struct Expectation {
    desired: Desired,
    completed: Option<Instant>,
}

/// What the loop should do about a decision.
#[derive(Debug, PartialEq, Eq)]
pub enum Submit {
    /// Queued for writing.
    Queued,
    /// Nothing to write.
    UpToDate,
    /// The same write is in flight or just landed; re-check after this delay.
    Expected(Option<Duration>),
}

/// The write queue.
pub struct Writer {
    client: kube::Client,
    identity: Identity,
    concurrency: usize,
    pending: HashMap<String, (String, String, WriteOp, Desired)>,
    order: VecDeque<String>,
    in_flight: HashSet<String>,
    expect: HashMap<String, Expectation>,
    tasks: JoinSet<Done>,
}

impl Writer {
    /// A writer with `concurrency` writes in flight at most.
    /// Who writes (field manager, user agent).
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn new(client: kube::Client, identity: Identity, concurrency: usize) -> Self {
        Self {
            client,
            identity,
            concurrency: concurrency.max(1),
            pending: HashMap::new(),
            order: VecDeque::new(),
            in_flight: HashSet::new(),
            expect: HashMap::new(),
            tasks: JoinSet::new(),
        }
    }

    /// Writes queued or running.
    pub fn busy(&self) -> usize {
        self.pending.len() + self.in_flight.len()
    }

    /// Queue the write `op` (computed from the Service's cached view) towards `desired`.
    pub fn submit(
        &mut self,
        key: &str,
        namespace: &str,
        name: &str,
        op: WriteOp,
        desired: Desired,
    ) -> Submit {
        if op.is_empty() {
            // The cache shows the desired state: our earlier write (if any) has landed.
            self.expect.remove(key);
            self.pending.remove(key);
            return Submit::UpToDate;
        }
        if let Some(exp) = self.expect.get(key)
            && exp.desired == desired
        {
            match exp.completed {
                None => return Submit::Expected(None),
                Some(t) if t.elapsed() < EXPECTATION_WINDOW => {
                    return Submit::Expected(Some(EXPECTATION_WINDOW.saturating_sub(t.elapsed())));
                }
                Some(_) => {}
            }
        }
        self.expect.insert(
            key.to_string(),
            Expectation {
                desired: desired.clone(),
                completed: None,
            },
        );
        if self
            .pending
            .insert(
                key.to_string(),
                (namespace.to_string(), name.to_string(), op, desired),
            )
            .is_none()
        {
            self.order.push_back(key.to_string());
        }
        Submit::Queued
    }

    /// The Service is gone: drop anything queued for it.
    pub fn forget(&mut self, key: &str) {
        self.pending.remove(key);
        self.expect.remove(key);
    }

    /// Start queued writes up to the concurrency limit. Call only while leader.
    pub fn dispatch(&mut self) {
        let mut blocked = Vec::new();
        while self.tasks.len() < self.concurrency {
            let Some(key) = self.order.pop_front() else {
                break;
            };
            if self.in_flight.contains(&key) {
                blocked.push(key);
                continue;
            }
            let Some((ns, name, op, desired)) = self.pending.remove(&key) else {
                continue;
            };
            self.in_flight.insert(key.clone());
            let api: Api<SlimService> = Api::namespaced(self.client.clone(), &ns);
            let identity = self.identity.clone();
            self.tasks.spawn(async move {
                let (requests, result) = write(&api, &identity, &name, &op).await;
                Done {
                    key,
                    desired,
                    requests,
                    result,
                }
            });
        }
        // Keep their place at the front: they go as soon as the running write ends.
        for key in blocked.into_iter().rev() {
            self.order.push_front(key);
        }
    }

    /// Wait for the next finished write (pending forever when none runs).
    pub async fn next_done(&mut self) -> Done {
        loop {
            match self.tasks.join_next().await {
                Some(Ok(done)) => {
                    self.in_flight.remove(&done.key);
                    match &done.result {
                        Ok(()) => {
                            if let Some(exp) = self.expect.get_mut(&done.key)
                                && exp.desired == done.desired
                            {
                                exp.completed = Some(Instant::now());
                            }
                        }
                        Err(_) => {
                            self.expect.remove(&done.key);
                        }
                    }
                    return done;
                }
                Some(Err(e)) => {
                    // A panicked or aborted task; its key stays in `in_flight` only if we
                    // cannot tell which it was, so clear by rebuilding below.
                    tracing::error!(error = %e, "write task failed");
                    if self.tasks.is_empty() {
                        self.in_flight.clear();
                    }
                }
                None => std::future::pending::<()>().await,
            }
        }
    }

    /// Leadership lost or shutdown: cancel everything, forget all expectations.
    pub fn abort_all(&mut self) {
        self.tasks.abort_all();
        self.tasks.detach_all();
        self.pending.clear();
        self.order.clear();
        self.in_flight.clear();
        self.expect.clear();
    }

    /// Let running writes finish (at most `timeout`), queue nothing new.
    pub async fn drain(&mut self, timeout: Duration) {
        self.pending.clear();
        self.order.clear();
        let _ = tokio::time::timeout(timeout, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        self.abort_all();
    }
}

/// The merge patch of the `status` subresource for `op` (ingress IPs and pool
/// annotation), or `None` when there is nothing to write.
pub fn patch_for(op: &WriteOp) -> Option<Value> {
    let mut patch = serde_json::Map::new();
    if op.annotation.is_some() || op.remove_io_annotation {
        let mut anns = serde_json::Map::new();
        if let Some(value) = &op.annotation {
            anns.insert(
                ANN_ALLOCATED_FROM_POOL.to_string(),
                value.clone().map_or(Value::Null, Value::String),
            );
        }
        if op.remove_io_annotation {
            anns.insert(ANN_ALLOCATED_FROM_POOL_IO.to_string(), Value::Null);
        }
        patch.insert("metadata".into(), json!({ "annotations": anns }));
    }
    if let Some(ips) = &op.status {
        let ingress = if ips.is_empty() {
            Value::Null
        } else {
            Value::Array(ips.iter().map(|ip| json!({ "ip": ip })).collect())
        };
        patch.insert(
            "status".into(),
            json!({ "loadBalancer": { "ingress": ingress } }),
        );
    }
    (!patch.is_empty()).then_some(Value::Object(patch))
}

/// Carry out `op` in one request.
async fn write(
    api: &Api<SlimService>,
    identity: &Identity,
    name: &str,
    op: &WriteOp,
) -> (u64, Result<(), kube::Error>) {
    let Some(patch) = patch_for(op) else {
        return (0, Ok(()));
    };
    let result = api
        .patch_status(name, &identity.patch_params(), &Patch::Merge(&patch))
        .await
        .map(drop);
    (1, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_patch_carries_status_and_annotation() {
        let op = WriteOp {
            status: Some(vec!["10.0.0.1".into()]),
            annotation: Some(Some("p".into())),
            remove_io_annotation: false,
        };
        assert_eq!(
            patch_for(&op),
            Some(json!({
                "metadata": {"annotations": {ANN_ALLOCATED_FROM_POOL: "p"}},
                "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}
            }))
        );
        let clear = WriteOp {
            status: Some(vec![]),
            annotation: Some(None),
            remove_io_annotation: true,
        };
        assert_eq!(
            patch_for(&clear),
            Some(json!({
                "metadata": {"annotations": {
                    ANN_ALLOCATED_FROM_POOL: null, ANN_ALLOCATED_FROM_POOL_IO: null}},
                "status": {"loadBalancer": {"ingress": null}}
            }))
        );
        let only_status = WriteOp {
            status: Some(vec!["10.0.0.2".into()]),
            ..WriteOp::default()
        };
        assert_eq!(
            patch_for(&only_status),
            Some(json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.2"}]}}}))
        );
        assert_eq!(patch_for(&WriteOp::default()), None);
    }
}
