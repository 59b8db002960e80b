//! Command-line flags of the `ferrolb-speaker` binary.
//!
//! MetalLB's flag names and environment variables are kept (`--node-name` /
//! `METALLB_NODE_NAME` from the downward API, `--namespace` / `METALLB_NAMESPACE`, `--config`,
//! `--lb-class`, `--port`, `--host`, `--ignore-exclude-lb`), so a DaemonSet written for
//! MetalLB needs only its image changed.

use clap::{Parser, ValueEnum};
use ipnet::IpNet;

use crate::decision::PodCidrMode;
use crate::podroutes::{InstallPolicy, PodRoutesOptions};

/// The speaker's command line.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "ferrolb-speaker",
    version,
    about = "ferrolb speaker: announces this node's LoadBalancer IPs and pod CIDRs over BGP"
)]
pub struct Cli {
    /// This node's name (set it from the downward API: `spec.nodeName`).
    #[arg(long = "node-name", env = "METALLB_NODE_NAME")]
    pub node_name: String,
    /// `--namespace`, `--config`, `--lb-class`, `--kubeconfig`.
    #[command(flatten)]
    pub cluster: ferrolb_daemon::cli::ClusterArgs,
    /// The HTTP server (`/metrics`, `/healthz`, `/readyz`, `/status`): `--listen`, or
    /// MetalLB's `--host` and `--port`.
    #[command(flatten)]
    pub http: ferrolb_daemon::cli::HttpArgs,
    /// Announce even from nodes labelled `node.kubernetes.io/exclude-from-external-load-balancers`.
    #[arg(long = "ignore-exclude-lb", env = "METALLB_IGNORE_EXCLUDE_LB")]
    pub ignore_exclude_lb: bool,
    /// Pod CIDR routing over BGP: `off`, `advertise` this node's `spec.podCIDRs`, or
    /// `advertise-and-install` (also install routes learned from peers into the kernel).
    #[arg(long = "pod-cidr-mode", env = "FERROLB_POD_CIDR_MODE", value_enum, default_value_t = PodCidrArg::Off)]
    pub pod_cidr_mode: PodCidrArg,
    /// With `advertise-and-install`: install only learned prefixes inside one of these
    /// CIDRs (comma-separated or repeated; e.g. the cluster CIDR). Without it, everything
    /// learned is installed except the built-in exclusions, so a router that leaks a full
    /// table fills the node's kernel table.
    #[arg(
        long = "pod-route-allow",
        env = "FERROLB_POD_ROUTE_ALLOW",
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    pub pod_route_allow: Vec<IpNet>,
    /// Most prefixes accepted from one BGP peer (RFC 4486): over it the session ends with
    /// Cease 6/1, the peer's routes are removed and it is reconnected only after 5
    /// minutes; a warning is logged at 80 %. 0: no limit. Default: 5000 with
    /// `advertise-and-install` (where learned routes reach the kernel), no limit in the
    /// other modes (which ignore what peers send, as before).
    #[arg(long = "max-prefixes", env = "FERROLB_MAX_PREFIXES", value_name = "N")]
    pub max_prefixes: Option<u32>,
    /// With `advertise-and-install`: a restarted speaker keeps the pod routes its
    /// predecessor left in the kernel until every peer sent End-of-RIB or has been up for
    /// this many seconds (four times this after the start at the latest); only what is
    /// still not wanted then is removed.
    #[arg(
        long = "pod-route-settle",
        env = "FERROLB_POD_ROUTE_SETTLE",
        value_name = "SECONDS",
        default_value_t = crate::podroutes::DEFAULT_SETTLE.as_secs()
    )]
    pub pod_route_settle: u64,
    /// What SIGTERM does to the BGP sessions. `restart` (a DaemonSet rollout): peers with
    /// graceful restart (`ferrolb-graceful-restart`, `enableGracefulRestart`) keep this
    /// node's routes while the next instance starts, the others get a Cease. `drain` (the
    /// node goes away): Service routes are re-announced with GRACEFUL_SHUTDOWN for
    /// `--drain-period`, then every peer gets a Cease; set the pod's
    /// `terminationGracePeriodSeconds` above the drain period. `withdraw`: a Cease to every
    /// peer at once.
    #[arg(long = "on-sigterm", env = "FERROLB_ON_SIGTERM", value_enum, default_value_t = OnSigterm::Restart)]
    pub on_sigterm: OnSigterm,
    /// Seconds of GRACEFUL_SHUTDOWN (RFC 8326) before this node's Service routes are
    /// withdrawn: on SIGTERM with `--on-sigterm drain`, and when the node gains the
    /// `node.kubernetes.io/exclude-from-external-load-balancers` label. 0: withdraw at once.
    #[arg(
        long = "drain-period",
        env = "FERROLB_DRAIN_PERIOD",
        value_name = "SECONDS",
        default_value_t = DEFAULT_DRAIN_SECONDS
    )]
    pub drain_period: u64,
    /// Treat a cordoned node (`kubectl cordon`, `spec.unschedulable`) like one with the
    /// exclusion label: drain for `--drain-period`, then stop announcing Service IPs from
    /// it until it is uncordoned. Off by default (MetalLB ignores cordons).
    #[arg(long = "drain-on-cordon", env = "FERROLB_DRAIN_ON_CORDON")]
    pub drain_on_cordon: bool,
    /// Log format.
    #[arg(long = "log-format", env = "FERROLB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// `--drain-period` by default: long enough for routers to reconverge on the other nodes,
/// well inside Kubernetes' default `terminationGracePeriodSeconds` of 30.
pub const DEFAULT_DRAIN_SECONDS: u64 = 10;

