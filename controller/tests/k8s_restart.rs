//! Restarting the controller never moves or duplicates an IP (MetalLB issues 1774/1984),
//! even with a pending backlog larger than the free addresses.

mod k8s_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ferrolb_kubeapi::TestApi;
use k8s_support::*;
use serde_json::json;

fn assert_no_duplicates(ips: &BTreeMap<String, Vec<String>>) {
    let mut seen = BTreeMap::new();
    for (name, list) in ips {
        for ip in list {
            if let Some(other) = seen.insert(ip.clone(), name.clone()) {
                panic!("IP {ip} held by both {other} and {name}");
            }
        }
    }
}

async fn restart_with_backlog_keeps_every_ip(api: TestApi) {
    let lab = Lab::start(api).await;
    // 256 addresses.
    lab.set_config(&pool_config(&[("big", "10.20.0.0/24")]))
        .await;
    for i in 0..200 {
        lab.create_service(lb_service(&format!("svc-{i:03}"), 80, json!({})))
            .await;
    }
    let ctl = start_controller(&lab, "first").await;
    let all = wait_for(Duration::from_secs(30), || async {
        let m = all_ips(&lab).await;
        m.values().all(|v| v.len() == 1).then_some(m)
    })
    .await
    .expect("all 200 assigned");
    assert_no_duplicates(&all);
    ctl.shutdown().await;

    // While the controller is down: 20 Services leave holes all over the pool, and 100 new
    // ones arrive: a backlog of 100 against 76 free addresses.
    for i in (0..200).step_by(10) {
        lab.delete_service(&format!("svc-{i:03}")).await;
    }
    for i in 0..100 {
        lab.create_service(lb_service(&format!("new-{i:03}"), 80, json!({})))
            .await;
    }
    let before: BTreeMap<String, Vec<String>> = all_ips(&lab)
        .await
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    assert_eq!(before.len(), 180);

    let ctl = start_controller(&lab, "second").await;
    let after = wait_for(Duration::from_secs(30), || async {
        let m = all_ips(&lab).await;
        let assigned = m.values().filter(|v| !v.is_empty()).count();
        (assigned == 256).then_some(m)
    })
    .await
    .expect("all 256 addresses in use after restart");
    // Give the controller a moment to do anything wrong, then look again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after2 = all_ips(&lab).await;
    assert_eq!(after, after2, "assignments kept changing");
    for (name, ips) in &before {
        assert_eq!(
            after.get(name),
            Some(ips),
            "{name} changed its IP across the restart"
        );
    }
    assert_no_duplicates(&after);
    let pending: BTreeSet<&String> = after
        .iter()
        .filter(|(_, v)| v.is_empty())
        .map(|(k, _)| k)
        .collect();
    assert_eq!(pending.len(), 24);
    assert!(pending.iter().all(|k| k.starts_with("new-")));
    ctl.shutdown().await;
}

async fn status_written_by_someone_else_is_respected(api: TestApi) {
    // Services whose status already names IPs (e.g. written by MetalLB before a migration)
    // keep them; a pending Service created earlier never gets one of them.
    let lab = Lab::start(api).await;
    lab.set_config(&pool_config(&[("p", "10.30.0.0/30")])).await;
    lab.create_service(lb_service("pending", 80, json!({})))
        .await;
    for (name, ip) in [("x", "10.30.0.0"), ("y", "10.30.0.1")] {
        lab.create_service(lb_service(name, 80, json!({}))).await;
        lab.services()
            .patch_status(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(
                    json!({"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}),
                ),
            )
            .await
            .expect("seed status");
    }
    let ctl = start_controller(&lab, "ctl").await;
    assert_eq!(lab.wait_ips("pending", 1).await, vec!["10.30.0.2"]);
    assert_eq!(lab.wait_ips("x", 1).await, vec!["10.30.0.0"]);
    assert_eq!(lab.wait_ips("y", 1).await, vec!["10.30.0.1"]);
    // The restored ones get the pool annotation filled in.
    let ok = wait_for(Duration::from_secs(5), || async {
        (pool_annotation(&lab.get("x").await).as_deref() == Some("p")).then_some(())
    })
    .await;
    assert!(ok.is_some());
    ctl.shutdown().await;
}

async fn relist_after_watch_expiry_changes_nothing(api: TestApi) {
    // The API server drops its watch history (410 Gone; the real one is restarted after an
    // etcd compaction, so the controller also loses and regains the Lease): it relists, keeps
    // every IP, notices a Service deleted meanwhile and gives its IP to a pending one.
    let lab = Lab::start(api).await;
    lab.set_config(&pool_config(&[("p", "10.31.0.0/30")])).await;
    let ctl = start_controller(&lab, "ctl").await;
    for n in ["a", "b", "c", "d"] {
        lab.create_service(lb_service(n, 80, json!({}))).await;
        lab.wait_ips(n, 1).await;
    }
    lab.create_service(lb_service("e", 80, json!({}))).await;
    lab.wait_event(APP_NS, "e", "AllocationFailed").await;
    let before = all_ips(&lab).await;
    let addr = ctl.http_addr().expect("http");
    let writes = metric(
        &http_get(addr, "/metrics").await.1,
        "metallb_k8s_client_updates_total",
    );

    lab.api.force_relist().await;
    if let Some(real) = lab.api.real_server() {
        // The restarted server answered the resuming watch with 410: the controller listed
        // Services again (its second list).
        let lists = || {
            real.audit()
                .into_iter()
                .filter(|e| e.verb == "list" && e.user_agent.starts_with("ferrolb-controller/"))
                .filter(|e| {
                    e.object_ref
                        .as_ref()
                        .is_some_and(|o| o.resource == "services")
                })
                .filter(|e| e.stage == "ResponseComplete")
                .count()
        };
        let relisted = wait_for(WAIT, || async { (lists() >= 2).then_some(()) }).await;
        assert!(
            relisted.is_some(),
            "no relist of Services after the restart"
        );
    }
    lab.delete_service("b").await;
    let freed = before["b"].clone();
    assert_eq!(lab.wait_ips("e", 1).await, freed);
    for n in ["a", "c", "d"] {
        assert_eq!(lab.wait_ips(n, 1).await, before[n], "{n} moved");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = metric(
        &http_get(addr, "/metrics").await.1,
        "metallb_k8s_client_updates_total",
    );
    // Exactly e's one write (status and annotation in one patch): the relist rewrote
    // nothing else.
    assert_eq!(after.zip(writes).map(|(a, b)| a - b), Some(1.0));
    ctl.shutdown().await;
}

ferrolb_kubeapi::on_both_servers!(
    restart_with_backlog_keeps_every_ip,
    status_written_by_someone_else_is_respected,
    relist_after_watch_expiry_changes_nothing,
);
