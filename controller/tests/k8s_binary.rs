//! The real `ferrolb-controller` binary: runs from a kubeconfig, assigns, and releases the
//! Lease on SIGTERM; `check-config` reports OK or the errors.

mod k8s_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferrolb_kubeapi::TestApi;
use k8s_support::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_ferrolb-controller");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Kills the child if the test fails before it exits.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn binary_assigns_and_sigterm_releases_the_lease(api: TestApi) {
    let lab = Lab::start(api).await;
    lab.set_config(&pool_config(&[("p", "10.90.0.0/29")])).await;
    lab.create_service(lb_service("web", 80, json!({}))).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    lab.api
        .write_kubeconfig(&kubeconfig)
        .expect("write kubeconfig");
    let port = free_port();
    let mut child = Child(
        Command::new(BIN)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--identity", "bin-1", "--lease-duration", "5"])
            .args(["--log-format", "json"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn controller"),
    );
    assert_eq!(lab.wait_ips("web", 1).await, vec!["10.90.0.0"]);
    assert_eq!(
        lab.lease_holder("ferrolb-controller").await.as_deref(),
        Some("bin-1")
    );
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let (code, body) = http_get(addr, "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        body.contains("metallb_allocator_addresses_in_use_total{pool=\"p\"} 1"),
        "{body}"
    );

    let pid = Pid::from_raw(i32::try_from(child.0.id()).expect("pid"));
    kill(pid, Signal::SIGTERM).expect("SIGTERM");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().expect("wait") {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(
        lab.lease_holder("ferrolb-controller").await,
        None,
        "lease not released"
    );
    // The assignment stays after the controller is gone.
    assert_eq!(ingress_ips(&lab.get("web").await), vec!["10.90.0.0"]);
}

#[test]
fn check_config_subcommand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "address-pools:\n- name: p\n  protocol: bgp\n  addresses: [10.0.0.0/24]\n",
    )
    .expect("write");
    let out = Command::new(BIN)
        .args(["check-config"])
        .arg(&good)
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "peers:\n- peer-address: 10.0.0.1\n  peer-asn: 64500\n  my-asn: 64501\n  hold-time: 1s\n",
    )
    .expect("write");
    let out = Command::new(BIN)
        .args(["check-config"])
        .arg(&bad)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("peers[0].hold-time"), "{text}");
}

ferrolb_kubeapi::on_both_servers!(binary_assigns_and_sigterm_releases_the_lease,);
