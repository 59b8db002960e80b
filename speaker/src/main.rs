//! The `ferrolb-speaker` binary: flags, logging, signals; the work is in the library.

use std::process::ExitCode;

use clap::Parser;
use ferrolb_speaker::cli::Cli;

// One thread is plenty for a node agent and keeps the footprint small.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    ferrolb_daemon::init_logging(cli.log_format);
    let mut opts = cli.to_options();
    if opts.decision.pod_cidr_mode == ferrolb_speaker::decision::PodCidrMode::AdvertiseAndInstall {
        // Routes learned from peers go into this node's kernel (host network namespace).
        opts.pod_route_installer = Some(ferrolb_speaker::podroutes::installer(
            cli.pod_routes_options(),
        ));
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        node = %opts.node_name,
        namespace = %opts.namespace,
        config = %opts.config_name,
        lb_class = ?opts.decision.lb_class,
        pod_cidr_mode = ?opts.decision.pod_cidr_mode,
        pod_route_allow = ?cli.pod_route_allow,
        on_sigterm = ?cli.on_sigterm,
        drain_period_s = cli.drain_period,
        "starting ferrolb-speaker"
    );
    match ferrolb_speaker::run(
        opts,
        cli.cluster.kubeconfig.as_deref(),
        ferrolb_daemon::shutdown_signal(),
    )
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "speaker failed");
            ExitCode::FAILURE
        }
    }
}
