//! Run options of the controller loop (the library form of the CLI flags).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::leader::{Timing, default_identity};

/// Default Service writes in flight (`--write-concurrency`): on the real kube-apiserver 16
/// assigned a burst as fast as the best bare client, and kept the Lease renewals p99 near
/// 100 ms; 64 was no faster and pushed them to 210-390 ms (controller/README.md).
pub const DEFAULT_WRITE_CONCURRENCY: usize = 16;

/// Everything [`crate::run`] needs besides a client.
#[derive(Debug, Clone)]
pub struct Options {
    /// Namespace of the ConfigMap and the Lease.
    pub namespace: String,
    /// ConfigMap name.
    pub config_name: String,
    /// Only Services of this `loadBalancerClass` (None: only Services without a class).
    pub lb_class: Option<String>,
    /// Kubeconfig path (used by [`crate::run`]; `None` = in-cluster / default kubeconfig).
    pub kubeconfig: Option<PathBuf>,
    /// HTTP listen address for metrics and health; `None` = no HTTP server.
    pub listen: Option<SocketAddr>,
    /// Lease name for leader election.
    pub lease_name: String,
    /// Leader-election identity.
    pub identity: String,
    /// Leader-election timing.
    pub leader: Timing,
    /// Service writes in flight at once (decisions stay serial).
    pub write_concurrency: usize,
}

impl Options {
    /// Defaults as MetalLB's: lease duration 15 s, no class, no HTTP server.
    pub fn new(namespace: impl Into<String>, config_name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            config_name: config_name.into(),
            lb_class: None,
            kubeconfig: None,
            listen: None,
            lease_name: "ferrolb-controller".to_string(),
            identity: default_identity(),
            leader: Timing::default(),
            write_concurrency: DEFAULT_WRITE_CONCURRENCY,
        }
    }
}
