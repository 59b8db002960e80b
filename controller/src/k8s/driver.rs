//! The controller loop: watches Services and the ConfigMap, decides with the
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
use ferrolb_daemon::ratelog::LogLimiter;
use ferrolb_daemon::rejection::{Failure, Kind};
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::allocator::PoolSet;
use crate::events::{EventSink, EventSpec, Regarding, Severity};
use crate::http::Health;
use crate::k8s::config::pools_from_text;
use crate::k8s::service::{SvcView, key_of};
use crate::k8s::slim::SlimService;
use crate::k8s::writer::{Submit, Writer};
use crate::leader::LeaderHandle;
use crate::metrics::{Metrics, PoolStat};
use crate::options::Options;
use crate::reconcile::{Decision, Desired, Reconciler, order_key, write_for};

/// Keys reconciled per loop turn before watch events and write completions get a look in.
const BATCH: usize = 256;

/// Everything the loop owns.
pub(crate) struct Driver {
    opts: Arc<Options>,
    views: HashMap<String, SvcView>,
    /// Keys seen during a (re)list, to drop the ones that vanished meanwhile.
    relist: Option<HashSet<String>>,
    svc_synced: bool,
    cm_synced: bool,
    /// Raw text of the last ConfigMap content handled (to skip unchanged updates).
    last_config_text: Option<Option<String>>,
    /// The configuration in force (last good one).
    pools: Option<PoolSet>,
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
            relist: None,
            svc_synced: false,
            cm_synced: false,
            last_config_text: None,
            pools: None,
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
        let cm_api: Api<ConfigMap> = Api::namespaced(client, &self.opts.namespace);
        let mut svc_events =
            ferrolb_daemon::watch::watch(svc_api, watcher::Config::default(), "services");
        let cm_cfg =
            watcher::Config::default().fields(&format!("metadata.name={}", self.opts.config_name));
        let mut cm_events = ferrolb_daemon::watch::watch(cm_api, cm_cfg, "configmap");
        let mut leader = self.leader.clone();
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
                        self.metrics.update_errors.inc();
                    }
                },
                ev = cm_events.try_next() => match ev {
                    Ok(Some(ev)) => self.on_config_event(ev),
                    Ok(None) => break,
                    Err(_) => {
                        self.metrics.update_errors.inc();
                    }
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
        let synced = self.svc_synced && self.cm_synced;
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
            Event::Init => {
                self.relist = Some(HashSet::new());
            }
            Event::InitApply(svc) => {
                let view = SvcView::from_service(&svc);
                let key = view.key();
                if let Some(seen) = &mut self.relist {
                    seen.insert(key.clone());
                }
                self.upsert(key, view);
            }
            Event::InitDone => {
                if let Some(seen) = self.relist.take() {
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

    fn on_config_event(&mut self, ev: Event<ConfigMap>) {
        match ev {
            Event::Init | Event::InitDone => {
                if matches!(ev, Event::InitDone) {
                    self.cm_synced = true;
                    self.maybe_activate();
                }
            }
            Event::InitApply(cm) | Event::Apply(cm) => self.on_config(&cm),
            Event::Delete(_) => {
                tracing::error!(
                    configmap = %key_of(&self.opts.namespace, &self.opts.config_name),
                    "configuration ConfigMap deleted: keeping the last good configuration"
                );
                self.metrics.config_stale.set(1);
                self.last_config_text = None;
            }
        }
    }

    fn on_config(&mut self, cm: &ConfigMap) {
        let text = cm.data.as_ref().and_then(|d| d.get("config")).cloned();
        if self.last_config_text.as_ref() == Some(&text) {
            return;
        }
        self.last_config_text = Some(text.clone());
        let cm_key = key_of(&self.opts.namespace, &self.opts.config_name);
        match pools_from_text(text.as_deref().unwrap_or("")) {
            Ok(pools) => {
                tracing::info!(configmap = %cm_key, pools = pools.names().count(), "configuration loaded");
                self.metrics.config_loaded.set(1);
                self.metrics.config_stale.set(0);
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
                    self.update_pool_metrics();
                } else {
                    self.maybe_activate();
                }
            }
            Err(errors) => {
                let message = format!("invalid config: {}", errors.join("; "));
                tracing::error!(configmap = %cm_key, %message, "configuration rejected, keeping the last good one");
                self.metrics.config_stale.set(1);
                if self.leader.is_leader() {
                    self.events.publish(EventSpec {
                        regarding: Regarding {
                            kind: "ConfigMap",
                            namespace: self.opts.namespace.clone(),
                            name: self.opts.config_name.clone(),
                            uid: cm.metadata.uid.clone(),
                        },
                        severity: Severity::Warning,
                        reason: "InvalidConfig",
                        message,
                    });
                }
            }
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
                self.metrics.updates.inc_by(done.requests);
                if let Some(n) = self.attempts.remove(&done.key)
                    && n > 0
                {
                    tracing::info!(service = %done.key, failed_attempts = n, "service written after earlier failures");
                }
                return;
            }
            Err(e) => e,
        };
        self.metrics.update_errors.inc();
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
    }
}
