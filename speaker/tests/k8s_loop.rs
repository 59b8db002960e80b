//! The speaker library's Kubernetes loop against both API servers (the lab one and the real
//! kube-apiserver), in process and without namespaces (no root needed): the peer is a
//! closed loopback port, so the session never comes up and everything is checked through
//! the status data, metrics and Events.

use std::time::{Duration, Instant};

use ferrolb_kubeapi::TestApi;
use ferrolb_speaker::Options;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const CONFIG: &str = r#"peers:
- peer-address: 127.0.0.1
  peer-port: 1
  peer-asn: 64512
  my-asn: 64522
address-pools:
- name: default
  protocol: bgp
  addresses: [172.17.254.0/24]
"#;

async fn create<K>(api: &Api<K>, v: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(v).expect("object json");
    api.create(&PostParams::default(), &obj)
        .await
        .expect("create");
}

async fn wait<F: FnMut() -> bool>(timeout: Duration, mut f: F) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

async fn events(client: &kube::Client, name: &str) -> Vec<(String, String)> {
    let api: Api<Event> = Api::namespaced(client.clone(), "apps");
    api.list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

async fn loop_announces_reacts_to_labels_and_survives_a_bad_config(api: TestApi) {
    let client = api.client().await;
    let ns: Api<Namespace> = Api::all(client.clone());
    for n in ["metallb-system", "apps"] {
        // On the shared real server an earlier test may have made them.
        if ns.get_opt(n).await.expect("namespace").is_none() {
            create(&ns, json!({"metadata": {"name": n}})).await;
        }
    }
    let nodes: Api<Node> = Api::all(client.clone());
    create(
        &nodes,
        json!({"metadata": {"name": "node-1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}}),
    )
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "metallb-system");
    create(
        &cms,
        json!({"metadata": {"name": "config"}, "data": {"config": CONFIG}}),
    )
    .await;
    let svcs: Api<Service> = Api::namespaced(client.clone(), "apps");
    create(
        &svcs,
        json!({"metadata": {"name": "web"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]}}),
    )
    .await;
    svcs.patch_status(
        "web",
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": {"loadBalancer": {"ingress": [{"ip": "172.17.254.3"}]}}})),
    )
    .await
    .expect("status");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "apps");
    create(&slices, json!({"metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1"], "nodeName": "node-2", "conditions": {"ready": true}}]}))
    .await;

    let running = ferrolb_speaker::start(Options::new("node-1"), api.admin_config().await)
        .await
        .expect("start");
    let announced = || {
        running
            .status()
            .announced_services
            .get("apps/web")
            .map(|ips| ips.iter().map(ToString::to_string).collect::<Vec<_>>())
    };
    assert!(
        wait(Duration::from_secs(10), || announced()
            == Some(vec!["172.17.254.3".into()]))
        .await
    );
    assert!(running.is_ready());
    let st = running.status();
    assert_eq!(st.peers.len(), 1);
    assert_eq!(st.peers[0].peer, "127.0.0.1:1");
    assert_ne!(st.peers[0].state, "Established");
    assert_eq!(st.peers[0].prefixes_desired, 1);
    let m = running.metrics_text();
    assert!(
        m.contains("metallb_bgp_session_up{peer=\"127.0.0.1:1\"} 0"),
        "{m}"
    );
    assert!(
        m.contains("metallb_bgp_pending_prefixes_total{peer=\"127.0.0.1:1\"} 1"),
        "{m}"
    );

    // One nodeAssigned event, even after unrelated updates of the Service.
    let have_event = || async { events(&client, "web").await };
    let deadline = Instant::now() + Duration::from_secs(10);
    while have_event().await.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    svcs.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"annotations": {"x": "1"}}})),
    )
    .await
    .expect("annotate");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        have_event().await,
        vec![(
            "nodeAssigned".to_string(),
            "announcing from node \"node-1\" with protocol \"bgp\"".to_string()
        )]
    );

    // A bad config keeps everything; the stale flag is set.
    cms.patch(
        "config",
        &PatchParams::default(),
        &Patch::Merge(&json!({"data": {"config": "peers: [{}]\n"}})),
    )
    .await
    .expect("bad config");
    assert!(wait(Duration::from_secs(10), || running.status().config.stale).await);
    assert_eq!(announced(), Some(vec!["172.17.254.3".into()]));
    assert_eq!(running.status().peers.len(), 1);
    assert!(
        running
            .metrics_text()
            .contains("metallb_k8s_client_config_stale_bool 1")
    );

    // The exclusion label stops announcing from this node.
    nodes
        .patch(
            "node-1",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"node.kubernetes.io/exclude-from-external-load-balancers": ""}}})),
        )
        .await
        .expect("label node");
    assert!(wait(Duration::from_secs(10), || announced().is_none()).await);
    assert!(
        !running
            .metrics_text()
            .contains("metallb_speaker_announced{")
    );

    let t0 = Instant::now();
    running.shutdown().await;
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        t0.elapsed()
    );
}

ferrolb_kubeapi::on_both_servers!(loop_announces_reacts_to_labels_and_survives_a_bad_config);
