//! The fixture against the real binaries: admin client, RBAC with a ServiceAccount token
//! (403 until a Role grants it), an outage (stop/start) with data kept, a forced relist
//! that gives resuming watches 410, the audit log, teardown on drop.

use std::time::Duration;

use ferrolb_kubeapi::{KubeApiServer, Options, TestApi};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Api;
use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("object json")
}

async fn sa_client(server: &KubeApiServer, ns: &str, name: &str) -> kube::Client {
    let yaml = server
        .service_account_kubeconfig(ns, name)
        .await
        .expect("token kubeconfig");
    let cfg = ferrolb_kubeapi::kubeconfig::config_from_yaml(&yaml)
        .await
        .expect("config");
    kube::Client::try_from(cfg).expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_tokens_outage_relist_and_teardown() {
    if ferrolb_kubeapi::assets::require("fixture::rbac_tokens_outage_relist_and_teardown").is_none()
    {
        return;
    }
    // Its own server (not the shared one): this test checks teardown.
    let server = tokio::task::spawn_blocking(|| KubeApiServer::start(Options::default()))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    let admin = server.client().await.expect("admin client");
    let v = admin.apiserver_version().await.expect("version");
    assert_eq!(v.git_version, "v1.28.7");

    // A ServiceAccount token is authenticated, and RBAC applies: 403, then allowed.
    let sa = sa_client(&server, "t1", "reader").await;
    let cms: Api<ConfigMap> = Api::namespaced(sa.clone(), "t1");
    match cms.list(&ListParams::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{s:?}"),
        other => panic!("expected 403, got {other:?}"),
    }
    let roles: Api<Role> = Api::namespaced(admin.clone(), "t1");
    roles
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "watch"]}]})),
        )
        .await
        .expect("role");
    let rbs: Api<RoleBinding> = Api::namespaced(admin.clone(), "t1");
    rbs.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "r"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "t1"}]})),
    )
    .await
    .expect("rolebinding");
    let mut allowed = false;
    for _ in 0..50 {
        if cms.list(&ListParams::default()).await.is_ok() {
            allowed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(allowed, "the RoleBinding never took effect");

    // The audit log shows the ServiceAccount's 403 and its later 200.
    let mine: Vec<_> = server
        .audit()
        .into_iter()
        .filter(|e| e.user.username == "system:serviceaccount:t1:reader" && e.verb == "list")
        .map(|e| e.code())
        .collect();
    assert!(mine.contains(&403) && mine.contains(&200), "{mine:?}");

    // An outage: data survives a restart of kube-apiserver.
    let admin_cms: Api<ConfigMap> = Api::namespaced(admin.clone(), "t1");
    let cm = admin_cms
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "c"}, "data": {"k": "v"}})),
        )
        .await
        .expect("configmap");
    let rv = cm.metadata.resource_version.clone().unwrap();
    tokio::task::block_in_place(|| server.stop_apiserver());
    assert!(
        admin.apiserver_version().await.is_err(),
        "still answering while stopped"
    );
    tokio::task::block_in_place(|| server.start_apiserver()).expect("restart");
    let admin = server.client().await.unwrap();
    let admin_cms: Api<ConfigMap> = Api::namespaced(admin.clone(), "t1");
    assert_eq!(
        admin_cms.get("c").await.expect("kept").data.unwrap()["k"],
        "v"
    );

    // A forced relist: a watch resuming from before it gets 410 Gone.
    tokio::task::block_in_place(|| server.force_relist()).expect("force relist");
    let admin = server.client().await.unwrap();
    let admin_cms: Api<ConfigMap> = Api::namespaced(admin.clone(), "t1");
    let mut stream = admin_cms
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch")
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an answer to the watch");
    match first {
        Some(Ok(WatchEvent::Error(e))) => assert_eq!(e.code, 410, "{e:?}"),
        Some(Err(kube::Error::Api(s))) => assert_eq!(s.code, 410, "{s:?}"),
        other => panic!("expected 410 Gone, got {other:?}"),
    }

    // Teardown on drop: the processes and the files are gone.
    let pid = server.apiserver_pid().expect("running");
    let dir = server.layout().dir.clone();
    tokio::task::block_in_place(|| drop(server));
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "kube-apiserver still runs"
    );
    assert!(!dir.exists(), "{} left behind", dir.display());
}

async fn namespaces_exist(api: TestApi) {
    let client = api.client().await;
    let ns: Api<Namespace> = Api::all(client);
    let names: Vec<String> = ns
        .list(&ListParams::default())
        .await
        .expect("namespaces")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    for want in ["default", "kube-system"] {
        assert!(names.iter().any(|n| n == want), "{names:?}");
    }
}

ferrolb_kubeapi::on_both_servers!(namespaces_exist);
