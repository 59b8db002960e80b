//! CRUD, conflicts, errors and lists through a real kube client.

mod common;

use k8s_openapi::api::core::v1::{ConfigMap, Node, Service};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use serde_json::json;

fn cm(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

#[tokio::test]
async fn configmap_crud_and_errors() -> anyhow::Result<()> {
    let (_server, client) = common::start().await?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &cm("a", &[("k", "v")]))
        .await?;
    let meta = &created.metadata;
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    assert!(meta.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));
    let rv1: u64 = meta.resource_version.as_deref().unwrap_or("").parse()?;

    let got = api.get("a").await?;
    assert_eq!(got.data, created.data);

    // Duplicate create.
    let s = common::status_of(api.create(&PostParams::default(), &cm("a", &[])).await);
    assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(s.message, "configmaps \"a\" already exists");

    // Missing object.
    let s = common::status_of(api.get("nope").await);
    assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
    assert_eq!(s.message, "configmaps \"nope\" not found");

    // Replace with the current RV works and bumps the RV.
    let mut upd = got.clone();
    upd.data = Some([("k".to_string(), "v2".to_string())].into());
    let replaced = api.replace("a", &PostParams::default(), &upd).await?;
    let rv2: u64 = replaced
        .metadata
        .resource_version
        .as_deref()
        .unwrap_or("")
        .parse()?;
    assert!(rv2 > rv1);
    assert_eq!(replaced.metadata.uid, created.metadata.uid);

    // Replace with the stale RV: 409 Conflict.
    let s = common::status_of(api.replace("a", &PostParams::default(), &upd).await);
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        s.message,
        "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again"
    );

    // Replace without RV is unconditional.
    upd.metadata.resource_version = None;
    upd.data = Some([("k".to_string(), "v3".to_string())].into());
    let r3 = api.replace("a", &PostParams::default(), &upd).await?;
    assert_eq!(
        r3.data
            .as_ref()
            .and_then(|d| d.get("k"))
            .map(String::as_str),
        Some("v3")
    );

    // Namespace must exist.
    let other: Api<ConfigMap> = Api::namespaced(client.clone(), "missing-ns");
    let s = common::status_of(other.create(&PostParams::default(), &cm("x", &[])).await);
    assert_eq!(
        (s.code, s.message.as_str()),
        (404, "namespaces \"missing-ns\" not found")
    );

    // Delete returns the object and then it is gone.
    let d = api.delete("a", &DeleteParams::default()).await?;
    assert!(d.is_left());
    let s = common::status_of(api.get("a").await);
    assert_eq!(s.code, 404);
    let s = common::status_of(api.delete("a", &DeleteParams::default()).await);
    assert_eq!(s.code, 404);
    Ok(())
}

