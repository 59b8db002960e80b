//! The CRDs on the real kube-apiserver (v1.28.7, `../shared/k8s`): they install and become
//! Established, and every MetalLB example CR (the fixtures of `metallb_examples.rs`) is
//! accepted by the server's structural schema and CEL rules, comes back from it (with the
//! server's defaults) and converts to the same model as the file does. What the server
//! refuses is listed, with why. Skipped with a message when the binaries are missing (an
//! error under `CI=true`).

mod support;

use ferrolb_crds::to_model::{Resources, to_config};
use ferrolb_crds::types::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
};
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use serde_json::{Value, json};
use support::{data, outcome};

const NS: &str = "metallb-system";

/// Fixtures with a document the server refuses, and a piece of the reason.
const REFUSED: &[(&str, &str)] = &[
    // A frrk8s.metallb.io object (MetalLB's FRR-K8s mode): no such CRD here.
    ("metallb-docs/advanced-bgp-11.yaml", "FRRConfiguration"),
];

/// A namespaced `metallb.io` kind, typed.
trait Kind:
    kube::Resource<Scope = kube::core::NamespaceResourceScope>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
{
}

impl<T> Kind for T where
    T: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
{
}

async fn list_all(c: &kube::Client) -> Resources {
    async fn list<K>(c: &kube::Client) -> Vec<K>
    where
        K: Kind,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(c.clone(), NS);
        api.list(&ListParams::default()).await.expect("list").items
    }
    Resources {
        pools: list::<IPAddressPool>(c).await,
        peers: list::<BGPPeer>(c).await,
        bgp_advertisements: list::<BGPAdvertisement>(c).await,
        l2_advertisements: list::<L2Advertisement>(c).await,
        bfd_profiles: list::<BFDProfile>(c).await,
        communities: list::<Community>(c).await,
        nodes: None,
    }
}

async fn delete_all(c: &kube::Client) {
    async fn del<K>(c: &kube::Client)
    where
        K: Kind,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(c.clone(), NS);
        api.delete_collection(&DeleteParams::default(), &ListParams::default())
            .await
            .expect("delete collection");
    }
    del::<IPAddressPool>(c).await;
    del::<BGPPeer>(c).await;
    del::<BGPAdvertisement>(c).await;
    del::<L2Advertisement>(c).await;
    del::<BFDProfile>(c).await;
    del::<Community>(c).await;
}

/// The model of a fixture read as a file.
fn from_file(text: &str) -> Vec<String> {
    let (r, _) = ferrolb_crds::resources::parse_resources(text).expect("fixture reads");
    outcome(&to_config(&r))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metallb_example_is_accepted_by_the_real_server_and_converts_the_same() {
    let Some(api) = ferrolb_kubeapi::TestApi::real("real_apiserver::examples").await else {
        return;
    };
    let c = api.client().await;
    ferrolb_kubeapi::apply::apply_rbac_manifests(&c, "crds-test")
        .await
        .expect("namespace");
    ferrolb_kubeapi::apply::apply_crd_manifests(&c, "crds-test")
        .await
        .expect("CRDs install and become Established");

    let mut files = Vec::new();
    for dir in ["metallb-docs", "metallb-configsamples"] {
        for e in std::fs::read_dir(data(dir)).expect("fixture dir") {
            let name = e.expect("entry").file_name().to_string_lossy().into_owned();
            files.push(format!("{dir}/{name}"));
        }
    }
    files.sort();
    let mut failures = Vec::new();
    let mut compared = 0;
    for file in &files {
        let text = std::fs::read_to_string(data(file)).expect("fixture");
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("YAML");
        let mut refused = None;
        for mut d in docs.into_iter().filter(|d| d.is_object()) {
            let group = d["apiVersion"].as_str().unwrap_or("").to_string();
            if d["kind"] == "Namespace" {
                continue;
            }
            if (group.starts_with("metallb.io/") || group == "v1")
                && d["metadata"]["namespace"].is_null()
            {
                d["metadata"]["namespace"] = Value::from(NS);
            }
            if let Err(e) = ferrolb_kubeapi::apply::apply_value(&c, "crds-test", &d).await {
                refused = Some(format!("{e}"));
            }
        }
        let expected_refusal = REFUSED.iter().find(|(f, _)| f == file);
        match (&refused, expected_refusal) {
            (Some(e), Some((_, why))) if e.contains(why) => {}
            (Some(e), _) => failures.push(format!("{file}: refused by the server: {e}")),
            (None, Some(_)) => failures.push(format!("{file}: expected a refusal, accepted")),
            (None, None) => {
                let back = outcome(&to_config(&list_all(&c).await));
                let want = from_file(&text);
                compared += 1;
                if back != want {
                    failures.push(format!(
                        "{file}: read back from the server\n  {back:#?}\n  from the file\n  {want:#?}"
                    ));
                }
            }
        }
        delete_all(&c).await;
    }
    eprintln!(
        "{} fixtures: {compared} accepted and converted the same, {} refused as expected",
        files.len(),
        REFUSED.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(compared >= 40, "{compared} fixtures compared");

    // Invalid CRs the schema (MetalLB's bounds, enums and CEL rules) refuses, each with the
    // field named.
    let refused = [
        (
            json!({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
                   "metadata": {"name": "p0", "namespace": NS},
                   "spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1", "peerPort": 0}}),
            "spec.peerPort",
        ),
        (
            json!({"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
                   "metadata": {"name": "a0", "namespace": NS},
                   "spec": {"aggregationLength": 0}}),
            "spec.aggregationLength",
        ),
        (
            json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                   "metadata": {"name": "nothing", "namespace": NS}, "spec": {}}),
            "spec.addresses",
        ),
        (
            json!({"apiVersion": "metallb.io/v1beta1", "kind": "BFDProfile",
                   "metadata": {"name": "fast", "namespace": NS},
                   "spec": {"detectMultiplier": 1}}),
            "spec.detectMultiplier",
        ),
    ];
    for (obj, field) in refused {
        let e = ferrolb_kubeapi::apply::apply_value(&c, "crds-test", &obj)
            .await
            .expect_err("refused by the schema");
        let text = format!("{e}");
        assert!(text.contains(field), "{field}: {text}");
    }
    // enableGracefulRestart is immutable (MetalLB's CEL rule).
    let peer = |gr: bool| {
        json!({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
               "metadata": {"name": "gr", "namespace": NS},
               "spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1",
                        "enableGracefulRestart": gr}})
    };
    ferrolb_kubeapi::apply::apply_value(&c, "crds-test", &peer(true))
        .await
        .expect("a GR peer");
    let e = ferrolb_kubeapi::apply::apply_value(&c, "crds-test", &peer(false))
        .await
        .expect_err("GR cannot be switched off in place");
    assert!(format!("{e}").contains("enableGracefulRestart"), "{e}");
    delete_all(&c).await;
}
