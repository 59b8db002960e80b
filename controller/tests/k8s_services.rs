//! The controller loop against both API servers (the lab one and the real kube-apiserver):
//! assign, share, request, exhaust and free, change class, change type, delete, metrics and
//! health endpoints, and who the writes say they come from.

mod k8s_support;

use std::time::Duration;

use ferrolb_kubeapi::TestApi;
use k8s_support::*;
use serde_json::json;

async fn assign_writes_status_annotation_event_and_metrics(api: TestApi) {
    let lab = Lab::start(api).await;
    lab.set_config(&pool_config(&[("blue", "192.0.2.0/29")]))
        .await;
    lab.create_service(lb_service("web", 80, json!({}))).await;
    let ctl = start_controller(&lab, "ctl-a").await;

    let ips = lab.wait_ips("web", 1).await;
    assert_eq!(ips, vec!["192.0.2.0"]);
    let svc = lab.get("web").await;
    assert_eq!(pool_annotation(&svc).as_deref(), Some("blue"));
    // The write names its manager (not `unknown`): status and annotation, one status patch.
    let ours: Vec<_> = svc
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.manager.as_deref() == Some("ferrolb-controller"))
        .collect();
    assert_eq!(ours.len(), 1, "{:?}", svc.metadata.managed_fields);
    assert_eq!(ours[0].subresource.as_deref(), Some("status"));
    let owned = serde_json::to_string(&ours[0].fields_v1).unwrap_or_default();
    assert!(
        owned.contains("ip-allocated-from-pool") && owned.contains("f:ingress"),
        "{owned}"
    );
    if let Some(real) = lab.api.real_server() {
        // The audit log tells this controller's requests apart by User-Agent.
        let agents: std::collections::BTreeSet<String> = real
            .audit()
            .into_iter()
            .filter(|e| e.object_ref.as_ref().is_some_and(|o| o.name == "web"))
            .filter(|e| e.verb == "patch")
            .map(|e| e.user_agent)
            .collect();
        assert!(
            !agents.is_empty()
                && agents
                    .iter()
                    .all(|a| a.starts_with("ferrolb-controller/") && a.ends_with("(ctl-a)")),
            "{agents:?}"
        );
    }
    let (ty, msg) = lab.wait_event(APP_NS, "web", "IPAllocated").await;
    assert_eq!(ty, "Normal");
    assert_eq!(msg, "Assigned IP [\"192.0.2.0\"]");

    let addr = ctl.http_addr().expect("http enabled");
    assert_eq!(http_get(addr, "/healthz").await.0, 200);
    let ready = wait_for(Duration::from_secs(5), || async {
        (http_get(addr, "/readyz").await.0 == 200).then_some(())
    })
    .await;
    assert!(ready.is_some(), "/readyz never became ready");
    let (code, body) = http_get(addr, "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        body.contains("metallb_allocator_addresses_total{pool=\"blue\"} 8"),
        "{body}"
    );
    assert!(body.contains("metallb_allocator_addresses_in_use_total{pool=\"blue\"} 1"));
    assert!(body.contains("metallb_allocator_services_allocated_total{pool=\"blue\"} 1"));
    assert_eq!(
        metric(&body, "metallb_k8s_client_config_loaded_bool"),
        Some(1.0)
    );
    assert_eq!(
        metric(&body, "metallb_k8s_client_config_stale_bool"),
        Some(0.0)
    );
    // One write: status and annotation in one patch of the status subresource.
    assert_eq!(metric(&body, "metallb_k8s_client_updates_total"), Some(1.0));

    // Steady state: nothing changes, so nothing is written.
    let before = metric(
        &http_get(addr, "/metrics").await.1,
        "metallb_k8s_client_updates_total",
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = metric(
        &http_get(addr, "/metrics").await.1,
        "metallb_k8s_client_updates_total",
    );
    assert_eq!(before, after, "writes happened with nothing changing");
    assert_eq!(lab.wait_ips("web", 1).await, vec!["192.0.2.0"]);
    ctl.shutdown().await;
}

async fn share_and_request(api: TestApi) {
    let lab = Lab::start(api).await;
    lab.set_config(&pool_config(&[("blue", "192.0.2.0/29")]))
        .await;
    let ctl = start_controller(&lab, "ctl-a").await;

    // Two Services with the same sharing key and different ports share one IP.
    let shared = json!({"metallb.universe.tf/allow-shared-ip": "k1"});
    lab.create_service(lb_service("s1", 80, shared.clone()))
        .await;
    let ip1 = lab.wait_ips("s1", 1).await;
    lab.create_service(lb_service("s2", 443, shared.clone()))
        .await;
    assert_eq!(lab.wait_ips("s2", 1).await, ip1);
    // Same port: cannot share, gets its own IP.
    lab.create_service(lb_service("s3", 80, shared)).await;
    let ip3 = lab.wait_ips("s3", 1).await;
    assert_ne!(ip3, ip1);

    // A requested IP (annotation) is honoured.
    lab.create_service(lb_service(
        "req",
        80,
        json!({"metallb.universe.tf/loadBalancerIPs": "192.0.2.6"}),
    ))
    .await;
    assert_eq!(lab.wait_ips("req", 1).await, vec!["192.0.2.6"]);
    // spec.loadBalancerIP outside every pool: stays pending with a Warning.
    let mut out = lb_service("outside", 80, json!({}));
    out["spec"]["loadBalancerIP"] = json!("198.51.100.1");
    lab.create_service(out).await;
    let (ty, msg) = lab.wait_event(APP_NS, "outside", "AllocationFailed").await;
    assert_eq!(ty, "Warning");
    assert!(msg.contains("198.51.100.1"), "{msg}");
    assert!(ingress_ips(&lab.get("outside").await).is_empty());
    // Both request forms at once: LoadBalancerFailed.
    let mut both = lb_service(
        "both",
        80,
        json!({"metallb.universe.tf/loadBalancerIPs": "192.0.2.5"}),
    );
    both["spec"]["loadBalancerIP"] = json!("192.0.2.5");
    lab.create_service(both).await;
    let (ty, _) = lab.wait_event(APP_NS, "both", "LoadBalancerFailed").await;
    assert_eq!(ty, "Warning");
    ctl.shutdown().await;
}

