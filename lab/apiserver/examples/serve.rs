//! Run the lab API server standalone: `cargo run -p ferrolb-apiserver --example serve -- 127.0.0.1:6443`.

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:6443".to_string());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let url = format!("http://{}", listener.local_addr()?);
    if let Some(path) = std::env::args().nth(2) {
        std::fs::write(path, ferrolb_apiserver::kubeconfig_for(&url))?;
    }
    ferrolb_apiserver::serve(listener).await
}
