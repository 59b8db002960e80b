//! The four PATCH types, the status subresource rules and server-side apply.

mod common;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

fn service(name: &str) -> anyhow::Result<Service> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "9.9.9.9"}]}}
    }))?)
}

fn ingress_ips(s: &Service) -> Vec<String> {
    s.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|i| i.iter().filter_map(|i| i.ip.clone()).collect())
        .unwrap_or_default()
}

fn port_names(s: &Service) -> Vec<(i32, String)> {
    s.spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .map(|ps| {
            ps.iter()
                .map(|p| (p.port, p.name.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn patch_types_and_status_subresource() -> anyhow::Result<()> {
    let (_server, client) = common::start().await?;
    let api: Api<Service> = Api::namespaced(client, "default");
    let created = api.create(&PostParams::default(), &service("web")?).await?;
    // Creating a Service clears its status, like the real create strategy.
    assert!(ingress_ips(&created).is_empty());
    assert_eq!(created.metadata.generation, Some(1));

    // Merge patch on the main resource: spec/labels change, status ignored.
    let p = json!({"metadata": {"labels": {"tier": "front"}}, "spec": {"sessionAffinity": "ClientIP"},
        "status": {"loadBalancer": {"ingress": [{"ip": "1.1.1.1"}]}}});
    let s = api
        .patch("web", &PatchParams::default(), &Patch::Merge(&p))
        .await?;
    assert_eq!(
        s.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("tier"))
            .map(String::as_str),
        Some("front")
    );
    assert_eq!(
        s.spec.as_ref().and_then(|s| s.session_affinity.as_deref()),
        Some("ClientIP")
    );
    assert!(
        ingress_ips(&s).is_empty(),
        "main-resource patch must not change status"
    );
    assert_eq!(s.metadata.generation, Some(2));

    // patch_status: status and metadata change, spec in the patch is ignored (kube-apiserver's
    // Service status strategy resets only `spec`; checked against v1.28.7).
    let p = json!({"metadata": {"labels": {"tier": "back"}}, "spec": {"sessionAffinity": "None"},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}});
    let s = api
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&p))
        .await?;
    assert_eq!(ingress_ips(&s), ["192.0.2.10"]);
    assert_eq!(
        s.spec.as_ref().and_then(|s| s.session_affinity.as_deref()),
        Some("ClientIP")
    );
    assert_eq!(
        s.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("tier"))
            .map(String::as_str),
        Some("back")
    );
    assert_eq!(
        s.metadata.generation,
        Some(2),
        "status writes do not bump generation"
    );

    // replace_status with a stale resourceVersion: 409.
    let mut stale = created.clone();
    stale.status = s.status.clone();
    let st = common::status_of(
        api.replace_status("web", &PostParams::default(), &stale)
            .await,
    );
    assert_eq!((st.code, st.reason.as_str()), (409, "Conflict"));

    // JSON patch.
    let p: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/sessionAffinity", "value": "ClientIP"},
        {"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}}
    ]))?;
    let s = api
        .patch("web", &PatchParams::default(), &Patch::Json::<()>(p))
        .await?;
    assert_eq!(
        s.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("a"))
            .map(String::as_str),
        Some("b")
    );
    let bad: json_patch::Patch = serde_json::from_value(
        json!([{"op": "test", "path": "/spec/sessionAffinity", "value": "nope"}]),
    )?;
    let st = common::status_of(
        api.patch("web", &PatchParams::default(), &Patch::Json::<()>(bad))
            .await,
    );
    assert_eq!(st.code, 422);

    // Strategic merge: ports merge by port; a merge patch would have replaced the list.
    let p =
        json!({"spec": {"ports": [{"port": 80, "name": "web"}, {"port": 8080, "name": "alt"}]}});
    let s = api
        .patch("web", &PatchParams::default(), &Patch::Strategic(&p))
        .await?;
    assert_eq!(
        port_names(&s),
        [
            (80, "web".to_string()),
            (443, "https".to_string()),
            (8080, "alt".to_string())
        ]
    );
    let p = json!({"spec": {"ports": [{"port": 443, "$patch": "delete"}]}});
    let s = api
        .patch("web", &PatchParams::default(), &Patch::Strategic(&p))
        .await?;
    assert_eq!(
        port_names(&s),
        [(80, "web".to_string()), (8080, "alt".to_string())]
    );
    let p = json!({"spec": {"ports": [{"port": 80, "name": "only"}]}});
    let s = api
        .patch("web", &PatchParams::default(), &Patch::Merge(&p))
        .await?;
    assert_eq!(port_names(&s), [(80, "only".to_string())]);
    // The allocated nodePort survives the list replacement (carried over by port).
    assert!(
        s.spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .and_then(|p| p[0].node_port)
            .is_some()
    );

    // Strategic merge on status: ingress is atomic (replaced).
    let p = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.11"}]}}});
    let s = api
        .patch_status("web", &PatchParams::default(), &Patch::Strategic(&p))
        .await?;
    assert_eq!(ingress_ips(&s), ["192.0.2.11"]);

    // A patch carrying a stale resourceVersion is a precondition: 409.
    let p = json!({"metadata": {"resourceVersion": "1"}, "spec": {"sessionAffinity": "None"}});
    let st = common::status_of(
        api.patch("web", &PatchParams::default(), &Patch::Merge(&p))
            .await,
    );
    assert_eq!(st.code, 409);

    // A no-op patch does not create a new resourceVersion.
    let before = api.get("web").await?;
    let p = json!({"spec": {"sessionAffinity": "ClientIP"}});
    let after = api
        .patch("web", &PatchParams::default(), &Patch::Merge(&p))
        .await?;
    assert_eq!(
        before.metadata.resource_version,
        after.metadata.resource_version
    );
    Ok(())
}

