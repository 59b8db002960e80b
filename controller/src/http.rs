//! The HTTP endpoint: `/metrics`, `/healthz`, `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Readiness facts the loop publishes for `/readyz`.
#[derive(Debug, Default)]
pub struct Health {
    /// The initial list of Services and the ConfigMap have been received.
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

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// Bind the listener now (so the caller learns the port) and serve until `cancel`.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    cancel: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready_handler))
        .with_state(AppState { metrics, health });
    let (local, handle) = ferrolb_daemon::serve_http(addr, app, cancel).await?;
    tracing::info!(%local, "serving /metrics, /healthz, /readyz");
    Ok((local, handle))
}

async fn metrics_handler(State(st): State<AppState>) -> impl IntoResponse {
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.encode(),
    )
}

async fn ready_handler(State(st): State<AppState>) -> impl IntoResponse {
    if st.health.ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
