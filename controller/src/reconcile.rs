//! The controller's decisions, with no I/O: given the cached Services and the allocator,
//! what should each Service's status and pool annotation be, and which Events to emit.
//!
//! The Kubernetes driver ([`crate::k8s`]) feeds Services in and turns the returned
//! [`Decision`]s into API writes. Everything here is synchronous and deterministic, so the
//! ordering rules (restore every existing allocation before assigning anything new; oldest
//! pending Service first) are tested without a cluster.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use crate::allocator::{
    AllocError, Allocator, Assignment, ErrorKind, Labels, PoolSet, PoolStats, Request,
};
use crate::view::SvcView;
use ferrolb_daemon::events::spec::{EventSpec, Regarding, Severity};

/// What a Service's managed fields should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Desired {
    /// Not ours: write nothing.
    Leave,
    /// No IP: empty `status.loadBalancer` and no pool annotation.
    Clear,
    /// These IPs from this pool.
    Set(Assignment),
}

/// The outcome of reconciling one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What the Service should look like.
    pub desired: Desired,
    /// Events to publish.
    pub events: Vec<EventSpec>,
    /// Addresses were freed: pending Services deserve another try.
    pub freed: bool,
}

/// The write needed to move a Service from what it shows to [`Desired`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WriteOp {
    /// New `status.loadBalancer.ingress` IPs (empty = clear), if it must change.
    pub status: Option<Vec<String>>,
    /// New pool annotation (`None` inside = remove), if it must change.
    pub annotation: Option<Option<String>>,
    /// Remove the `metallb.io/` spelling of the pool annotation too.
    pub remove_io_annotation: bool,
}

impl WriteOp {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.status.is_none() && self.annotation.is_none() && !self.remove_io_annotation
    }
}

/// The write that takes `view` to `desired` (empty when it already matches).
pub fn write_for(view: &SvcView, desired: &Desired) -> WriteOp {
    let mut op = WriteOp::default();
    match desired {
        Desired::Leave => {}
        Desired::Clear => {
            if !view.status_ips.is_empty() {
                op.status = Some(Vec::new());
            }
            if view.pool_annotation.is_some() {
                op.annotation = Some(None);
            }
            op.remove_io_annotation = view.has_io_pool_annotation;
        }
        Desired::Set(a) => {
            let want: Vec<String> = a.ips.iter().map(IpAddr::to_string).collect();
            if view.status_ips != want {
                op.status = Some(want);
            }
            if view.pool_annotation.as_deref() != Some(a.pool.as_str()) {
                op.annotation = Some(Some(a.pool.clone()));
            }
        }
    }
    op
}

/// The decision state: the allocator plus what is needed to word events once.
pub struct Reconciler {
    alloc: Allocator,
    lb_class: Option<String>,
    /// Handled Services without IPs, retried when addresses free up.
    pending: HashSet<String>,
    /// Last failure message per Service, so a retry that fails the same way stays quiet.
    last_failure: HashMap<String, String>,
    /// Services whose IPs a config change invalidated, not yet re-allocated.
    evicted: HashSet<String>,
    /// Labels of every namespace seen, for pools whose `serviceAllocation` selects
    /// namespaces by label.
    namespaces: HashMap<String, Labels>,
}

fn regarding(view: &SvcView) -> Regarding {
    Regarding {
        kind: "Service",
        namespace: view.namespace.clone(),
        name: view.name.clone(),
        uid: view.uid.clone(),
    }
}

fn event(view: &SvcView, severity: Severity, reason: &'static str, message: String) -> EventSpec {
    EventSpec {
        regarding: regarding(view),
        severity,
        reason,
        message,
    }
}

/// Go's `%q` of a `[]string`, as in MetalLB's `Assigned IP ["1.2.3.4"]`.
fn quoted_list(ips: &[IpAddr]) -> String {
    let inner: Vec<String> = ips.iter().map(|ip| format!("\"{ip}\"")).collect();
    format!("[{}]", inner.join(" "))
}

/// Sort key: oldest Service first, then by key, so the order is deterministic.
pub fn order_key(view: &SvcView) -> (i128, String) {
    (
        view.created.map(|t| t.as_nanosecond()).unwrap_or(i128::MAX),
        view.key(),
    )
}

impl Reconciler {
    /// A reconciler over `pools` with nothing allocated yet.
    pub fn new(pools: PoolSet, lb_class: Option<String>) -> Self {
        Self {
            alloc: Allocator::new(pools),
            lb_class,
            pending: HashSet::new(),
            last_failure: HashMap::new(),
            evicted: HashSet::new(),
            namespaces: HashMap::new(),
        }
    }

    /// Records the labels of namespace `name` (`None`: it is gone). Returns whether the
    /// Services in it need reconciling: its labels changed (or it is new) and some pool
    /// selects namespaces by label.
    pub fn set_namespace(&mut self, name: &str, labels: Option<Labels>) -> bool {
        let changed = match labels {
            Some(l) => self.namespaces.insert(name.to_string(), l.clone()) != Some(l),
            None => self.namespaces.remove(name).is_some(),
        };
        changed && self.alloc.pools().uses_namespace_selectors()
    }

