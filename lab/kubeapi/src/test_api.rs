//! One handle for "the API server this test runs against": the in-memory lab API server
//! (a fresh one per test) or the real kube-apiserver (the binary's shared one, for this
//! test's turn). Kubernetes-facing tests are written once against [`TestApi`] and run on
//! both with [`crate::on_both_servers!`].

use std::path::Path;

use ferrolb_apiserver::{ApiServer, ApiServerHandle};

use crate::server::KubeApiServer;
use crate::shared::{self, Turn};

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// ferrolb's in-memory lab API server.
    Lab,
    /// The real kube-apiserver v1.28.7 with etcd.
    Real,
}

enum Inner {
    Lab(ApiServerHandle),
    Real(Turn),
}

/// The API server of one test.
pub struct TestApi {
    inner: Inner,
}

impl std::fmt::Debug for TestApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TestApi({:?})", self.kind())
    }
}

impl TestApi {
    /// A fresh lab API server.
    pub async fn lab() -> TestApi {
        let server = ApiServer::start().await.expect("start the lab API server");
        TestApi {
            inner: Inner::Lab(server),
        }
    }

    /// This test's turn on the real kube-apiserver, or `None` (after saying that `test`
    /// ran against the lab server only) when the binaries are missing. Under `CI=true` a
    /// missing binary panics.
    pub async fn real(test: &str) -> Option<TestApi> {
        crate::assets::require(test)?;
        Some(TestApi {
            inner: Inner::Real(shared::exclusive().await),
        })
    }

    /// Which server this is.
    pub fn kind(&self) -> Kind {
        match self.inner {
            Inner::Lab(_) => Kind::Lab,
            Inner::Real(_) => Kind::Real,
        }
    }

    /// True on the real kube-apiserver.
    pub fn is_real(&self) -> bool {
        self.kind() == Kind::Real
    }

    /// The lab server (lab-only features: its audit log, `compact`).
    pub fn lab_server(&self) -> Option<&ApiServerHandle> {
        match &self.inner {
            Inner::Lab(s) => Some(s),
            Inner::Real(_) => None,
        }
    }

    /// The real server (outages, its audit log, ServiceAccount tokens).
    pub fn real_server(&self) -> Option<&'static KubeApiServer> {
        match &self.inner {
            Inner::Lab(_) => None,
            Inner::Real(t) => Some(t.server),
        }
    }

    /// A kubeconfig with full rights (the admin's on the real server).
    pub fn admin_kubeconfig(&self) -> String {
        match &self.inner {
            Inner::Lab(s) => s.kubeconfig_yaml(),
            Inner::Real(t) => t.server.admin_kubeconfig(),
        }
    }

    /// Writes [`Self::admin_kubeconfig`] to `path`.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.admin_kubeconfig())
    }

    /// A kubeconfig for ServiceAccount `namespace/name`: a TokenRequest token on the real
    /// server (RBAC applies), the lab server's kubeconfig there (it does not authorize).
    pub async fn service_account_kubeconfig(&self, namespace: &str, name: &str) -> String {
        match &self.inner {
            Inner::Lab(s) => s.kubeconfig_yaml(),
            Inner::Real(t) => t
                .server
                .service_account_kubeconfig(namespace, name)
                .await
                .unwrap_or_else(|e| panic!("token for {namespace}/{name}: {e}")),
        }
    }

    /// The admin's kube configuration (to add headers, timeouts, ...).
    pub async fn admin_config(&self) -> kube::Config {
        crate::kubeconfig::config_from_yaml(&self.admin_kubeconfig())
            .await
            .expect("admin kubeconfig")
    }

    /// An admin client, built in the caller's runtime.
    pub async fn client(&self) -> kube::Client {
        kube::Client::try_from(self.admin_config().await).expect("admin kube client")
    }

    /// Makes every watcher relist: the lab server drops its history and closes every watch;
    /// the real one is restarted after an etcd compaction (so resuming watches get 410).
    pub async fn force_relist(&self) {
        match &self.inner {
            Inner::Lab(s) => {
                s.compact();
            }
            Inner::Real(t) => {
                let server = t.server;
                tokio::task::spawn_blocking(move || server.force_relist())
                    .await
                    .expect("force_relist panicked")
                    .unwrap_or_else(|e| panic!("forcing a relist: {e}"));
            }
        }
    }
}

/// Runs the async test functions named (each `async fn NAME(api: TestApi)`) twice: as
/// `NAME::lab` against a fresh lab API server and as `NAME::real` against the binary's
/// shared real kube-apiserver (skipped with a message when it is not available, an error
/// under `CI=true`).
#[macro_export]
macro_rules! on_both_servers {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn lab() {
                    super::$name($crate::TestApi::lab().await).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn real() {
                    if let Some(api) = $crate::TestApi::real(concat!(module_path!(), "::real")).await {
                        super::$name(api).await
                    }
                }
            }
        )+
    };
}

/// For synchronous tests that start their own API server of a given [`Kind`] (the netns
/// lab's end-to-end tests): each `fn NAME(kind: Kind)` runs as `NAME::lab` and `NAME::real`,
/// the latter skipped with a message when the binaries are missing (an error under
/// `CI=true`).
#[macro_export]
macro_rules! on_both_kinds {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[test]
                fn lab() {
                    super::$name($crate::Kind::Lab)
                }
                #[test]
                fn real() {
                    if $crate::assets::require(concat!(module_path!(), "::real")).is_some() {
                        super::$name($crate::Kind::Real)
                    }
                }
            }
        )+
    };
}
