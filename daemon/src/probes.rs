//! The HTTP routes both daemons serve the same way: `/metrics` (OpenMetrics text),
//! `/healthz` (the process answers) and `/readyz` (200 when [`Probes::ready`], else 503).
//! Each daemon supplies its own metrics and readiness rule, and adds its own routes (the
//! speaker's `/status`) to the router.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// What the shared routes ask a daemon.
pub trait Probes: Send + Sync + 'static {
    /// The metrics, encoded as OpenMetrics text.
    fn metrics_text(&self) -> String;
    /// Whether `/readyz` answers 200.
    fn ready(&self) -> bool;
}

/// The OpenMetrics content type.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `/metrics`, `/healthz` and `/readyz` for `probes`; merge a daemon's own routes into it.
pub fn router<P: Probes>(probes: Arc<P>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::<P>))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready::<P>))
        .with_state(probes)
}

async fn metrics<P: Probes>(State(p): State<Arc<P>>) -> Response {
    ([(CONTENT_TYPE, OPENMETRICS)], p.metrics_text()).into_response()
}

async fn ready<P: Probes>(State(p): State<Arc<P>>) -> Response {
    if p.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_util::sync::CancellationToken;

    struct Fake(AtomicBool);

    impl Probes for Fake {
        fn metrics_text(&self) -> String {
            "# EOF\n".into()
        }
        fn ready(&self) -> bool {
            self.0.load(Ordering::Relaxed)
        }
    }

    async fn get_path(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).await.unwrap();
        body
    }

    #[tokio::test]
    async fn metrics_health_and_readiness() {
        let fake = Arc::new(Fake(AtomicBool::new(false)));
        let cancel = CancellationToken::new();
        let (addr, _h) = crate::serve_http(
            "127.0.0.1:0".parse().unwrap(),
            router(fake.clone()),
            cancel.clone(),
        )
        .await
        .expect("bind");
        let m = get_path(addr, "/metrics").await;
        assert!(
            m.starts_with("HTTP/1.1 200") && m.contains(OPENMETRICS) && m.ends_with("# EOF\n"),
            "{m}"
        );
        assert!(get_path(addr, "/healthz").await.ends_with("ok\n"));
        assert!(get_path(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        fake.0.store(true, Ordering::Relaxed);
        assert!(get_path(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        cancel.cancel();
    }
}
