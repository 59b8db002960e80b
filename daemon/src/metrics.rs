//! The metrics both daemons export under MetalLB's `metallb_k8s_client_*` names, so
//! dashboards written for MetalLB's controller and speaker keep working. Each daemon
//! registers these beside its own ones.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The Kubernetes-client metrics of one daemon. Clones share the same values.
#[derive(Debug, Clone, Default)]
pub struct K8sClientMetrics {
    /// Kubernetes objects processed: the controller counts its writes, the speaker the
    /// watch updates it handled (`metallb_k8s_client_updates_total`).
    pub updates: Counter,
    /// Ones that failed (`metallb_k8s_client_update_errors_total`).
    pub update_errors: Counter,
    /// 1 once a configuration was loaded.
    pub config_loaded: Gauge,
    /// 1 while the newest configuration is invalid and an older one is in force.
    pub config_stale: Gauge,
}

impl K8sClientMetrics {
    /// Registers the four metrics in `registry` (MetalLB's names and help texts).
    pub fn register(&self, registry: &mut Registry) {
        // prometheus-client appends `_total` to counters.
        registry.register(
            "metallb_k8s_client_updates",
            "Number of k8s object updates that have been processed",
            self.updates.clone(),
        );
        registry.register(
            "metallb_k8s_client_update_errors",
            "Number of k8s object updates that failed for some reason",
            self.update_errors.clone(),
        );
        registry.register(
            "metallb_k8s_client_config_loaded_bool",
            "1 if the MetalLB configuration was successfully loaded at least once",
            self.config_loaded.clone(),
        );
        registry.register(
            "metallb_k8s_client_config_stale_bool",
            "1 if running on a stale configuration, because the latest config failed to load",
            self.config_stale.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_under_metallbs_names() {
        let mut registry = Registry::default();
        let m = K8sClientMetrics::default();
        m.register(&mut registry);
        m.updates.inc_by(3);
        m.config_loaded.set(1);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        for line in [
            "metallb_k8s_client_updates_total 3",
            "metallb_k8s_client_update_errors_total 0",
            "metallb_k8s_client_config_loaded_bool 1",
            "metallb_k8s_client_config_stale_bool 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
