//! The unmodified kubectl binary against the lab API server.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::time::timeout;

const KUBECTL: &str = "/usr/bin/kubectl";

/// A per-run scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> std::io::Result<Self> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ferrolb-apiserver-kubectl-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Kubectl {
    kubeconfig: PathBuf,
    cache: PathBuf,
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(KUBECTL);
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .kill_on_drop(true);
        c
    }

    async fn run(&self, args: &[&str]) -> anyhow::Result<Out> {
        let out = timeout(Duration::from_secs(30), self.cmd(args).output()).await??;
        Ok(Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    async fn ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.run(args).await?;
        anyhow::ensure!(
            out.ok,
            "kubectl {args:?} failed: {}{}",
            out.stdout,
            out.stderr
        );
        Ok(out.stdout)
    }
}

fn write(dir: &Path, name: &str, text: &str) -> anyhow::Result<String> {
    let p = dir.join(name);
    std::fs::write(&p, text)?;
    Ok(p.to_string_lossy().into_owned())
}

#[tokio::test]
async fn kubectl_get_apply_patch_delete_watch() -> anyhow::Result<()> {
    if !Path::new(KUBECTL).exists() {
        eprintln!("skipping: {KUBECTL} is not installed");
        return Ok(());
    }
    let (server, client) = common::start().await?;
    let scratch = Scratch::new()?;
    let kubeconfig = scratch.0.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig)?;
    let k = Kubectl {
        kubeconfig,
        cache: scratch.0.join("cache"),
    };

    let out = k.run(&["get", "svc", "-A"]).await?;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stderr.contains("No resources found"), "{}", out.stderr);

    // Client-side apply: create, unchanged, configure (a strategic merge patch).
    let svc = write(
        &scratch.0,
        "svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  labels: {app: web}\nspec:\n  type: LoadBalancer\n  ports:\n  - {name: http, port: 80}\n",
    )?;
    assert!(
        k.ok(&["apply", "-f", &svc])
            .await?
            .contains("service/web created")
    );
    assert!(
        k.ok(&["apply", "-f", &svc])
            .await?
            .contains("service/web unchanged")
    );
    let svc = write(
        &scratch.0,
        "svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  labels: {app: web}\nspec:\n  type: LoadBalancer\n  ports:\n  - {name: http, port: 8080}\n",
    )?;
    assert!(
        k.ok(&["apply", "-f", &svc])
            .await?
            .contains("service/web configured")
    );
    let ports = k
        .ok(&["get", "svc", "web", "-o", "jsonpath={.spec.ports[*].port}"])
        .await?;
    assert_eq!(ports.trim(), "8080");

    // Server-side apply, and its conflict.
    let cm = write(
        &scratch.0,
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: \"1\"\n",
    )?;
    assert!(
        k.ok(&["apply", "--server-side", "-f", &cm])
            .await?
            .contains("configmap/cfg serverside-applied")
    );
    let cm2 = write(
        &scratch.0,
        "cm2.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: \"2\"\n",
    )?;
    let out = k
        .run(&[
            "apply",
            "--server-side",
            "--field-manager",
            "other",
            "-f",
            &cm2,
        ])
        .await?;
    assert!(
        !out.ok && out.stderr.contains("conflict with \"kubectl\""),
        "{}",
        out.stderr
    );
    k.ok(&[
        "apply",
        "--server-side",
        "--field-manager",
        "other",
        "--force-conflicts",
        "-f",
        &cm2,
    ])
    .await?;
    assert_eq!(
        k.ok(&["get", "cm", "cfg", "-o", "jsonpath={.data.a}"])
            .await?,
        "2"
    );

    // kubectl patch, all three types.
    k.ok(&[
        "patch",
        "svc",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"labels":{"m":"1"}}}"#,
    ])
    .await?;
    k.ok(&[
        "patch",
        "svc",
        "web",
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/metadata/labels/j","value":"2"}]"#,
    ])
    .await?;
    k.ok(&[
        "patch",
        "svc",
        "web",
        "--type",
        "strategic",
        "-p",
        r#"{"spec":{"ports":[{"name":"extra","port":9090}]}}"#,
    ])
    .await?;
    let labels = k
        .ok(&[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.metadata.labels.m}{.metadata.labels.j}",
        ])
        .await?;
    assert_eq!(labels, "12");
    let ports = k
        .ok(&["get", "svc", "web", "-o", "jsonpath={.spec.ports[*].port}"])
        .await?;
    assert_eq!(ports.trim(), "8080 9090");
    // Server-side Table output, as kubectl prints it for a real cluster.
    let table = k.ok(&["get", "svc", "-A"]).await?;
    let header = table.lines().next().unwrap_or("");
    assert!(
        header.split_whitespace().eq([
            "NAMESPACE",
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]),
        "{table}"
    );
    assert!(
        table.contains("web") && table.contains("<pending>"),
        "{table}"
    );
    k.ok(&[
        "patch",
        "svc",
        "web",
        "--subresource=status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.7"}]}}}"#,
    ])
    .await?;
    let row = k.ok(&["get", "svc", "web", "--no-headers"]).await?;
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells.get(..4),
        Some(
            &[
                "web",
                "LoadBalancer",
                cells.get(2).copied().unwrap_or(""),
                "192.0.2.7"
            ][..]
        ),
        "{row}"
    );
    assert!(
        cells
            .get(4)
            .is_some_and(|p| p.starts_with("8080:3") && p.contains("/TCP,9090:")),
        "{row}"
    );

    // Events about the Service show in `kubectl describe` and `kubectl get events`.
    let uid = k
        .ok(&["get", "svc", "web", "-o", "jsonpath={.metadata.uid}"])
        .await?;
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let ev = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web.ip"},
        "involvedObject": {"kind": "Service", "name": "web", "namespace": "default", "uid": uid, "apiVersion": "v1"},
        "reason": "IPAllocated", "message": "Assigned IP [\"192.0.2.7\"]", "type": "Normal",
        "source": {"component": "metallb-controller"}, "count": 1,
    }))?;
    events.create(&PostParams::default(), &ev).await?;
    let described = k.ok(&["describe", "svc", "web"]).await?;
    assert!(
        described.contains("IPAllocated") && described.contains("metallb-controller"),
        "{described}"
    );
    let listed = k.ok(&["get", "events"]).await?;
    assert!(
        listed.lines().next().is_some_and(|h| h
            .split_whitespace()
            .eq(["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"])),
        "{listed}"
    );
    assert!(listed.contains("service/web"), "{listed}");

    // get -w sees a change made by another client.
    let mut watch = k
        .cmd(&["get", "cm", "-w", "--output-watch-events", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = watch
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let first = timeout(Duration::from_secs(20), lines.next_line()).await??;
    assert_eq!(first.as_deref(), Some("configmap/cfg"));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut c = ConfigMap::default();
    c.metadata.name = Some("from-kube".into());
    cms.create(&PostParams::default(), &c).await?;
    let next = timeout(Duration::from_secs(20), lines.next_line()).await??;
    assert_eq!(next.as_deref(), Some("configmap/from-kube"));
    watch.kill().await?;

    // delete, then it is gone.
    assert!(
        k.ok(&["delete", "svc", "web"])
            .await?
            .contains("service \"web\" deleted")
    );
    let out = k.run(&["get", "svc", "web"]).await?;
    assert!(!out.ok && out.stderr.contains("NotFound"), "{}", out.stderr);
    Ok(())
}
