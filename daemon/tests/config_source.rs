//! `config_source` against both API servers: on the lab server (no CRDs) the metallb.io
//! kinds and Secrets are found absent and the ConfigMap is the configuration; on the real
//! kube-apiserver with the CRDs installed, CRs win over the ConfigMap, `passwordSecret` is
//! read from a basic-auth Secret (and a missing one keeps the last good configuration), and
//! deleting the CRs gives the ConfigMap back.

use std::time::{Duration, Instant};

use ferrolb_daemon::config_source::{self, ConfigState, Options, Origin};
use ferrolb_kubeapi::TestApi;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const NS: &str = "metallb-system";

const CM: &str = "peers:\n- peer-address: 10.0.0.1\n  peer-asn: 64500\n  my-asn: 64501\n\
                  address-pools:\n- name: cm-pool\n  protocol: bgp\n  addresses: [10.9.0.0/24]\n";

/// Waits until the state satisfies `ok`.
async fn until(
    rx: &mut watch::Receiver<ConfigState>,
    what: &str,
    ok: impl Fn(&ConfigState) -> bool,
) -> ConfigState {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        {
            let st = rx.borrow_and_update();
            if ok(&st) {
                return st.clone();
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, rx.changed()).await.is_err() {
            panic!("timed out waiting for {what}; state: {:#?}", rx.borrow());
        }
    }
}

fn pool_names(st: &ConfigState) -> Vec<String> {
    st.config
        .as_ref()
        .map(|c| c.pools.iter().map(|p| p.name.clone()).collect())
        .unwrap_or_default()
}

async fn setup(api: &TestApi) -> kube::Client {
    let c = api.client().await;
    if api.is_real() {
        ferrolb_kubeapi::apply::apply_rbac_manifests(&c, "config-source-test")
            .await
            .expect("namespace");
        ferrolb_kubeapi::apply::apply_crd_manifests(&c, "config-source-test")
            .await
            .expect("CRDs");
    } else {
        let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(c.clone());
        let obj = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
        ns.create(&PostParams::default(), &obj)
            .await
            .expect("namespace");
    }
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), NS);
    let cm =
        serde_json::from_value(json!({"metadata": {"name": "config"}, "data": {"config": CM}}))
            .unwrap();
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("ConfigMap");
    c
}

fn start(c: &kube::Client, cancel: &CancellationToken) -> watch::Receiver<ConfigState> {
    let mut opts = Options::new(NS, "config");
    opts.read_secrets = true;
    config_source::spawn(c.clone(), opts, cancel.child_token())
}

async fn create(c: &kube::Client, kind: &str, version: &str, plural: &str, obj: Value) {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metallb.io", version, kind),
        plural,
    );
    let api: Api<DynamicObject> = Api::namespaced_with(c.clone(), NS, &ar);
    let mut o: DynamicObject = serde_json::from_value(obj).unwrap();
    o.types = Some(kube::core::TypeMeta {
        api_version: format!("metallb.io/{version}"),
        kind: kind.into(),
    });
    api.create(&PostParams::default(), &o)
        .await
        .expect("create");
}

