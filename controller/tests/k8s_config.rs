//! ConfigMap handling: an invalid config keeps the old one and every allocation; a config
//! that removes an IP in use re-allocates that Service with a Warning.

mod k8s_support;

use std::time::Duration;

use ferrolb_kubeapi::TestApi;
use k8s_support::*;
use serde_json::json;

async fn invalid_config_keeps_old_allocations(api: TestApi) {
    let lab = Lab::start(api).await;
    lab.set_config(&pool_config(&[("p", "10.40.0.0/29")])).await;
    let ctl = start_controller(&lab, "ctl").await;
    for n in ["a", "b", "c"] {
        lab.create_service(lb_service(n, 80, json!({}))).await;
    }
    let before = wait_for(Duration::from_secs(10), || async {
        let m = all_ips(&lab).await;
        m.values().all(|v| v.len() == 1).then_some(m)
    })
    .await
    .expect("assigned");

    // Unknown key: the whole document is rejected.
    lab.set_config(
        "address-pools:\n- name: p\n  protocol: bgp\n  addresses: [10.50.0.0/29]\n  colour: red\n",
    )
    .await;
    let (ty, msg) = lab.wait_event(NS, "config", "InvalidConfig").await;
    assert_eq!(ty, "Warning");
    assert!(msg.contains("colour"), "{msg}");
    let addr = ctl.http_addr().expect("http");
    let body = http_get(addr, "/metrics").await.1;
    assert_eq!(
        metric(&body, "metallb_k8s_client_config_stale_bool"),
        Some(1.0)
    );
    assert_eq!(
        metric(&body, "metallb_k8s_client_config_loaded_bool"),
        Some(1.0)
    );

    // Nothing withdrawn or moved, and new Services still use the last good config.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(all_ips(&lab).await, before);
    lab.create_service(lb_service("d", 80, json!({}))).await;
    let d = lab.wait_ips("d", 1).await;
    assert!(d[0].starts_with("10.40.0."), "{d:?}");

    // A valid config again clears the stale flag.
    lab.set_config(&pool_config(&[("p", "10.40.0.0/29")])).await;
    let ok = wait_for(Duration::from_secs(5), || async {
        let body = http_get(addr, "/metrics").await.1;
        (metric(&body, "metallb_k8s_client_config_stale_bool") == Some(0.0)).then_some(())
    })
    .await;
    assert!(ok.is_some());
    ctl.shutdown().await;
}

async fn removing_an_ip_in_use_reallocates_with_a_warning(api: TestApi) {
    let lab = Lab::start(api).await;
    lab.set_config(&pool_config(&[("p", "10.60.0.0/30")])).await;
    let ctl = start_controller(&lab, "ctl").await;
    lab.create_service(lb_service("a", 80, json!({}))).await;
    assert_eq!(lab.wait_ips("a", 1).await, vec!["10.60.0.0"]);
    lab.create_service(lb_service("b", 80, json!({}))).await;
    assert_eq!(lab.wait_ips("b", 1).await, vec!["10.60.0.1"]);

    // The new pool no longer has .0: a moves, b stays.
    lab.set_config(&pool_config(&[("p", "10.60.0.1-10.60.0.3")]))
        .await;
    let moved = wait_for(Duration::from_secs(10), || async {
        let ips = ingress_ips(&lab.get("a").await);
        (ips.len() == 1 && ips[0] != "10.60.0.0").then_some(ips)
    })
    .await
    .expect("a re-allocated");
    assert_eq!(moved, vec!["10.60.0.2"]);
    assert_eq!(lab.wait_ips("b", 1).await, vec!["10.60.0.1"]);
    let (ty, msg) = lab.wait_event(APP_NS, "a", "ClearAssignment").await;
    assert_eq!(ty, "Warning");
    assert!(msg.contains("not allowed by config"), "{msg}");
    ctl.shutdown().await;
}

async fn no_config_means_no_allocation_until_one_arrives(api: TestApi) {
    let lab = Lab::start(api).await;
    lab.create_service(lb_service("a", 80, json!({}))).await;
    let ctl = start_controller(&lab, "ctl").await;
    let addr = ctl.http_addr().expect("http");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(ingress_ips(&lab.get("a").await).is_empty());
    if ctl.is_leader() {
        assert_eq!(http_get(addr, "/readyz").await.0, 503);
    }
    lab.set_config(&pool_config(&[("p", "10.70.0.0/30")])).await;
    assert_eq!(lab.wait_ips("a", 1).await, vec!["10.70.0.0"]);
    ctl.shutdown().await;
}

ferrolb_kubeapi::on_both_servers!(
    invalid_config_keeps_old_allocations,
    removing_an_ip_in_use_reallocates_with_a_warning,
    no_config_means_no_allocation_until_one_arrives,
);
