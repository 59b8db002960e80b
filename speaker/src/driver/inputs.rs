//! What the loop's inputs do: each watch event (Services, EndpointSlices, this Node) and
//! each new configuration state updates the cache or the configuration and marks the loop
//! dirty when the decision has to be recomputed; BGP speaker events are only logged.

use ferrolb_bgp::session::SpeakerEvent;
use ferrolb_daemon::config_source::ConfigState;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, Event};

use super::Driver;
use crate::k8s::views::{NodeInfo, ServiceInfo, SliceInfo, key_of};
use crate::status::ConfigReport;

impl Driver {
    /// Counted; logged (rate-limited) by the watch itself.
    pub(super) fn watch_error(&self, _what: &str, _e: &watcher::Error) {
        self.metrics.k8s.update_errors.inc();
    }

    fn mark(&mut self, changed: bool) {
        self.metrics.k8s.updates.inc();
        self.dirty |= changed;
    }

    pub(super) fn on_service(&mut self, ev: Event<Service>) {
        match ev {
            Event::Init => self.relist_services.start(),
            Event::InitApply(svc) | Event::Apply(svc) => {
                if let Some(info) = ServiceInfo::from_service(&svc) {
                    self.relist_services.saw(&info.key);
                    let changed = self.cache.upsert_service(info);
                    self.mark(changed);
                }
            }
            Event::Delete(svc) => {
                if let (Some(ns), Some(name)) = (&svc.metadata.namespace, &svc.metadata.name) {
                    let changed = self.cache.remove_service(&key_of(ns, name));
                    self.mark(changed);
                }
            }
            Event::InitDone => {
                if let Some(seen) = self.relist_services.finish() {
                    self.dirty |= self.cache.retain_services(&seen);
                }
                if !self.synced.services {
                    tracing::info!(
                        services = self.cache.service_count(),
                        "initial list of Services received"
                    );
                }
                self.synced.services = true;
                self.dirty = true;
            }
        }
    }

    pub(super) fn on_slice(&mut self, ev: Event<EndpointSlice>) {
        match ev {
            Event::Init => self.relist_slices.start(),
            Event::InitApply(s) | Event::Apply(s) => {
                if let Some(info) = SliceInfo::from_slice(&s) {
                    self.relist_slices.saw(&info.key);
                    let changed = self.cache.upsert_slice(info);
                    self.mark(changed);
                }
            }
            Event::Delete(s) => {
                if let (Some(ns), Some(name)) = (&s.metadata.namespace, &s.metadata.name) {
                    let changed = self.cache.remove_slice(&key_of(ns, name));
                    self.mark(changed);
                }
            }
            Event::InitDone => {
                if let Some(seen) = self.relist_slices.finish() {
                    self.dirty |= self.cache.retain_slices(&seen);
                }
                self.synced.slices = true;
                self.dirty = true;
            }
        }
    }

    pub(super) fn on_node(&mut self, ev: Event<Node>) {
        match ev {
            Event::Init => {}
            Event::InitApply(n) | Event::Apply(n) => {
                if n.metadata.name.as_deref() != Some(self.node_name.as_str()) {
                    return;
                }
                let changed = self.cache.set_node(Some(NodeInfo::from_node(&n)));
                if changed {
                    self.peers_dirty = true;
                }
                self.mark(changed);
            }
            Event::Delete(_) => {
                tracing::warn!(node = %self.node_name, "this node's Node object was deleted; keeping the last known labels");
            }
            Event::InitDone => {
                if self.cache.node.is_none() {
                    tracing::warn!(node = %self.node_name, "Node object not found; waiting for it before announcing anything");
                }
                self.synced.node = true;
                self.dirty = true;
            }
        }
    }

    /// A new configuration state (either source, see `ferrolb_daemon::config_source`). A
    /// bad or missing input leaves the configuration in force untouched (sessions and
    /// announcements stay exactly as they are) and marks it stale.
    pub(super) fn on_config_state(&mut self, st: ConfigState) {
        self.metrics.k8s.updates.inc();
        let reload = st.generation != self.config_state.generation;
        let newly_synced = st.synced && !self.synced.config;
        self.synced.config = st.synced;
        self.config_state = st;
        if reload && let Some(cfg) = &self.config_state.config {
            self.config = Some((**cfg).clone());
            self.metrics.k8s.config_loaded.set(1);
            self.peers_dirty = true;
            self.dirty = true;
        }
        if newly_synced {
            self.dirty = true;
        }
        let source = self.config_state.origin.map(|o| o.as_str());
        match self.config_state.stale.clone() {
            None => {
                self.metrics.k8s.config_stale.set(0);
                self.config_report = ConfigReport {
                    loaded: self.config.is_some(),
                    stale: false,
                    last_error: None,
                    source,
                };
            }
            Some(reason) => {
                self.config_report.loaded = self.config.is_some();
                self.config_report.source = source;
                self.set_stale(reason);
            }
        }
    }

    fn set_stale(&mut self, reason: String) {
        self.metrics.k8s.config_stale.set(1);
        self.config_report.stale = true;
        self.config_report.last_error = Some(reason);
        self.publish();
    }

    pub(super) fn on_bgp(&mut self, ev: SpeakerEvent) {
        if let SpeakerEvent::PeerStateChanged {
            peer,
            from,
            to,
            reason,
        } = &ev
        {
            tracing::info!(%peer, %from, %to, reason = reason.as_deref().unwrap_or(""), "BGP session state changed");
        }
        // Learned routes go from the sessions to the pod-route installer directly (the
        // speaker's learned-route feed), not through here.
    }
}