async fn delete(c: &kube::Client, kind: &str, version: &str, plural: &str, name: &str) {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metallb.io", version, kind),
        plural,
    );
    let api: Api<DynamicObject> = Api::namespaced_with(c.clone(), NS, &ar);
    api.delete(name, &DeleteParams::default())
        .await
        .expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_crds_the_configmap_is_the_configuration() {
    let api = TestApi::lab().await;
    let c = setup(&api).await;
    let cancel = CancellationToken::new();
    let mut rx = start(&c, &cancel);
    let st = until(&mut rx, "the ConfigMap loaded", |s| s.config.is_some()).await;
    assert_eq!(st.origin, Some(Origin::ConfigMap));
    assert_eq!(pool_names(&st), ["cm-pool"]);
    let absent: Vec<&str> = st.absent.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        absent,
        [
            "IPAddressPool",
            "BGPPeer",
            "BGPAdvertisement",
            "L2Advertisement",
            "BFDProfile",
            "Community",
            "Secret"
        ],
        "the lab API server serves none of them"
    );
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crs_win_and_password_secrets_are_read() {
    let Some(api) = TestApi::real("config_source::crs_win_and_password_secrets_are_read").await
    else {
        return;
    };
    let c = setup(&api).await;
    let cancel = CancellationToken::new();
    let mut rx = start(&c, &cancel);
    let st = until(&mut rx, "the ConfigMap loaded", |s| s.config.is_some()).await;
    assert_eq!(st.origin, Some(Origin::ConfigMap));
    assert!(st.absent.is_empty(), "everything served: {:?}", st.absent);

    // A basic-auth Secret and a peer using it, a pool and an advertisement.
    let secrets: Api<Secret> = Api::namespaced(c.clone(), NS);
    let secret = |name: &str, kind: &str| -> Secret {
        serde_json::from_value(json!({
            "metadata": {"name": name}, "type": kind, "stringData": {"password": "s3cret"}
        }))
        .unwrap()
    };
    secrets
        .create(
            &PostParams::default(),
            &secret("bgp-auth", "kubernetes.io/basic-auth"),
        )
        .await
        .unwrap();
    // An Opaque Secret of the same key: never fetched (field selector on the type).
    secrets
        .create(&PostParams::default(), &secret("opaque", "Opaque"))
        .await
        .unwrap();
    create(
        &c,
        "IPAddressPool",
        "v1beta1",
        "ipaddresspools",
        json!({"metadata": {"name": "cr-pool"}, "spec": {"addresses": ["10.8.0.0/24"]}}),
    )
    .await;
    create(
        &c,
        "BGPPeer",
        "v1beta2",
        "bgppeers",
        json!({"metadata": {"name": "router"}, "spec": {
            "myASN": 64501, "peerASN": 64500, "peerAddress": "10.0.0.1",
            "passwordSecret": {"name": "bgp-auth", "namespace": NS}}}),
    )
    .await;
    let st = until(&mut rx, "the CRs in force", |s| {
        s.origin == Some(Origin::Resources)
            && s.config.as_ref().is_some_and(|c| !c.peers.is_empty())
    })
    .await;
    assert_eq!(pool_names(&st), ["cr-pool"]);
    let cfg = st.config.clone().unwrap();
    assert_eq!(cfg.peers[0].password.as_deref(), Some("s3cret"));
    assert!(
        st.warnings
            .iter()
            .any(|w| w.to_string().contains("ConfigMap/config")),
        "the ignored ConfigMap is named: {:?}",
        st.warnings
    );

    // The peer pointed at the Opaque Secret: refused, the last good configuration stays.
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metallb.io", "v1beta2", "BGPPeer"),
        "bgppeers",
    );
    let peers: Api<DynamicObject> = Api::namespaced_with(c.clone(), NS, &ar);
    let patch = json!({"spec": {"passwordSecret": {"name": "opaque", "namespace": NS}}});
    peers
        .patch(
            "router",
            &Default::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
    let st = until(&mut rx, "the peer refused", |s| s.stale.is_some()).await;
    let errors = st.error_lines();
    assert!(
        errors.contains("BGPPeer/router spec.passwordSecret.name")
            && errors.contains(
                "Secret metallb-system/opaque of type kubernetes.io/basic-auth not found"
            ),
        "{errors}"
    );
    assert_eq!(
        st.config.as_deref(),
        Some(&*cfg),
        "the last good configuration stays"
    );

    // The CRs deleted: the ConfigMap is the configuration again.
    delete(&c, "BGPPeer", "v1beta2", "bgppeers", "router").await;
    delete(&c, "IPAddressPool", "v1beta1", "ipaddresspools", "cr-pool").await;
    let st = until(&mut rx, "the ConfigMap back", |s| {
        s.origin == Some(Origin::ConfigMap) && s.stale.is_none()
    })
    .await;
    assert_eq!(pool_names(&st), ["cm-pool"]);
    cancel.cancel();
}