#[tokio::test]
async fn generate_name_and_lists() -> anyhow::Result<()> {
    let (_server, client) = common::start().await?;
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let names: Vec<String> = nss
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    let ns = serde_json::from_value(json!({"metadata": {"name": "other"}}))?;
    nss.create(&PostParams::default(), &ns).await?;

    let svc = |name: Option<&str>, gname_: Option<&str>, app: &str| -> anyhow::Result<Service> {
        Ok(serde_json::from_value(json!({
            "metadata": {"name": name, "generateName": gname_, "labels": {"app": app}},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}
        }))?)
    };
    let def: Api<Service> = Api::namespaced(client.clone(), "default");
    let oth: Api<Service> = Api::namespaced(client.clone(), "other");
    let g = def
        .create(&PostParams::default(), &svc(None, Some("web-"), "web")?)
        .await?;
    let gname = g.metadata.name.clone().unwrap_or_default();
    assert!(gname.starts_with("web-") && gname.len() == 9, "{gname}");
    // Server-side defaults a client can see.
    let spec = g.spec.unwrap_or_default();
    assert_eq!(spec.external_traffic_policy.as_deref(), Some("Cluster"));
    assert!(spec.cluster_ip.is_some());
    let port = spec
        .ports
        .unwrap_or_default()
        .into_iter()
        .next()
        .unwrap_or_default();
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
    assert!(port.node_port.is_some_and(|p| (30000..32768).contains(&p)));

    def.create(&PostParams::default(), &svc(Some("db"), None, "db")?)
        .await?;
    oth.create(&PostParams::default(), &svc(Some("web"), None, "web")?)
        .await?;
    let all: Api<Service> = Api::all(client.clone());
    let list = all.list(&ListParams::default()).await?;
    assert_eq!(list.items.len(), 3);
    assert!(list.metadata.resource_version.is_some());
    assert_eq!(def.list(&ListParams::default()).await?.items.len(), 2);
    let web = all.list(&ListParams::default().labels("app=web")).await?;
    assert_eq!(web.items.len(), 2);
    let notweb = all
        .list(&ListParams::default().labels("app notin (web)"))
        .await?;
    assert_eq!(notweb.items.len(), 1);
    let by_name = all
        .list(&ListParams::default().fields("metadata.name=web"))
        .await?;
    assert_eq!(by_name.items.len(), 1);
    assert_eq!(
        by_name.items[0].metadata.namespace.as_deref(),
        Some("other")
    );
    let by_ns = all
        .list(&ListParams::default().fields("metadata.namespace!=other"))
        .await?;
    assert_eq!(by_ns.items.len(), 2);

    let s = common::status_of(all.list(&ListParams::default().labels("app in (web")).await);
    assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"));

    // Deleting a namespace deletes what is in it.
    nss.delete("other", &DeleteParams::default()).await?;
    assert_eq!(all.list(&ListParams::default()).await?.items.len(), 2);

    // Cluster-scoped nodes.
    let nodes: Api<Node> = Api::all(client);
    let n: Node = serde_json::from_value(
        json!({"metadata": {"name": "n1"}, "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}}),
    )?;
    let n = nodes.create(&PostParams::default(), &n).await?;
    assert_eq!(n.metadata.namespace, None);
    // Node status may be set on create (unlike Service).
    assert!(
        n.status
            .and_then(|s| s.addresses)
            .is_some_and(|a| a.len() == 1)
    );
    Ok(())
}

#[tokio::test]
async fn event_field_selectors() -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event;
    let (_server, client) = common::start().await?;
    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    for (name, obj) in [("e1", "web"), ("e2", "db")] {
        let e: CoreEvent = serde_json::from_value(json!({
            "metadata": {"name": name},
            "involvedObject": {"kind": "Service", "name": obj, "namespace": "default"},
            "reason": "IPAllocated", "type": "Normal", "source": {"component": "ctrl"}
        }))?;
        core.create(&PostParams::default(), &e).await?;
    }
    let lp = ListParams::default()
        .fields("involvedObject.kind=Service,involvedObject.name=web,source=ctrl");
    let got: Vec<String> = core
        .list(&lp)
        .await?
        .items
        .into_iter()
        .filter_map(|e| e.metadata.name)
        .collect();
    assert_eq!(got, ["e1"]);
    let s = common::status_of(
        core.list(&ListParams::default().fields("regarding.name=web"))
            .await,
    );
    assert_eq!(
        (s.code, s.message.as_str()),
        (400, "field label not supported: regarding.name")
    );

    let new: Api<Event> = Api::namespaced(client, "default");
    let e: Event = serde_json::from_value(json!({
        "metadata": {"name": "n1"}, "eventTime": "2026-01-01T00:00:00.000000Z",
        "regarding": {"kind": "Service", "name": "web"}, "reason": "X", "type": "Warning",
        "reportingController": "ferrolb", "reportingInstance": "i", "action": "Allocate"
    }))?;
    new.create(&PostParams::default(), &e).await?;
    let lp = ListParams::default().fields("regarding.name=web,type=Warning");
    assert_eq!(new.list(&lp).await?.items.len(), 1);
    let lp = ListParams::default().fields("regarding.name!=web");
    assert_eq!(new.list(&lp).await?.items.len(), 0);
    Ok(())
}
