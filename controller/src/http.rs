//! The HTTP endpoint: `/metrics`, `/healthz`, `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Readiness facts the loop publishes for `/readyz`.
#[derive(Debug, Default)]
pub struct Health {
    /// The initial list of Services and the configuration have been received.
    pub synced: AtomicBool,
    /// A valid configuration is in force.
    pub config_loaded: AtomicBool,
    /// This replica holds the leader Lease.
    pub leader: AtomicBool,
}

impl Health {
    /// Ready = a standby replica (nothing to do until it leads), or a leader that has its caches
    /// and a configuration.
    pub fn ready(&self) -> bool {
        !self.leader.load(Ordering::Relaxed)
            || (self.synced.load(Ordering::Relaxed) && self.config_loaded.load(Ordering::Relaxed))
    }
}

/// What the shared probe routes read.
struct ControllerProbes {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

impl ferrolb_daemon::probes::Probes for ControllerProbes {
    fn metrics_text(&self) -> String {
        self.metrics.encode()
    }
    fn ready(&self) -> bool {
        self.health.ready()
    }
}

/// Bind now (so the caller learns the port) and serve until `cancel`.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    cancel: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = ferrolb_daemon::probes::router(Arc::new(ControllerProbes { metrics, health }));
    let (local, handle) = ferrolb_daemon::serve_http(addr, app, cancel).await?;
    tracing::info!(%local, "serving /metrics, /healthz, /readyz");
    Ok((local, handle))
}
