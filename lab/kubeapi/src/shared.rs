//! One real cluster per test binary: started on first use (a few seconds), shared by the
//! binary's tests one at a time, torn down when the process exits.
//!
//! Tests take turns ([`exclusive`]) because ferrolb's daemons watch Services in every
//! namespace: two tests' controllers on one server would allocate each other's Services.
//! Each turn starts from a clean slate ([`reset`]): Services, EndpointSlices, ConfigMaps,
//! Leases, Events and Nodes of earlier tests are deleted, so tests can use fixed names.
//! Namespaces stay (without a namespace controller a deleted one stays Terminating).

use std::sync::OnceLock;

use futures::StreamExt;
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};

use crate::server::{KubeApiServer, Options};

static SHARED: OnceLock<Result<KubeApiServer, String>> = OnceLock::new();
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

extern "C" fn teardown_at_exit() {
    if let Some(Ok(s)) = SHARED.get() {
        s.teardown();
    }
}

/// The binary's shared cluster, started on first call (blocking: call it from
/// `spawn_blocking` or a plain thread). The error is the start failure, kept for every
/// later caller.
pub fn server() -> Result<&'static KubeApiServer, String> {
    SHARED
        .get_or_init(|| {
            let s = KubeApiServer::start(Options::default()).map_err(|e| e.to_string())?;
            // SAFETY: registering a plain `extern "C" fn` that only touches a static.
            unsafe {
                libc::atexit(teardown_at_exit);
            }
            Ok(s)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A turn on the shared cluster: no other test of this binary uses it until dropped.
pub struct Turn {
    /// The cluster.
    pub server: &'static KubeApiServer,
    _guard: tokio::sync::MutexGuard<'static, ()>,
}

/// Waits for this test's turn, starts the cluster if needed and cleans it. Panics when it
/// cannot start (a test that asked for the real server must not silently pass).
pub async fn exclusive() -> Turn {
    let guard = TURN.lock().await;
    let server = tokio::task::spawn_blocking(server)
        .await
        .expect("starting the shared kube-apiserver panicked")
        .unwrap_or_else(|e| panic!("the real kube-apiserver did not start: {e}"));
    // A previous turn may have left the API server stopped (an outage test that failed).
    if server.apiserver_pid().is_none() {
        tokio::task::spawn_blocking(|| server.start_apiserver())
            .await
            .expect("restart panicked")
            .unwrap_or_else(|e| panic!("restarting kube-apiserver: {e}"));
    }
    let client = server.client().await.unwrap_or_else(|e| panic!("{e}"));
    reset(&client)
        .await
        .unwrap_or_else(|e| panic!("cleaning the shared kube-apiserver: {e}"));
    Turn {
        server,
        _guard: guard,
    }
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// True for what the API server itself owns and tests never touch.
fn system_owned(ns: Option<&str>, name: &str, plural: &str) -> bool {
    let ns = ns.unwrap_or_default();
    ns.starts_with("kube-")
        || (ns == "default" && name == "kubernetes")
        || (plural == "configmaps" && name == "kube-root-ca.crt")
}

/// Deletes what earlier tests created (see the module docs).
pub async fn reset(client: &kube::Client) -> Result<(), kube::Error> {
    let kinds = [
        resource("", "v1", "Service", "services"),
        resource("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
        resource("", "v1", "ConfigMap", "configmaps"),
        resource("coordination.k8s.io", "v1", "Lease", "leases"),
        resource("", "v1", "Event", "events"),
        resource("", "v1", "Node", "nodes"),
        // The metallb.io objects (their CRDs stay once a test installed them: deleting a
        // CRD finishes asynchronously, and a later test applying it again would race).
        resource("metallb.io", "v1beta1", "IPAddressPool", "ipaddresspools"),
        resource(
            "metallb.io",
            "v1beta1",
            "BGPAdvertisement",
            "bgpadvertisements",
        ),
        resource(
            "metallb.io",
            "v1beta1",
            "L2Advertisement",
            "l2advertisements",
        ),
        resource("metallb.io", "v1beta2", "BGPPeer", "bgppeers"),
        resource("metallb.io", "v1beta1", "BFDProfile", "bfdprofiles"),
        resource("metallb.io", "v1beta1", "Community", "communities"),
        resource("", "v1", "Secret", "secrets"),
    ];
    for ar in &kinds {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), ar);
        let list = match api.list_metadata(&ListParams::default()).await {
            Ok(list) => list,
            // A CRD no test installed yet.
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            Err(e) => return Err(e),
        };
        let doomed: Vec<(Option<String>, String)> = list
            .items
            .into_iter()
            .filter_map(|o| Some((o.metadata.namespace, o.metadata.name?)))
            .filter(|(ns, name)| !system_owned(ns.as_deref(), name, &ar.plural))
            .collect();
        let results: Vec<Result<(), kube::Error>> = futures::stream::iter(doomed)
            .map(|(ns, name)| {
                let api: Api<DynamicObject> = match &ns {
                    Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
                    None => Api::all_with(client.clone(), ar),
                };
                async move {
                    match api.delete(&name, &DeleteParams::default()).await {
                        Ok(_) => Ok(()),
                        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                        Err(e) => Err(e),
                    }
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
    }
    Ok(())
}