/// `--on-sigterm` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnSigterm {
    /// Graceful restart where negotiated, Cease elsewhere.
    Restart,
    /// GRACEFUL_SHUTDOWN for the drain period, then Cease.
    Drain,
    /// Cease at once.
    Withdraw,
}

impl From<OnSigterm> for crate::StopMode {
    fn from(a: OnSigterm) -> Self {
        match a {
            OnSigterm::Restart => crate::StopMode::Restart,
            OnSigterm::Drain => crate::StopMode::Drain,
            OnSigterm::Withdraw => crate::StopMode::Withdraw,
        }
    }
}

/// `--pod-cidr-mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PodCidrArg {
    /// Neither announce nor install.
    Off,
    /// Announce this node's pod CIDRs.
    Advertise,
    /// Announce them and install learned pod routes.
    AdvertiseAndInstall,
}

impl From<PodCidrArg> for PodCidrMode {
    fn from(a: PodCidrArg) -> Self {
        match a {
            PodCidrArg::Off => PodCidrMode::Off,
            PodCidrArg::Advertise => PodCidrMode::Advertise,
            PodCidrArg::AdvertiseAndInstall => PodCidrMode::AdvertiseAndInstall,
        }
    }
}

/// `--log-format`; shared with the other daemon.
pub use ferrolb_daemon::LogFormat;

impl Cli {
    /// Turn the flags into the library's run options (without a pod-route installer).
    pub fn to_options(&self) -> crate::Options {
        let mut o = crate::Options::new(self.node_name.clone());
        o.namespace = self.cluster.namespace.clone();
        o.config_name = self.cluster.config.clone();
        o.decision.lb_class = self.cluster.lb_class.clone();
        o.decision.ignore_exclude_lb = self.ignore_exclude_lb;
        o.decision.exclude_cordoned = self.drain_on_cordon;
        o.decision.pod_cidr_mode = self.pod_cidr_mode.into();
        o.listen = Some(self.http.addr());
        o.stop_mode = self.on_sigterm.into();
        o.drain_period = std::time::Duration::from_secs(self.drain_period);
        o.max_prefixes = match (self.max_prefixes, self.pod_cidr_mode) {
            (Some(0), _) => None,
            (Some(n), _) => Some(n),
            (None, PodCidrArg::AdvertiseAndInstall) => Some(crate::options::DEFAULT_MAX_PREFIXES),
            (None, _) => None,
        };
        o
    }

    /// Settings of the pod-route installer (used with `advertise-and-install`).
    pub fn pod_routes_options(&self) -> PodRoutesOptions {
        PodRoutesOptions {
            policy: InstallPolicy {
                allow: (!self.pod_route_allow.is_empty()).then(|| self.pod_route_allow.clone()),
            },
            // A restarted speaker adopts its predecessor's routes while its sessions
            // deliver their tables.
            settle: Some(std::time::Duration::from_secs(self.pod_route_settle)),
            ..PodRoutesOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_map_to_options() {
        let cli = Cli::try_parse_from([
            "ferrolb-speaker",
            "--node-name",
            "n1",
            "--lb-class",
            "x",
            "--port",
            "0",
            "--metrics-bind-address",
            "127.0.0.1",
            "--pod-cidr-mode",
            "advertise-and-install",
            "--ignore-exclude-lb",
        ])
        .unwrap();
        let o = cli.to_options();
        assert_eq!(o.node_name, "n1");
        assert_eq!(o.namespace, "metallb-system");
        assert_eq!(o.config_name, "config");
        assert_eq!(o.decision.lb_class.as_deref(), Some("x"));
        assert!(o.decision.ignore_exclude_lb);
        assert_eq!(o.decision.pod_cidr_mode, PodCidrMode::AdvertiseAndInstall);
        assert_eq!(o.listen, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(
            o.stop_mode,
            crate::StopMode::Restart,
            "the binary's default"
        );
        assert_eq!(o.drain_period, std::time::Duration::from_secs(10));
        assert!(
            !o.decision.exclude_cordoned,
            "cordons are ignored by default"
        );
        assert_eq!(cli.pod_routes_options().policy.allow, None);
        assert_eq!(
            o.max_prefixes,
            Some(5000),
            "install mode: a limit by default"
        );
        let plain = Cli::try_parse_from(["ferrolb-speaker", "--node-name", "n"]).unwrap();
        assert_eq!(plain.to_options().max_prefixes, None, "other modes: none");
        let off =
            Cli::try_parse_from(["ferrolb-speaker", "--node-name", "n", "--max-prefixes", "0"])
                .unwrap();
        assert_eq!(off.to_options().max_prefixes, None);
        assert!(
            Cli::try_parse_from([
                "ferrolb-speaker",
                "--node-name",
                "n",
                "--pod-cidr-mode",
                "bogus"
            ])
            .is_err()
        );
    }

    #[test]
    fn pod_route_allow_list_from_flag_or_env() {
        let cli = Cli::try_parse_from([
            "ferrolb-speaker",
            "--node-name",
            "n",
            "--pod-route-allow",
            "10.244.0.0/16,fd00:10:244::/56",
            "--pod-route-allow",
            "10.96.0.0/12",
        ])
        .unwrap();
        let allow = cli.pod_routes_options().policy.allow.unwrap();
        let want: Vec<IpNet> = ["10.244.0.0/16", "fd00:10:244::/56", "10.96.0.0/12"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(allow, want);
        // A typo must stop the daemon at start, not silently install everything.
        let err = Cli::try_parse_from([
            "ferrolb-speaker",
            "--node-name",
            "n",
            "--pod-route-allow",
            "10.244.0.0/33",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("--pod-route-allow"), "{err}");
    }
}