#[tokio::test]
async fn server_side_apply_conflicts_force_and_removal() -> anyhow::Result<()> {
    let (_server, client) = common::start().await?;
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let a = PatchParams::apply("alice");
    let cfg = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "labels": {"owner": "alice"}},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "name": "http"}]}});
    // Apply creates.
    let s = api.patch("s", &a, &Patch::Apply(&cfg)).await?;
    assert_eq!(port_names(&s), [(80, "http".to_string())]);
    let mf = s.metadata.managed_fields.clone().unwrap_or_default();
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0].manager.as_deref(), Some("alice"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));

    // Bob sets the same value: shared, no conflict. Bob sets a different value: conflict.
    let b = PatchParams::apply("bob");
    let same = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "labels": {"owner": "alice"}}});
    api.patch("s", &b, &Patch::Apply(&same)).await?;
    let diff = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "labels": {"owner": "alice"}},
        "spec": {"ports": [{"port": 80, "name": "web"}]}});
    let st = common::status_of(api.patch("s", &b, &Patch::Apply(&diff)).await);
    assert_eq!((st.code, st.reason.as_str()), (409, "Conflict"));
    assert!(
        st.message.contains("conflict with \"alice\""),
        "{}",
        st.message
    );
    assert!(
        st.message
            .contains(".spec.ports[port=80,protocol=\"TCP\"].name"),
        "{}",
        st.message
    );

    // Force moves ownership.
    let s = api
        .patch(
            "s",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(&diff),
        )
        .await?;
    assert_eq!(port_names(&s), [(80, "web".to_string())]);
    // Now alice conflicts with bob.
    let st = common::status_of(api.patch("s", &a, &Patch::Apply(&cfg)).await);
    assert!(
        st.message.contains("conflict with \"bob\""),
        "{}",
        st.message
    );

    // Alice stops applying the label: still owned by bob (same value applied), so it stays.
    let less = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"type": "LoadBalancer"}});
    let s = api.patch("s", &a, &Patch::Apply(&less)).await?;
    assert_eq!(
        s.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("owner"))
            .map(String::as_str),
        Some("alice")
    );
    // Bob stops too: nobody owns it, it is removed.
    let no_label = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 80, "name": "web"}]}});
    let s = api.patch("s", &b, &Patch::Apply(&no_label)).await?;
    assert!(
        s.metadata
            .labels
            .as_ref()
            .is_none_or(|l| !l.contains_key("owner")),
        "{:?}",
        s.metadata.labels
    );

    // Apply on status through the status subresource; spec in it is ignored.
    let st_cfg = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"type": "ClusterIP"},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}});
    let s = api
        .patch_status("s", &PatchParams::apply("ctrl"), &Patch::Apply(&st_cfg))
        .await?;
    assert_eq!(ingress_ips(&s), ["192.0.2.1"]);
    assert_eq!(
        s.spec.as_ref().and_then(|s| s.type_.as_deref()),
        Some("LoadBalancer")
    );

    // A merge patch by another manager takes the field; alice then conflicts with it.
    let p = json!({"spec": {"type": "NodePort"}});
    api.patch(
        "s",
        &PatchParams {
            field_manager: Some("editor".into()),
            ..Default::default()
        },
        &Patch::Merge(&p),
    )
    .await?;
    let st = common::status_of(api.patch("s", &a, &Patch::Apply(&less)).await);
    assert!(
        st.message.contains("conflict with \"editor\": .spec.type"),
        "{}",
        st.message
    );

    // fieldManager is required for apply.
    let raw = http::Request::patch("/api/v1/namespaces/default/services/s")
        .header("content-type", "application/apply-patch+yaml")
        .body(b"apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n".to_vec())?;
    let st = common::status_of(client.request_text(raw).await);
    assert_eq!(st.code, 422);

    // YAML bodies are accepted.
    let raw = http::Request::patch(
        "/api/v1/namespaces/default/services/s?fieldManager=yaml&force=true",
    )
    .header("content-type", "application/apply-patch+yaml")
    .body(
        b"apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  annotations:\n    from: yaml\n"
            .to_vec(),
    )?;
    let text = client.request_text(raw).await?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    assert_eq!(v["metadata"]["annotations"]["from"], "yaml");
    Ok(())
}

