//! What the speaker library needs to run (the binary fills it from flags).

use std::net::SocketAddr;
use std::time::Duration;

use crate::decision;
use crate::learned::PodRouteInstaller;

/// Default maximum number of prefixes accepted from one peer: room for the pod CIDRs of
/// a few thousand nodes, far below what a leaked full table would bring.
pub const DEFAULT_MAX_PREFIXES: u32 = 5000;

/// What stopping the speaker (SIGTERM, [`crate::Running::shutdown`]) does to its BGP
/// sessions (`--on-sigterm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StopMode {
    /// Cease to every peer: routers withdraw this node at once (the library's default,
    /// right for a node that is going away without a drain).
    #[default]
    Withdraw,
    /// A restart (the binary's default, e.g. a DaemonSet rollout): sessions that
    /// negotiated graceful restart are closed without a NOTIFICATION so routers keep this
    /// node's routes for the restart time while the new instance starts; the others get
    /// a Cease as with `Withdraw`.
    Restart,
    /// A removal (node drained for good): every Service route is re-announced with the
    /// GRACEFUL_SHUTDOWN community (RFC 8326) for the drain period, so routers move new
    /// flows away first; then a Cease to every peer.
    Drain,
}

/// Run options of the speaker.
pub struct Options {
    /// This node's name (`--node-name`, from the downward API).
    pub node_name: String,
    /// Namespace of the ConfigMap (`--namespace`).
    pub namespace: String,
    /// Name of the ConfigMap (`--config`), data key `config`.
    pub config_name: String,
    /// Decision options: `--lb-class`, `--ignore-exclude-lb`, `--pod-cidr-mode`.
    pub decision: decision::Options,
    /// Where to serve `/metrics`, `/healthz`, `/readyz` and `/status`; `None`: no server.
    pub listen: Option<SocketAddr>,
    /// Started with the learned-routes feed when the pod CIDR mode is
    /// `advertise-and-install` (the kernel pod-route installer plugs in here).
    pub pod_route_installer: Option<PodRouteInstaller>,
    /// Most prefixes accepted from each peer (`--max-prefixes`, RFC 4486); `None`: no
    /// limit (the default here; the binary sets [`DEFAULT_MAX_PREFIXES`] with
    /// `advertise-and-install`).
    pub max_prefixes: Option<u32>,
    /// `--on-sigterm`.
    pub stop_mode: StopMode,
    /// `--drain-period`: how long GRACEFUL_SHUTDOWN is announced before the routes go,
    /// on a `Drain` stop and when the node gains the exclusion label
    /// (`node.kubernetes.io/exclude-from-external-load-balancers`). Zero (the library's
    /// default): withdraw at once.
    pub drain_period: Duration,
}

impl Options {
    /// Options with MetalLB's defaults for `node_name`.
    pub fn new(node_name: impl Into<String>) -> Self {
        Options {
            node_name: node_name.into(),
            namespace: "metallb-system".into(),
            config_name: "config".into(),
            decision: decision::Options::default(),
            listen: None,
            pod_route_installer: None,
            max_prefixes: None,
            stop_mode: StopMode::Withdraw,
            drain_period: Duration::ZERO,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("node_name", &self.node_name)
            .field("namespace", &self.namespace)
            .field("config_name", &self.config_name)
            .field("decision", &self.decision)
            .field("listen", &self.listen)
            .field("pod_route_installer", &self.pod_route_installer.is_some())
            .field("max_prefixes", &self.max_prefixes)
            .field("stop_mode", &self.stop_mode)
            .field("drain_period", &self.drain_period)
            .finish()
    }
}