async fn exhaust_then_free_and_delete(api: TestApi) {
    let lab = Lab::start(api).await;
    lab.set_config(&pool_config(&[("tiny", "192.0.2.10-192.0.2.11")]))
        .await;
    let ctl = start_controller(&lab, "ctl-a").await;
    lab.create_service(lb_service("a", 80, json!({}))).await;
    let ip_a = lab.wait_ips("a", 1).await;
    lab.create_service(lb_service("b", 80, json!({}))).await;
    let ip_b = lab.wait_ips("b", 1).await;
    lab.create_service(lb_service("c", 80, json!({}))).await;
    let (ty, msg) = lab.wait_event(APP_NS, "c", "AllocationFailed").await;
    assert_eq!(ty, "Warning");
    assert!(msg.contains("no available IPs"), "{msg}");
    assert!(ingress_ips(&lab.get("c").await).is_empty());

    // Deleting a frees its IP, and the pending c gets it; b is untouched.
    lab.delete_service("a").await;
    assert_eq!(lab.wait_ips("c", 1).await, ip_a);
    assert_eq!(lab.wait_ips("b", 1).await, ip_b);
    let (_, msg) = lab.wait_event(APP_NS, "c", "IPAllocated").await;
    assert_eq!(msg, format!("Assigned IP [\"{}\"]", ip_a[0]));
    // Only one AllocationFailed despite retries.
    let fails = lab
        .events_for(APP_NS, "c")
        .await
        .into_iter()
        .filter(|(_, r, _)| r == "AllocationFailed")
        .count();
    assert_eq!(fails, 1);
    ctl.shutdown().await;
}

async fn change_class_and_type_clear_the_assignment(api: TestApi) {
    let lab = Lab::start(api).await;
    lab.set_config(&pool_config(&[("tiny", "192.0.2.10-192.0.2.11")]))
        .await;
    let ctl = start_controller(&lab, "ctl-a").await;
    lab.create_service(lb_service("a", 80, json!({}))).await;
    lab.create_service(lb_service("b", 80, json!({}))).await;
    let ip_a = lab.wait_ips("a", 1).await;
    lab.wait_ips("b", 1).await;
    lab.create_service(lb_service("waiting", 80, json!({})))
        .await;
    lab.wait_event(APP_NS, "waiting", "AllocationFailed").await;

    // Type change to ClusterIP: cleared, event, IP freed for the pending Service.
    lab.patch_service("a", json!({"spec": {"type": "ClusterIP"}}))
        .await;
    lab.wait_cleared("a").await;
    let (ty, _) = lab.wait_event(APP_NS, "a", "ClearAssignment").await;
    assert_eq!(ty, "Normal");
    assert_eq!(lab.wait_ips("waiting", 1).await, ip_a);

    // Class change. The API server lets a LoadBalancer's class be set only together with its
    // type (`spec.loadBalancerClass: may not change once set`), so it goes through another
    // type: cleared there, and once back as someone else's LoadBalancer, never touched.
    lab.patch_service("b", json!({"spec": {"type": "ClusterIP"}}))
        .await;
    lab.wait_cleared("b").await;
    lab.wait_event(APP_NS, "b", "ClearAssignment").await;
    lab.patch_service(
        "b",
        json!({"spec": {"type": "LoadBalancer", "loadBalancerClass": "someone-else",
                        "allocateLoadBalancerNodePorts": false}}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(ingress_ips(&lab.get("b").await).is_empty());
    assert!(pool_annotation(&lab.get("b").await).is_none());
    ctl.shutdown().await;
}

async fn lb_class_flag_selects_services(api: TestApi) {
    let lab = Lab::start(api).await;
    lab.set_config(&pool_config(&[("blue", "192.0.2.0/29")]))
        .await;
    let mut opts = options("ctl-class");
    opts.lb_class = Some("ferrolb".into());
    let ctl = ferrolb_controller::start(opts, lab.config().await)
        .await
        .expect("start");
    let mut mine = lb_service("mine", 80, json!({}));
    mine["spec"]["loadBalancerClass"] = json!("ferrolb");
    lab.create_service(mine).await;
    lab.create_service(lb_service("classless", 80, json!({})))
        .await;
    lab.wait_ips("mine", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(ingress_ips(&lab.get("classless").await).is_empty());
    ctl.shutdown().await;
}

ferrolb_kubeapi::on_both_servers!(
    assign_writes_status_annotation_event_and_metrics,
    share_and_request,
    exhaust_then_free_and_delete,
    change_class_and_type_clear_the_assignment,
    lb_class_flag_selects_services,
);
