//! The controller loop: watches Services and the configuration (the ConfigMap or the
//! `metallb.io` CRs, through `ferrolb_daemon::config_source`), decides with the
//! [`Reconciler`], writes with the [`Writer`], and only while holding the leader Lease.
//!
//! Level-triggered: every watch event only marks a Service key dirty; reconciling a key
//! recomputes its desired state from the cache and the allocator and writes the difference.
//! Startup (and every leadership gain) waits for the full list of Services and the ConfigMap,
//! restores every allocation shown in Service status, and only then assigns anything new.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferrolb_daemon::Identity;
use ferrolb_daemon::config_source::{self, ConfigState, Origin};
use ferrolb_daemon::ratelog::LogLimiter;
use ferrolb_daemon::rejection::{Failure, Kind};
use ferrolb_daemon::relist::Relist;
use futures::TryStreamExt;
use kube::Api;
use kube::runtime::watcher::{self, Event};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::allocator::PoolSet;
use crate::events::EventSink;
use crate::http::Health;
use crate::k8s::config::pools_from_config;
use crate::k8s::namespaces::{NamespaceCache, SlimNamespace};
use crate::k8s::pool_status::{PoolStatusWriter, Statuses};
use crate::k8s::slim::SlimService;
use crate::k8s::writer::{Submit, Writer};
use crate::leader::LeaderHandle;
use crate::metrics::{Metrics, PoolStat};
use crate::options::Options;
use crate::reconcile::{Decision, Desired, Reconciler, order_key, write_for};
use crate::view::{SvcView, key_of};

/// Keys reconciled per loop turn before watch events and write completions get a look in.
const BATCH: usize = 256;

