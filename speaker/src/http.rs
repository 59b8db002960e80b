//! The HTTP endpoint: `/metrics`, `/healthz`, `/readyz` and `/status` (`?format=json`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::shared::Shared;

/// Bind now (so the caller learns the port) and serve until `cancel`.
pub async fn serve(
    addr: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = ferrolb_daemon::probes::router(shared.clone()).merge(
        Router::new()
            .route("/status", get(status))
            .with_state(shared),
    );
    let (local, handle) = ferrolb_daemon::serve_http(addr, app, cancel).await?;
    tracing::info!(%local, "serving /metrics, /healthz, /readyz, /status");
    Ok((local, handle))
}

impl ferrolb_daemon::probes::Probes for Shared {
    fn metrics_text(&self) -> String {
        self.refresh_metrics();
        self.metrics.encode()
    }
    fn ready(&self) -> bool {
        Shared::ready(self)
    }
}

async fn status(
    State(st): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let report = st.report();
    match q.get("format").map(String::as_str) {
        Some("json") => match serde_json::to_string_pretty(&report) {
            Ok(body) => ([(CONTENT_TYPE, "application/json")], body + "\n").into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        },
        None | Some("text") => (
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            report.render(),
        )
            .into_response(),
        Some(other) => (
            StatusCode::BAD_REQUEST,
            format!("unknown format {other:?}: use text or json\n"),
        )
            .into_response(),
    }
}
