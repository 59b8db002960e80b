//! A write the real API server rejects is logged with the object and the reason, retried
//! with back-off, and never loses the allocation (issue 11, "Bad input").
//!
//! The real binary runs with a ServiceAccount token whose RBAC lacks `services/status`
//! (a misconfigured cluster: every status write gets 403 Forbidden). It still decides: two
//! Services get IPs in memory, each rejection is logged once with the Service, code, reason
//! and message, and the metric counts them. Once an operator grants the permission, the
//! next retry writes exactly the IPs decided before, in creation order.
//! (Real server only: the lab API server authorizes nothing.)

mod k8s_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use ferrolb_kubeapi::TestApi;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_support::*;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_ferrolb-controller");

/// Kills the child if the test fails before it exits.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn obj<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("object json")
}

/// RBAC of the controller without `services/status` patch (added later by the test).
async fn limited_rbac(lab: &Lab) {
    let pp = PostParams::default();
    let crs: Api<ClusterRole> = Api::all(lab.client.clone());
    crs.create(
        &pp,
        &obj(
            json!({"metadata": {"name": "limited-controller"}, "rules": [
        {"apiGroups": [""], "resources": ["services"], "verbs": ["list", "watch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]}]}),
        ),
    )
    .await
    .expect("clusterrole");
    let crbs: Api<ClusterRoleBinding> = Api::all(lab.client.clone());
    crbs.create(&pp, &obj(json!({"metadata": {"name": "limited-controller"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "limited-controller"},
        "subjects": [{"kind": "ServiceAccount", "name": "limited", "namespace": NS}]})))
        .await
        .expect("clusterrolebinding");
    let roles: Api<Role> = Api::namespaced(lab.client.clone(), NS);
    roles
        .create(&pp, &obj(json!({"metadata": {"name": "limited-controller"}, "rules": [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "watch"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}]})))
        .await
        .expect("role");
    let rbs: Api<RoleBinding> = Api::namespaced(lab.client.clone(), NS);
    rbs.create(&pp, &obj(json!({"metadata": {"name": "limited-controller"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "limited-controller"},
        "subjects": [{"kind": "ServiceAccount", "name": "limited", "namespace": NS}]})))
        .await
        .expect("rolebinding");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_status_write_is_logged_retried_and_keeps_the_allocation() {
    let Some(api) = TestApi::real(
        "k8s_rejections::a_forbidden_status_write_is_logged_retried_and_keeps_the_allocation",
    )
    .await
    else {
        return;
    };
    let lab = Lab::start(api).await;
    lab.set_config(&pool_config(&[("p", "10.91.0.0/29")])).await;
    limited_rbac(&lab).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        lab.api.service_account_kubeconfig(NS, "limited").await,
    )
    .expect("kubeconfig");
    let log = dir.path().join("controller.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let _child = Child(
        Command::new(BIN)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--identity", "limited-1", "--lease-duration", "3"])
            .args(["--log-format", "json"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn controller"),
    );
    lab.create_service(lb_service("web", 80, json!({}))).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    lab.create_service(lb_service("db", 80, json!({}))).await;

    // Both writes are rejected: logged with object, code and reason; counted; nothing written.
    let logged = wait_for(WAIT, || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|v: &Value| v["fields"]["code"] == json!(403))
            .collect();
        (lines.len() >= 2).then_some(lines)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "no rejection logged:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    let services: Vec<&str> = logged
        .iter()
        .filter_map(|v| v["fields"]["service"].as_str())
        .collect();
    assert!(
        services.contains(&"apps/web") && services.contains(&"apps/db"),
        "{logged:?}"
    );
    for v in &logged {
        assert_eq!(v["level"], "ERROR", "{v}");
        assert_eq!(v["fields"]["reason"], "Forbidden", "{v}");
        assert!(
            v["fields"]["detail"]
                .as_str()
                .unwrap_or("")
                .contains("services/status"),
            "{v}"
        );
    }
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let errors = metric(
        &http_get(addr, "/metrics").await.1,
        "metallb_k8s_client_update_errors_total",
    );
    assert!(errors.unwrap_or(0.0) >= 2.0, "{errors:?}");
    assert!(ingress_ips(&lab.get("web").await).is_empty());

    // The operator fixes RBAC: the retries write what was decided, in order.
    let crs: Api<ClusterRole> = Api::all(lab.client.clone());
    crs.patch(
        "limited-controller",
        &PatchParams::default(),
        &Patch::Json::<()>(
            serde_json::from_value(json!([{"op": "add", "path": "/rules/-", "value":
                {"apiGroups": [""], "resources": ["services/status"], "verbs": ["patch"]}}]))
            .expect("json patch"),
        ),
    )
    .await
    .expect("grant services/status");
    // The first retries come 5 s and 10 s after the rejection (a rejection backs off slowly).
    let ips = wait_for(Duration::from_secs(40), || async {
        let (a, b) = (
            ingress_ips(&lab.get("web").await),
            ingress_ips(&lab.get("db").await),
        );
        (!a.is_empty() && !b.is_empty()).then_some((a, b))
    })
    .await
    .expect("written after the grant");
    assert_eq!(
        ips,
        (vec!["10.91.0.0".to_string()], vec!["10.91.0.1".to_string()])
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("service written after earlier failures"),
        "{text}"
    );
}
