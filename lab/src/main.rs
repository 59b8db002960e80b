//! `ferrolb-lab`: the lab command (a lab and test fixture, not a product component).
//!
//! - `apiserver --listen ADDR`: the in-memory lab Kubernetes API server;
//! - `fib-sync`: runs inside the router namespace and programs gobgpd's RIB into the kernel.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ferrolb-lab",
    version,
    about = "ferrolb's netns lab and lab API server"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the lab Kubernetes API server (in memory; a test fixture, not a product).
    Apiserver {
        /// Address to listen on.
        #[arg(
            long,
            default_value = "127.0.0.1:6443",
            env = "FERROLB_LAB_APISERVER_LISTEN"
        )]
        listen: SocketAddr,
        /// Write a kubeconfig pointing at the server to this file.
        #[arg(long)]
        kubeconfig: Option<std::path::PathBuf>,
    },
    /// Keep the kernel's `proto bgp` routes equal to gobgpd's RIB (run inside the router netns).
    FibSync {
        /// gobgpd's gRPC API port on 127.0.0.1.
        #[arg(long, default_value_t = 50051)]
        api_port: u16,
        /// Full resync period in milliseconds (monitor events trigger passes in between).
        #[arg(long, default_value_t = 500)]
        period_ms: u64,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Cmd::Apiserver { listen, kubeconfig } => {
            let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| {
                        format!(
                            "cannot listen on {listen} (port in use? pick another with --listen)"
                        )
                    })?;
                let addr = listener.local_addr()?;
                if let Some(path) = kubeconfig {
                    std::fs::write(
                        &path,
                        ferrolb_apiserver::kubeconfig_for(&format!("http://{addr}")),
                    )
                    .with_context(|| format!("writing {}", path.display()))?;
                }
                tracing::info!(%addr, "lab API server listening");
                ferrolb_apiserver::serve(listener).await.context("serving")
            })
        }
        Cmd::FibSync {
            api_port,
            period_ms,
        } => ferrolb_lab::fib::run_loop(api_port, Duration::from_millis(period_ms)),
    }
}
