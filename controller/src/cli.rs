//! Command-line flags of the `ferrolb-controller` binary.
//!
//! MetalLB's flag names are kept (`--namespace`, `--config`, `--lb-class`, `--port`) so a
//! Deployment written for MetalLB needs only its image changed. Every flag has an environment
//! fallback, because in a Pod env vars are the easy way to inject the namespace or pod name.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// The controller's command line.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "ferrolb-controller",
    version,
    about = "ferrolb controller: assigns IPs to LoadBalancer Services"
)]
pub struct Cli {
    /// `--namespace`, `--config`, `--lb-class`, `--kubeconfig`.
    #[command(flatten)]
    pub cluster: ferrolb_daemon::cli::ClusterArgs,
    /// The HTTP server (`/metrics`, `/healthz`, `/readyz`): `--listen`, or MetalLB's
    /// `--host` and `--port`.
    #[command(flatten)]
    pub http: ferrolb_daemon::cli::HttpArgs,
    /// Log format.
    #[arg(long = "log-format", env = "FERROLB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Name of the coordination.k8s.io/v1 Lease used for leader election.
    #[arg(
        long = "lease-name",
        env = "FERROLB_LEASE_NAME",
        default_value = "ferrolb-controller"
    )]
    pub lease_name: String,
    /// Leader-election identity; default: pod name (`POD_NAME`) or hostname, plus a random suffix.
    #[arg(long, env = "FERROLB_IDENTITY")]
    pub identity: Option<String>,
    /// Lease duration in seconds: how long a dead leader blocks a takeover.
    #[arg(
        long = "lease-duration",
        env = "FERROLB_LEASE_DURATION",
        default_value_t = 15
    )]
    pub lease_duration_secs: u64,
    /// Service writes in flight at once (decisions stay serial). More is not faster on a
    /// busy API server: see the benchmark in controller/README.md.
    #[arg(
        long = "write-concurrency",
        env = "FERROLB_WRITE_CONCURRENCY",
        default_value_t = crate::options::DEFAULT_WRITE_CONCURRENCY
    )]
    pub write_concurrency: usize,
    /// Subcommand; without one the controller runs.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Check a MetalLB configuration file (the YAML inside the ConfigMap's `config` key) and
    /// print `OK` or every error with its path. Exits non-zero on error.
    CheckConfig {
        /// The YAML file to check.
        file: PathBuf,
    },
    /// Print the metallb.io custom resources equivalent to a MetalLB 0.12 configuration (a
    /// ConfigMap manifest or the YAML of its `config` key), as MetalLB's `configmaptocrs`
    /// does. Errors (as check-config reports them) on stderr, exit non-zero.
    ConvertConfig {
        /// The ConfigMap file to convert.
        file: PathBuf,
    },
}

/// `--log-format`; shared with the other daemon.
pub use ferrolb_daemon::LogFormat;

impl Cli {
    /// The HTTP listen address implied by `--listen`, `--host` and `--port`.
    pub fn listen_addr(&self) -> SocketAddr {
        self.http.addr()
    }

    /// Turn the flags into the library's run options.
    pub fn to_options(&self) -> crate::Options {
        let mut opts =
            crate::Options::new(self.cluster.namespace.clone(), self.cluster.config.clone());
        opts.lb_class = self.cluster.lb_class.clone();
        opts.listen = Some(self.listen_addr());
        opts.lease_name = self.lease_name.clone();
        if let Some(id) = &self.identity {
            opts.identity = id.clone();
        }
        let secs = self.lease_duration_secs.max(3);
        opts.leader = crate::leader::Timing::for_lease_duration(Duration::from_secs(secs));
        opts.write_concurrency = self.write_concurrency.max(1);
        opts
    }
}
