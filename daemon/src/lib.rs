//! What ferrolb's two daemons share at their edges.
//!
//! `ferrolb-controller` and `ferrolb-speaker` are separate binaries with separate pure
//! cores, but the plumbing around them is the same: a `kube::Client` from a kubeconfig (or
//! in-cluster) that names its component on every request ([`client`]), watches that come
//! back quickly after an API outage ([`watch`]), one Event writer with client-go's
//! aggregation ([`events`]), logging set up the same way, the same shutdown signals, and an
//! HTTP server for `/metrics`, `/healthz`, `/readyz` that binds before it returns (so
//! callers and tests learn the port) and stops on a cancellation token. Keeping it here
//! means a fix to any of them reaches both daemons.

pub mod cli;
pub mod client;
pub mod config_source;
pub mod events;
pub mod metrics;
pub mod probes;
pub mod ratelog;
pub mod rejection;
pub mod relist;
pub mod slim;
pub mod watch;

use std::net::SocketAddr;

pub use client::{ClientError, Identity};

/// Why a daemon could not start, as far as the shared edges go. The controller's error
/// is this one; the speaker's wraps it and adds its own (BGP, BFD).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No Kubernetes client could be built (kubeconfig or inference failed).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The HTTP listener could not be bound.
    #[error("binding the HTTP listener on {addr}: {source}")]
    Listen {
        /// Requested address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// `--log-format`: how log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// kube's HTTP trace layer logs every failed request at ERROR, once per retry: during an API
/// outage that is a line per watch per second. The daemons log those failures themselves,
/// rate-limited ([`watch`], [`rejection`]), so the layer is off unless `RUST_LOG` names
/// `kube_client` explicitly.
pub const QUIET_KUBE_TRACE: &str = "kube_client::client::builder=off";

/// The log filter: `RUST_LOG` if set, else `default`; plus [`QUIET_KUBE_TRACE`].
pub fn log_filter(default: &str) -> tracing_subscriber::EnvFilter {
    let base = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_string());
    let spec = if base.contains("kube_client") {
        base
    } else {
        format!("{base},{QUIET_KUBE_TRACE}")
    };
    tracing_subscriber::EnvFilter::try_new(&spec)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default))
}

/// Sets up `tracing` for a daemon: `RUST_LOG` if set, else `info`; stderr.
pub fn init_logging(format: LogFormat) {
    let filter = log_filter("info");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, not in log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Resolves on SIGTERM (what Kubernetes sends) or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install SIGTERM handler");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
    }
}

/// Binds `addr` now (so the caller learns the port) and serves `app` until `cancel`.
pub async fn serve_http(
    addr: SocketAddr,
    app: Router,
    cancel: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let handle = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    Ok((local, handle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    #[test]
    fn the_kube_trace_layer_is_off_by_default() {
        let f = log_filter("info").to_string();
        assert!(f.contains("kube_client::client::builder=off"), "{f}");
    }

    #[tokio::test]
    async fn serves_until_cancelled() {
        let cancel = CancellationToken::new();
        let app = Router::new().route("/healthz", get(|| async { "ok\n" }));
        let (addr, handle) = serve_http("127.0.0.1:0".parse().unwrap(), app, cancel.clone())
            .await
            .expect("bind");
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).await.unwrap();
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.ends_with("ok\n"), "{body}");
        cancel.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), handle)
            .await
            .expect("server stops on cancel")
            .unwrap();
    }
}