    /// The Service's allocator request with its namespace's labels.
    fn request_for(&self, view: &SvcView) -> Result<Request, String> {
        let mut r = view.request.clone()?;
        r.namespace_labels = self
            .namespaces
            .get(&view.namespace)
            .cloned()
            .unwrap_or_default();
        Ok(r)
    }

    /// Why a config change took the Service's IPs away, for its event.
    fn eviction_reason(&self, view: &SvcView) -> String {
        if let (Ok(r), Some(ips)) = (self.request_for(view), view.parsed_status_ips())
            && let Err(e @ AllocError::PoolNotForService { .. }) =
                self.alloc.check_allowed(&r, &ips)
        {
            return e.to_string();
        }
        "the IP is no longer in the configured pools".to_string()
    }

    /// Read access to the allocator (tests, metrics).
    pub fn allocator(&self) -> &Allocator {
        &self.alloc
    }

    /// Per-pool numbers for the metrics.
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        self.alloc.pool_stats()
    }

    /// Keys of handled Services that have no IP yet.
    pub fn pending(&self) -> impl Iterator<Item = &str> {
        self.pending.iter().map(String::as_str)
    }

    /// Step 1 after start (and after every leadership gain): record every IP already in a
    /// Service status, oldest Service first, *before* anything new is assigned. A Service
    /// whose status cannot be restored (IP outside the pools, or a duplicate of an older
    /// Service's IP) is left to [`Reconciler::reconcile`], which re-allocates it with an event.
    /// Returns how many Services were restored.
    pub fn restore_all<'a>(&mut self, views: impl IntoIterator<Item = &'a SvcView>) -> usize {
        let mut handled: Vec<&SvcView> = views
            .into_iter()
            .filter(|v| v.handled(self.lb_class.as_deref()) && !v.status_ips.is_empty())
            .collect();
        handled.sort_by_cached_key(|v| order_key(v));
        let mut restored = 0;
        for v in handled {
            if self.try_restore(v).is_ok() {
                restored += 1;
            }
        }
        restored
    }

    fn try_restore(&mut self, view: &SvcView) -> Result<Assignment, String> {
        let key = view.key();
        let Some(ips) = view.parsed_status_ips() else {
            return Err(format!(
                "status IPs {:?} are not valid IPs",
                view.status_ips
            ));
        };
        // A malformed request still holds its IPs: keep them out of other hands.
        let req = self
            .request_for(view)
            .unwrap_or_else(|_| Request::new(key.clone()));
        match self.alloc.restore(req, &ips) {
            Ok(a) => {
                tracing::debug!(service = %key, pool = %a.pool, ips = ?a.ips, "restored allocation");
                Ok(a)
            }
            Err(e) => {
                tracing::info!(service = %key, error = %e, "cannot restore allocation from status");
                Err(e.to_string())
            }
        }
    }

    /// A config change: swap the pools. Services whose IPs are no longer valid are released
    /// (each gets a Warning event when re-allocated); the caller reconciles every Service.
    pub fn set_pools(&mut self, pools: PoolSet) -> Vec<String> {
        let evicted = self.alloc.set_pools(pools);
        self.evicted.extend(evicted.iter().cloned());
        evicted
    }

    /// Reconcile one Service. `view` is `None` when the Service was deleted.
    pub fn reconcile(&mut self, key: &str, view: Option<&SvcView>) -> Decision {
        let Some(view) = view else {
            self.pending.remove(key);
            self.last_failure.remove(key);
            self.evicted.remove(key);
            let freed = self.alloc.release(key).is_some();
            if freed {
                tracing::info!(service = %key, "service deleted, IP released");
            }
            return Decision {
                desired: Desired::Leave,
                events: Vec::new(),
                freed,
            };
        };
        if !view.handled(self.lb_class.as_deref()) {
            return self.reconcile_unhandled(key, view);
        }
        if self.alloc.pools().uses_namespace_selectors()
            && !self.namespaces.contains_key(&view.namespace)
        {
            // The namespace's watch event has not arrived yet: deciding now could pick a
            // fallback pool the Service would then keep. Its arrival reconciles the Service.
            tracing::debug!(service = %key, "namespace labels not known yet, waiting");
            return Decision {
                desired: self
                    .alloc
                    .assignment(key)
                    .map_or(Desired::Leave, Desired::Set),
                events: Vec::new(),
                freed: false,
            };
        }
        let mut events = Vec::new();
        let mut freed = false;

        // A Service showing IPs we do not hold (new to us, or restore failed at start):
        // claim them if they are valid, else say we re-allocate.
        let evicted = self.evicted.remove(key);
        if self.alloc.assignment(key).is_none() && !view.status_ips.is_empty() {
            let why = if evicted {
                Err(self.eviction_reason(view))
            } else {
                self.try_restore(view)
            };
            if let Err(why) = why {
                events.push(event(
                    view,
                    Severity::Warning,
                    "ClearAssignment",
                    format!(
                        "current IP for \"{key}\" not allowed by config, will attempt for new IP assignment: {why}"
                    ),
                ));
            }
        }
        let before = self.alloc.assignment(key);

        let request = match self.request_for(view) {
            Ok(r) => r,
            Err(msg) => {
                let message = format!("invalid requested loadbalancer IPs: {msg}");
                self.note_failure(view, "LoadBalancerFailed", message, &mut events);
                self.pending.remove(key);
                let desired = before.map_or(Desired::Clear, Desired::Set);
                return Decision {
                    desired,
                    events,
                    freed,
                };
            }
        };
        // The pool it holds from no longer selects it (its labels, its namespace's labels or
        // the pool's serviceAllocation changed): say so, as MetalLB does, before moving it.
        if let Some(b) = &before
            && let Err(e @ AllocError::PoolNotForService { .. }) =
                self.alloc.check_allowed(&request, &b.ips)
        {
            events.push(event(
                view,
                Severity::Warning,
                "ClearAssignment",
                format!(
                    "current IP for \"{key}\" not allowed by config, will attempt for new IP assignment: {e}"
                ),
            ));
        }
        match self.alloc.assign(request) {
            Ok(a) => {
                self.pending.remove(key);
                self.last_failure.remove(key);
                if let Some(b) = &before
                    && b.ips.iter().any(|ip| !a.ips.contains(ip))
                {
                    freed = true;
                }
                if before.as_ref() != Some(&a) {
                    tracing::info!(service = %key, pool = %a.pool, ips = ?a.ips, "IP assigned");
                    events.push(event(
                        view,
                        Severity::Normal,
                        "IPAllocated",
                        format!("Assigned IP {}", quoted_list(&a.ips)),
                    ));
                }
                Decision {
                    desired: Desired::Set(a),
                    events,
                    freed,
                }
            }
            Err(e) => {
                let now = self.alloc.assignment(key);
                if before.is_some() && now.is_none() {
                    freed = true;
                }
                self.fail(view, &e, &mut events);
                Decision {
                    desired: now.map_or(Desired::Clear, Desired::Set),
                    events,
                    freed,
                }
            }
        }
    }

    fn fail(&mut self, view: &SvcView, e: &AllocError, events: &mut Vec<EventSpec>) {
        let key = view.key();
        if e.kind() == ErrorKind::InvalidRequest {
            self.pending.remove(&key);
            let message = format!("invalid requested loadbalancer IPs: {e}");
            self.note_failure(view, "LoadBalancerFailed", message, events);
        } else {
            self.pending.insert(key.clone());
            let message = format!("Failed to allocate IP for \"{key}\": {e}");
            self.note_failure(view, "AllocationFailed", message, events);
        }
    }

    /// Emit a Warning unless the last failure of this Service said the same.
    fn note_failure(
        &mut self,
        view: &SvcView,
        reason: &'static str,
        message: String,
        events: &mut Vec<EventSpec>,
    ) {
        let key = view.key();
        if self.last_failure.get(&key) == Some(&message) {
            return;
        }
        tracing::warn!(service = %key, reason, %message, "allocation failed");
        self.last_failure.insert(key, message.clone());
        events.push(event(view, Severity::Warning, reason, message));
    }

    fn reconcile_unhandled(&mut self, key: &str, view: &SvcView) -> Decision {
        self.pending.remove(key);
        self.last_failure.remove(key);
        self.evicted.remove(key);
        let released = self.alloc.release(key);
        let freed = released.is_some();
        // Only touch Services we manage(d): another implementation may own a class.
        let ours = freed || view.pool_annotation.is_some() || view.has_io_pool_annotation;
        if !ours {
            return Decision {
                desired: Desired::Leave,
                events: Vec::new(),
                freed,
            };
        }
        let mut events = Vec::new();
        if view.has_lb_state() {
            let why = if view.is_load_balancer {
                "service's loadBalancerClass is not handled by this controller"
            } else {
                "service is no longer of type LoadBalancer"
            };
            tracing::info!(service = %key, why, "clearing assignment");
            events.push(event(
                view,
                Severity::Normal,
                "ClearAssignment",
                format!("{why}, clearing IP assignment"),
            ));
        }
        Decision {
            desired: Desired::Clear,
            events,
            freed,
        }
    }
}

/// Keys of `views` in processing order (oldest first).
pub fn ordered_keys<'a>(views: impl IntoIterator<Item = &'a SvcView>) -> Vec<String> {
    let mut v: Vec<(i128, String)> = views.into_iter().map(order_key).collect();
    v.sort();
    v.into_iter().map(|(_, k)| k).collect()
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
