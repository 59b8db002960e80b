//! The lab Kubernetes API server (a lab and test fixture, not a product component).
//!
//! An in-memory server speaking the real Kubernetes REST and watch protocol for the
//! resources ferrolb uses, so the controller and speaker can be tested with their normal
//! `kube::Client` built from a kubeconfig. See `README.md` for what is and is not modelled.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let server = ferrolb_apiserver::ApiServer::start().await?;
//! server.write_kubeconfig("/tmp/kubeconfig")?;
//! println!("{}", server.url());
//! # Ok(()) }
//! ```

mod apply;
pub mod audit;
mod defaults;
mod discovery;
mod fields;
mod patch;
pub mod resources;
mod selector;
mod server;
pub mod status;
mod store;
mod table;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use audit::AuditRecord;
use server::App;
pub use server::Config;

/// Serve the API on `listener` until `shutdown` resolves.
pub async fn serve_with_shutdown(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = App::new(config);
    serve_app(listener, app, shutdown).await
}

/// Serve the API on `listener` forever (the `ferrolb-lab apiserver --listen` entry point).
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    serve_with_shutdown(listener, Config::default(), std::future::pending()).await
}

async fn serve_app(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "lab API server listening");
    }
    axum::serve(listener, server::router(app))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Kubeconfig YAML pointing at `url` (plain HTTP, a dummy bearer token).
pub fn kubeconfig_for(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: ferrolb-lab\n  cluster:\n    server: {url}\n\
         users:\n- name: ferrolb-lab\n  user:\n    token: ferrolb-lab-dummy-token\n\
         contexts:\n- name: ferrolb-lab\n  context:\n    cluster: ferrolb-lab\n    user: ferrolb-lab\n    namespace: default\n\
         current-context: ferrolb-lab\npreferences: {{}}\n"
    )
}

/// An in-process API server on a random loopback port; stops when dropped.
pub struct ApiServer;

impl ApiServer {
    /// Start with default settings on `127.0.0.1:0`.
    pub async fn start() -> std::io::Result<ApiServerHandle> {
        Self::start_with(Config::default()).await
    }

    /// Start with `config` on `127.0.0.1:0`.
    pub async fn start_with(config: Config) -> std::io::Result<ApiServerHandle> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Start with `config` on `addr` (port 0 picks a free port).
    pub async fn start_on(addr: SocketAddr, config: Config) -> std::io::Result<ApiServerHandle> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = App::new(config);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn({
            let app = app.clone();
            async move {
                let shutdown = async move {
                    let _ = rx.await;
                };
                if let Err(e) = serve_app(listener, app, shutdown).await {
                    tracing::error!(error = %e, "lab API server stopped");
                }
            }
        });
        Ok(ApiServerHandle {
            addr,
            app,
            shutdown: Some(tx),
            task,
        })
    }
}

/// Why [`ApiServerHandle::client`] could not build a client.
#[cfg(feature = "client")]
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The generated kubeconfig was not accepted.
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// The client could not be built.
    #[error("kube client: {0}")]
    Client(#[from] kube::Error),
}

/// A running in-process server.
pub struct ApiServerHandle {
    addr: SocketAddr,
    app: Arc<App>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl ApiServerHandle {
    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig for this server.
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig_for(&self.url())
    }

    /// Write the kubeconfig to `path`.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    /// The kube configuration a component would load from [`Self::kubeconfig_yaml`].
    #[cfg(feature = "client")]
    pub async fn kube_config(&self) -> Result<kube::Config, ClientError> {
        let kc = kube::config::Kubeconfig::from_yaml(&self.kubeconfig_yaml())?;
        let options = kube::config::KubeConfigOptions::default();
        Ok(kube::Config::from_custom_kubeconfig(kc, &options).await?)
    }

    /// A kube client for this server, built from its kubeconfig exactly as the
    /// controller and the speaker build theirs.
    #[cfg(feature = "client")]
    pub async fn client(&self) -> Result<kube::Client, ClientError> {
        Ok(kube::Client::try_from(self.kube_config().await?)?)
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.app.store.current_rv()
    }

    /// Forget watch history up to `rv`: watches resuming from older versions get 410.
    pub fn compact_to(&self, rv: u64) {
        self.app.store.compact_to(rv);
    }

    /// Simulate etcd compaction plus a watch-cache reset: history is dropped, the
    /// resourceVersion advances, and all open watches are closed, so every watcher's next
    /// watch gets 410 Expired and must relist. Returns the new compaction floor.
    pub fn compact(&self) -> u64 {
        self.app.store.compact()
    }

    /// Every request served so far, classified as the Kubernetes authorizer would see it
    /// (verb, group, resource, subresource, namespace, name), in arrival order.
    pub fn audit(&self) -> Vec<AuditRecord> {
        self.app.audit.snapshot()
    }

    /// Forget the recorded requests (e.g. a test's own setup calls).
    pub fn clear_audit(&self) {
        self.app.audit.clear();
    }

    /// Stop the server and wait for it to finish.
    pub async fn shutdown(mut self) {
        self.app.store.close_watches();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Open watch streams keep connections alive; don't wait on them forever.
        self.task.abort();
    }
}

impl Drop for ApiServerHandle {
    fn drop(&mut self) {
        self.app.store.close_watches();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.abort();
    }
}
