//! Prometheus metrics with MetalLB's names, so existing dashboards keep working.
//!
//! The allocator gauges are floats because an IPv6 pool can hold more addresses than an
//! `i64` counts (MetalLB exports them as float gauges too).

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The `pool` label of the allocator gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabel {
    /// Pool name from the ConfigMap.
    pub pool: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Per-pool numbers the allocator reports, fed to [`Metrics::set_pool_stats`].
#[derive(Debug, Clone, PartialEq)]
pub struct PoolStat {
    /// Pool name.
    pub pool: String,
    /// Addresses the pool can hand out.
    pub total: f64,
    /// Addresses currently assigned to at least one Service.
    pub in_use: f64,
    /// Services holding an address from the pool.
    pub services: f64,
}

/// Every metric the controller exports.
pub struct Metrics {
    registry: Registry,
    addresses_total: Family<PoolLabel, FloatGauge>,
    addresses_in_use: Family<PoolLabel, FloatGauge>,
    services_allocated: Family<PoolLabel, FloatGauge>,
    /// `metallb_k8s_client_*`: successful and failed writes to the API server, the
    /// configuration loaded and stale.
    pub k8s: ferrolb_daemon::metrics::K8sClientMetrics,
    /// 1 while this replica holds the leader Lease (ferrolb's own).
    pub is_leader: Gauge,
    /// Duration of each Lease round (a renewal: one PUT; an acquisition: GET + PUT), in seconds.
    pub lease_latency: Histogram,
    known_pools: Mutex<BTreeSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Create and register all metrics.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let addresses_total = Family::<PoolLabel, FloatGauge>::default();
        let addresses_in_use = Family::<PoolLabel, FloatGauge>::default();
        let services_allocated = Family::<PoolLabel, FloatGauge>::default();
        let k8s = ferrolb_daemon::metrics::K8sClientMetrics::default();
        let is_leader = Gauge::default();
        let lease_latency =
            Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0]);
        registry.register(
            "metallb_allocator_addresses_total",
            "Number of usable IP addresses, per pool",
            addresses_total.clone(),
        );
        registry.register(
            "metallb_allocator_addresses_in_use_total",
            "Number of IP addresses in use, per pool",
            addresses_in_use.clone(),
        );
        registry.register(
            "metallb_allocator_services_allocated_total",
            "Number of Services holding an IP from the pool",
            services_allocated.clone(),
        );
        k8s.register(&mut registry);
        registry.register(
            "ferrolb_controller_leader_bool",
            "1 while this replica holds the leader-election Lease",
            is_leader.clone(),
        );
        registry.register(
            "ferrolb_controller_lease_request_seconds",
            "Duration of each leader-election Lease round: a renewal is one PUT, an acquisition a GET and a PUT",
            lease_latency.clone(),
        );
        Self {
            registry,
            addresses_total,
            addresses_in_use,
            services_allocated,
            k8s,
            is_leader,
            lease_latency,
            known_pools: Mutex::new(BTreeSet::new()),
        }
    }

    /// Replace the per-pool gauges; pools missing from `stats` lose their series.
    pub fn set_pool_stats(&self, stats: &[PoolStat]) {
        let mut known = self
            .known_pools
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now: BTreeSet<String> = stats.iter().map(|s| s.pool.clone()).collect();
        for gone in known.difference(&now) {
            let label = PoolLabel { pool: gone.clone() };
            self.addresses_total.remove(&label);
            self.addresses_in_use.remove(&label);
            self.services_allocated.remove(&label);
        }
        for s in stats {
            let label = PoolLabel {
                pool: s.pool.clone(),
            };
            self.addresses_total.get_or_create(&label).set(s.total);
            self.addresses_in_use.get_or_create(&label).set(s.in_use);
            self.services_allocated
                .get_or_create(&label)
                .set(s.services);
        }
        *known = now;
    }

    /// The text exposition format served on `/metrics`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_metallb() {
        let m = Metrics::new();
        m.k8s.updates.inc();
        m.k8s.config_stale.set(1);
        m.set_pool_stats(&[PoolStat {
            pool: "p1".into(),
            total: 10.0,
            in_use: 2.0,
            services: 3.0,
        }]);
        let text = m.encode();
        assert!(
            text.contains("metallb_k8s_client_updates_total 1"),
            "{text}"
        );
        assert!(text.contains("metallb_k8s_client_update_errors_total 0"));
        assert!(text.contains("metallb_k8s_client_config_stale_bool 1"));
        assert!(text.contains("metallb_k8s_client_config_loaded_bool 0"));
        assert!(text.contains("metallb_allocator_addresses_total{pool=\"p1\"} 10"));
        assert!(text.contains("metallb_allocator_addresses_in_use_total{pool=\"p1\"} 2"));
        assert!(text.contains("metallb_allocator_services_allocated_total{pool=\"p1\"} 3"));
        // A pool that disappears from the config loses its series.
        m.set_pool_stats(&[]);
        assert!(!m.encode().contains("pool=\"p1\""));
    }
}
