//! The command-line arguments both daemons share, so they are spelled and behave the same.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// Which cluster a daemon talks to, where it finds its configuration and which Services
/// it handles: MetalLB's `--namespace`, `--config` and `--lb-class`, plus `--kubeconfig`.
/// Every flag has an environment fallback, because in a Pod env vars are the easy way to
/// inject them.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ClusterArgs {
    /// Namespace of the configuration ConfigMap (and of the controller's leader-election
    /// Lease).
    #[arg(long, env = "METALLB_NAMESPACE", default_value = "metallb-system")]
    pub namespace: String,
    /// Name of the ConfigMap holding the MetalLB configuration (data key `config`).
    #[arg(long, env = "METALLB_CONFIG", default_value = "config")]
    pub config: String,
    /// Only handle Services with this `spec.loadBalancerClass`. Without it, Services that set
    /// any class are ignored.
    #[arg(long = "lb-class", env = "METALLB_LB_CLASS")]
    pub lb_class: Option<String>,
    /// Path of a kubeconfig file; without it the in-cluster config or `~/.kube/config` is used.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

/// Where the HTTP server (`/metrics`, `/healthz`, `/readyz`, and the speaker's `/status`)
/// listens. One way to say it: `--listen ADDR:PORT`; MetalLB's `--port` and `--host` (the
/// speaker's `--metrics-bind-address`) are kept so existing manifests work, and are used
/// when `--listen` is not given.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct HttpArgs {
    /// Full listen address of the HTTP server (e.g. `127.0.0.1:0`, port 0 = any free port);
    /// overrides `--host` and `--port`.
    #[arg(long, env = "FERROLB_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Port of the HTTP server (MetalLB's flag); 0 = any free port.
    #[arg(long, env = "METALLB_PORT", default_value_t = 7472)]
    pub port: u16,
    /// Address the HTTP server binds to (MetalLB's flag).
    #[arg(
        long = "host",
        alias = "metrics-bind-address",
        env = "METALLB_HOST",
        default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    )]
    pub host: IpAddr,
}

impl HttpArgs {
    /// The address to listen on.
    pub fn addr(&self) -> SocketAddr {
        self.listen
            .unwrap_or_else(|| SocketAddr::new(self.host, self.port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        http: HttpArgs,
    }

    fn addr(args: &[&str]) -> SocketAddr {
        let mut v = vec!["t"];
        v.extend_from_slice(args);
        T::try_parse_from(v).expect("parses").http.addr()
    }

    #[test]
    fn listen_overrides_metallbs_host_and_port() {
        assert_eq!(addr(&[]), "0.0.0.0:7472".parse().unwrap());
        assert_eq!(
            addr(&["--port", "0", "--host", "127.0.0.1"]),
            "127.0.0.1:0".parse().unwrap()
        );
        assert_eq!(
            addr(&["--metrics-bind-address", "::1"]),
            "[::1]:7472".parse().unwrap()
        );
        assert_eq!(
            addr(&["--listen", "127.0.0.1:9", "--port", "1"]),
            "127.0.0.1:9".parse().unwrap()
        );
    }
}