/// Everything the loop owns.
pub(crate) struct Driver {
    opts: Arc<Options>,
    views: HashMap<String, SvcView>,
    /// Keys seen during a (re)list, to drop the ones that vanished meanwhile.
    relist: Relist,
    svc_synced: bool,
    cm_synced: bool,
    /// The newest configuration state (generation and input seen).
    config_state: ConfigState,
    /// `IPAddressPool.status` writes (CR configuration only).
    pool_status: Option<PoolStatusWriter>,
    /// The configuration in force (last good one).
    pools: Option<PoolSet>,
    /// Namespace labels (for `serviceAllocation.namespaceSelectors`).
    namespaces: NamespaceCache,
    rec: Option<Reconciler>,
    queue: VecDeque<String>,
    queued: HashSet<String>,
    writer: Writer,
    retry_tx: mpsc::UnboundedSender<String>,
    retry_rx: mpsc::UnboundedReceiver<String>,
    /// Failed attempts per Service since its last successful write.
    attempts: HashMap<String, u32>,
    /// Lines about write failures beyond the first per Service and error code.
    failure_log: LogLimiter,
    leader: LeaderHandle,
    events: EventSink,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    /// Service writes queued or running, read by the Event writer to yield to them.
    writes_busy: Arc<AtomicUsize>,
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        opts: Arc<Options>,
        client: kube::Client,
        identity: Identity,
        leader: LeaderHandle,
        events: EventSink,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        writes_busy: Arc<AtomicUsize>,
    ) -> Self {
        let (retry_tx, retry_rx) = mpsc::unbounded_channel();
        let writer = Writer::new(client, identity, opts.write_concurrency);
        Self {
            opts,
            views: HashMap::new(),
            relist: Relist::default(),
            svc_synced: false,
            cm_synced: false,
            config_state: ConfigState::default(),
            pool_status: None,
            pools: None,
            namespaces: NamespaceCache::default(),
            rec: None,
            queue: VecDeque::new(),
            queued: HashSet::new(),
            writer,
            retry_tx,
            retry_rx,
            attempts: HashMap::new(),
            failure_log: LogLimiter::new(Duration::from_secs(10)),
            leader,
            events,
            metrics,
            health,
            writes_busy,
        }
    }

    /// Run until `cancel`; then let running writes finish briefly.
    pub(crate) async fn run(mut self, client: kube::Client, cancel: CancellationToken) {
        let svc_api: Api<SlimService> = Api::all(client.clone());
        let ns_api: Api<SlimNamespace> = Api::all(client.clone());
        let mut ns_events =
            ferrolb_daemon::watch::watch(ns_api, watcher::Config::default(), "namespaces");
        let mut svc_events =
            ferrolb_daemon::watch::watch(svc_api, watcher::Config::default(), "services");
        let mut leader = self.leader.clone();
        let mut config: Option<watch::Receiver<ConfigState>> = None;
        if let Some(cfg) = self.opts.config_override.clone() {
            self.use_fixed_config(&cfg);
        } else {
            let mut opts =
                config_source::Options::new(&self.opts.namespace, &self.opts.config_name);
            opts.read_nodes = true;
            config = Some(config_source::spawn(
                client.clone(),
                opts,
                cancel.child_token(),
            ));
            self.pool_status = Some(PoolStatusWriter::spawn(
                client,
                &self.opts.namespace,
                self.writer.identity(),
                cancel.child_token(),
            ));
        }
        self.on_leader_change(leader.current());

        loop {
            let work = !self.queue.is_empty() && self.rec.is_some();
            tokio::select! {
                _ = cancel.cancelled() => break,
                is_leader = leader.changed() => self.on_leader_change(is_leader),
                ev = svc_events.try_next() => match ev {
                    Ok(Some(ev)) => self.on_service_event(ev),
                    Ok(None) => break,
                    // Logged (rate-limited) by the watch itself.
                    Err(_) => {
                        self.metrics.k8s.update_errors.inc();
                    }
                },
                Ok(()) = changed(&mut config) => {
                    let state = config.as_mut().map(|c| c.borrow_and_update().clone());
                    if let Some(state) = state {
                        self.on_config_state(state);
                    }
                }
                ev = ns_events.try_next() => match ev {
                    Ok(Some(ev)) => self.on_namespace_event(ev),
                    Ok(None) => break,
                    Err(e) => tracing::warn!(error = %e, "namespace watch error (retrying)"),
                },
                done = self.writer.next_done() => self.on_write_done(done),
                Some(key) = self.retry_rx.recv() => {
                    if self.rec.is_some() {
                        self.enqueue(key);
                    }
                }
                _ = std::future::ready(()), if work => self.process_batch(),
            }
            if self.rec.is_some() && self.leader.is_leader() {
                self.writer.dispatch();
            }
            let busy = self.writer.busy() + self.queue.len();
            self.writes_busy.store(busy, Ordering::Relaxed);
        }
        tracing::info!(busy = self.writer.busy(), "controller loop stopping");
        self.writer.drain(Duration::from_secs(5)).await;
    }

    fn enqueue(&mut self, key: String) {
        if self.queued.insert(key.clone()) {
            self.queue.push_back(key);
        }
    }

    /// Enqueue `keys` oldest Service first.
    fn enqueue_ordered(&mut self, keys: impl IntoIterator<Item = String>) {
        let mut ordered: Vec<((i128, String), String)> = keys
            .into_iter()
            .map(|k| {
                let ord = self
                    .views
                    .get(&k)
                    .map(order_key)
                    .unwrap_or((i128::MAX, k.clone()));
                (ord, k)
            })
            .collect();
        ordered.sort();
        for (_, k) in ordered {
            self.enqueue(k);
        }
    }

    fn enqueue_all(&mut self) {
        let keys: Vec<String> = self.views.keys().cloned().collect();
        self.enqueue_ordered(keys);
    }

    fn on_leader_change(&mut self, is_leader: bool) {
        self.health.leader.store(is_leader, Ordering::Relaxed);
        self.metrics.is_leader.set(i64::from(is_leader));
        if is_leader {
            // Events about the configuration were left to the leader before.
            self.publish_config_events();
            self.maybe_activate();
        } else if self.rec.is_some() {
            tracing::warn!("not leader any more: stopping all writes");
            self.deactivate();
        }
    }

    fn deactivate(&mut self) {
        self.rec = None;
        self.queue.clear();
        self.queued.clear();
        self.writer.abort_all();
        self.attempts.clear();
    }

    /// Start deciding once we lead, have every Service, and have a configuration.
    fn maybe_activate(&mut self) {
        // Namespace labels are waited for only when a pool selects namespaces by label, so a
        // cluster whose RBAC predates the Namespace watch keeps working with other configs.
        let needs_namespaces = self
            .pools
            .as_ref()
            .is_some_and(PoolSet::uses_namespace_selectors);
        let synced =
            self.svc_synced && self.cm_synced && (self.namespaces.synced || !needs_namespaces);
        self.health.synced.store(synced, Ordering::Relaxed);
        if self.rec.is_some() || !synced || !self.leader.is_leader() {
            return;
        }
        let Some(pools) = self.pools.clone() else {
            tracing::warn!(
                configmap = %key_of(&self.opts.namespace, &self.opts.config_name),
                "no valid configuration yet: not allocating anything"
            );
            return;
        };
        let mut rec = Reconciler::new(pools, self.opts.lb_class.clone());
        for (name, labels) in self.namespaces.iter() {
            rec.set_namespace(name, Some(labels.clone()));
        }
        let restored = rec.restore_all(self.views.values());
        tracing::info!(
            services = self.views.len(),
            restored,
            "restored existing allocations from Service status; now reconciling"
        );
        self.rec = Some(rec);
        self.enqueue_all();
        self.update_pool_metrics();
    }

    fn on_service_event(&mut self, ev: Event<SlimService>) {
        match ev {
            Event::Init => self.relist.start(),
            Event::InitApply(svc) => {
                let view = SvcView::from_service(&svc);
                let key = view.key();
                self.relist.saw(&key);
                self.upsert(key, view);
            }
            Event::InitDone => {
                if let Some(seen) = self.relist.finish() {
                    let gone: Vec<String> = self
                        .views
                        .keys()
                        .filter(|k| !seen.contains(*k))
                        .cloned()
                        .collect();
                    for key in gone {
                        self.remove(key);
                    }
                }
                if !self.svc_synced {
                    tracing::info!(
                        services = self.views.len(),
                        "initial list of Services received"
                    );
                }
                self.svc_synced = true;
                self.maybe_activate();
            }
            Event::Apply(svc) => {
                let view = SvcView::from_service(&svc);
                self.upsert(view.key(), view);
            }
            Event::Delete(svc) => {
                let view = SvcView::from_service(&svc);
                self.remove(view.key());
            }
        }
    }

    fn upsert(&mut self, key: String, view: SvcView) {
        if self.views.get(&key) == Some(&view) {
            return;
        }
        self.views.insert(key.clone(), view);
        if self.rec.is_some() {
            self.enqueue(key);
        }
    }

    fn remove(&mut self, key: String) {
        if self.views.remove(&key).is_some() && self.rec.is_some() {
            self.enqueue(key);
        }
    }

    /// A namespace's labels changed: Services in it may now belong to other pools.
    fn on_namespace_event(&mut self, ev: Event<SlimNamespace>) {
        let was_synced = self.namespaces.synced;
        let changes = self.namespaces.on_event(ev);
        if let Some(rec) = &mut self.rec {
            let touched: HashSet<String> = changes
                .into_iter()
                .filter_map(|(name, labels)| rec.set_namespace(&name, labels).then_some(name))
                .collect();
            if !touched.is_empty() {
                let keys: Vec<String> = self
                    .views
                    .values()
                    .filter(|v| touched.contains(&v.namespace))
                    .map(SvcView::key)
                    .collect();
                self.enqueue_ordered(keys);
            }
        }
        if !was_synced && self.namespaces.synced {
            self.maybe_activate();
        }
    }

    /// [`Options::config_override`]: the configuration is fixed, the ConfigMap is ignored.
    fn use_fixed_config(&mut self, cfg: &ferrolb_config::Config) {
        match pools_from_config(cfg) {
            Ok(pools) => {
                tracing::info!(
                    pools = pools.names().count(),
                    "using the configuration given in the options; ignoring the ConfigMap"
                );
                self.metrics.k8s.config_loaded.set(1);
                self.health.config_loaded.store(true, Ordering::Relaxed);
                self.pools = Some(pools);
            }
            Err(e) => {
                tracing::error!(error = %e, "the configuration given in the options is invalid")
            }
        }
        self.cm_synced = true;
    }

    /// A new configuration state: reload on a new generation, Events for a new input.
    fn on_config_state(&mut self, st: ConfigState) {
        self.metrics
            .k8s
            .config_stale
            .set(i64::from(st.stale.is_some()));
        let new_input = st.input != self.config_state.input;
        let new_generation = st.generation != self.config_state.generation;
        let was_synced = self.cm_synced;
        self.cm_synced = st.synced;
        self.config_state = st;
        if new_input && self.leader.is_leader() {
            self.publish_config_events();
        }
        if new_generation && let Some(cfg) = self.config_state.config.clone() {
            match pools_from_config(&cfg) {
                Ok(pools) => self.use_pools(pools),
                Err(e) => {
                    tracing::error!(error = %e, "configuration rejected by the allocator; keeping the last good one");
                    self.metrics.k8s.config_stale.set(1);
                }
            }
        } else if !was_synced && self.cm_synced {
            self.maybe_activate();
        }
        self.update_pool_metrics();
    }

    /// Warning Events on the objects of the newest input's errors and warnings.
    fn publish_config_events(&self) {
        let evs = config_source::events_for(
            &self.config_state,
            &self.opts.namespace,
            &self.opts.config_name,
        );
        for ev in evs {
            self.events.publish(ev);
        }
    }

    fn use_pools(&mut self, pools: PoolSet) {
        tracing::info!(
            source = self.config_state.origin.map_or("", Origin::as_str),
            configmap = %key_of(&self.opts.namespace, &self.opts.config_name),
            pools = pools.names().count(),
            "allocator configuration loaded"
        );
        self.metrics.k8s.config_loaded.set(1);
        self.health.config_loaded.store(true, Ordering::Relaxed);
        self.pools = Some(pools.clone());
        if let Some(rec) = &mut self.rec {
            let evicted = rec.set_pools(pools);
            if !evicted.is_empty() {
                tracing::warn!(
                    count = evicted.len(),
                    "config change invalidated IPs in use; re-allocating"
                );
            }
            self.enqueue_all();
        } else {
            self.maybe_activate();
        }
    }

    fn process_batch(&mut self) {
        for _ in 0..BATCH {
            let Some(key) = self.queue.pop_front() else {
                break;
            };
            self.queued.remove(&key);
            self.reconcile_one(key);
        }
        self.update_pool_metrics();
    }

    fn reconcile_one(&mut self, key: String) {
        let Some(rec) = &mut self.rec else {
            return;
        };
        let view = self.views.get(&key);
        let decision: Decision = rec.reconcile(&key, view);
        let pending: Vec<String> = if decision.freed {
            rec.pending().map(str::to_string).collect()
        } else {
            Vec::new()
        };
        for ev in decision.events {
            self.events.publish(ev);
        }
        match view {
            None => self.writer.forget(&key),
            Some(view) if decision.desired != Desired::Leave => {
                let op = write_for(view, &decision.desired);
                let (ns, name) = (view.namespace.clone(), view.name.clone());
                if let Submit::Expected(Some(delay)) =
                    self.writer.submit(&key, &ns, &name, op, decision.desired)
                {
                    self.retry_after(key.clone(), delay);
                }
            }
            Some(_) => {}
        }
        if !pending.is_empty() {
            self.enqueue_ordered(pending);
        }
    }

    fn on_write_done(&mut self, done: crate::k8s::writer::Done) {
        let e = match done.result {
            Ok(()) => {
                self.metrics.k8s.updates.inc_by(done.requests);
                if let Some(n) = self.attempts.remove(&done.key)
                    && n > 0
                {
                    tracing::info!(service = %done.key, failed_attempts = n, "service written after earlier failures");
                }
                return;
            }
            Err(e) => e,
        };
        self.metrics.k8s.update_errors.inc();
        let f = Failure::of(&e);
        let attempt = {
            let n = self.attempts.entry(done.key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let Some(delay) = f.retry_after(attempt) else {
            tracing::debug!(service = %done.key, "service gone before write");
            self.attempts.remove(&done.key);
            return;
        };
        // The allocation stays in the reconciler whatever the answer: the retry writes the
        // same IPs (or newer ones if the Service changed meanwhile).
        let first = attempt == 1;
        if first || self.failure_log.allow().is_some() {
            let level_error = matches!(f.kind, Kind::Invalid | Kind::Forbidden | Kind::Other);
            let ips = match &done.desired {
                Desired::Set(a) => format!("{:?}", a.ips),
                _ => "[]".to_string(),
            };
            if level_error {
                tracing::error!(service = %done.key, code = f.code, reason = %f.reason, detail = %f.message, attempt, ?delay, ips = %ips, "the API server rejected the Service write; keeping the allocation and retrying");
            } else {
                tracing::warn!(service = %done.key, code = f.code, reason = %f.reason, detail = %f.message, attempt, ?delay, ips = %ips, "writing the Service failed; keeping the allocation and retrying");
            }
        }
        self.retry_after(done.key, delay);
    }

    fn retry_after(&self, key: String, delay: Duration) {
        let tx = self.retry_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(key);
        });
    }

    fn update_pool_metrics(&self) {
        if let Some(rec) = &self.rec {
            let stats: Vec<PoolStat> = rec
                .pool_stats()
                .into_iter()
                .map(|s| PoolStat {
                    total: s.addresses_total_f64(),
                    in_use: s.in_use as f64,
                    services: s.services_allocated as f64,
                    pool: s.pool,
                })
                .collect();
            self.metrics.set_pool_stats(&stats);
        }
        self.update_pool_status();
    }

    /// Hands the IPAddressPool statuses to their writer: leader only, CR configuration only.
    fn update_pool_status(&self) {
        let (Some(writer), Some(rec), Some(cfg)) =
            (&self.pool_status, &self.rec, &self.config_state.config)
        else {
            return;
        };
        if self.config_state.origin != Some(Origin::Resources) || !self.leader.is_leader() {
            return;
        }
        let statuses: Statuses = rec
            .pool_stats()
            .into_iter()
            .filter_map(|s| {
                let pool = cfg.pools.iter().find(|p| p.name == s.pool)?;
                let status =
                    ferrolb_crds::status::pool_status_of_counts(pool, s.in_use_ipv4, s.in_use_ipv6);
                Some((s.pool, status))
            })
            .collect();
        writer.set(statuses);
    }
}

/// The next change of the configuration state (never, without a source).
async fn changed(rx: &mut Option<watch::Receiver<ConfigState>>) -> Result<(), ()> {
    match rx {
        Some(rx) => rx.changed().await.map_err(|_| ()),
        None => std::future::pending().await,
    }
}