#[tokio::test]
async fn resources_without_status_store_everything() -> anyhow::Result<()> {
    let (_server, client) = common::start().await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let l: Lease = serde_json::from_value(
        json!({"metadata": {"name": "ferrolb"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}),
    )?;
    let l = leases.create(&PostParams::default(), &l).await?;
    let mut l2 = l.clone();
    if let Some(spec) = l2.spec.as_mut() {
        spec.holder_identity = Some("b".into());
    }
    let l2 = leases
        .replace("ferrolb", &PostParams::default(), &l2)
        .await?;
    assert_eq!(
        l2.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("b")
    );
    let st = common::status_of(leases.replace("ferrolb", &PostParams::default(), &l).await);
    assert_eq!(st.code, 409);
    assert!(
        st.message
            .contains("leases.coordination.k8s.io \"ferrolb\""),
        "{}",
        st.message
    );
    assert_eq!(
        st.details.map(|d| d.group),
        Some("coordination.k8s.io".to_string())
    );

    let eps: Api<EndpointSlice> = Api::namespaced(client, "default");
    let e: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1"], "nodeName": "n1", "conditions": {"ready": true}}],
        "ports": [{"port": 8080, "protocol": "TCP"}]
    }))?;
    eps.create(&PostParams::default(), &e).await?;
    let p = json!({"endpoints": [{"addresses": ["10.0.0.2"], "nodeName": "n2"}]});
    let e = eps
        .patch("web-abc", &PatchParams::default(), &Patch::Merge(&p))
        .await?;
    assert_eq!(e.endpoints.len(), 1);
    assert_eq!(e.endpoints[0].node_name.as_deref(), Some("n2"));
    let listed = eps
        .list(&kube::api::ListParams::default().labels("kubernetes.io/service-name=web"))
        .await?;
    assert_eq!(listed.items.len(), 1);
    Ok(())
}
