//! The lab's Kubernetes API server in the master namespace (172.17.0.10:6443): the real
//! kube-apiserver v1.28.7 with etcd ([`Kind::Real`], the default where the binaries are
//! available) or the in-memory lab API server ([`Kind::Lab`], the fallback).
//!
//! On the real server the lab is set up as an operator would: `manifests/namespace.yaml`,
//! the RBAC and FlowSchema manifests are applied, and the controller and the speakers run
//! with their own ServiceAccount tokens (TokenRequest), so RBAC is enforced; the lab's own
//! tools (object setup, kube-proxy stand-ins, `demo`) use the admin's client certificate.
//! etcd listens on the master namespace's own loopback, so several labs never collide.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferrolb_kubeapi::args::{self, Layout};
use ferrolb_kubeapi::pki::Pki;

pub use ferrolb_kubeapi::Kind;

use super::NetLab;
use crate::procs;
use crate::topology::addr;
use crate::{k8s, nsexec};

/// The default: the real server when its binaries are there.
pub fn default_kind() -> Kind {
    if ferrolb_kubeapi::assets::binaries().is_ok() {
        Kind::Real
    } else {
        Kind::Lab
    }
}

/// What the progress line and `demo` call it.
pub fn label(kind: Kind) -> &'static str {
    match kind {
        Kind::Real => "kube-apiserver v1.28.7 + etcd",
        Kind::Lab => "lab API server (in memory)",
    }
}

impl NetLab {
    /// Starts the API server of `spec.apiserver` and waits until it answers.
    pub(super) fn start_apiserver(&self) -> Result<()> {
        match self.spec.apiserver {
            Kind::Lab => self.start_lab_apiserver(),
            Kind::Real => self.start_real_apiserver(),
        }
    }

    /// The kubeconfig `component` (`controller`, `speaker`) runs with: its ServiceAccount's
    /// token on the real server, the lab server's kubeconfig there.
    pub fn component_kubeconfig(&self, component: &str) -> PathBuf {
        match self.spec.apiserver {
            Kind::Real => self.state.path(&format!("kubeconfig-{component}")),
            Kind::Lab => self.kubeconfig(),
        }
    }

    fn start_lab_apiserver(&self) -> Result<()> {
        let kc = self.kubeconfig();
        let listen = SocketAddr::new(IpAddr::V4(addr::MASTER), addr::APISERVER_PORT);
        self.spawn(
            &self.names.master(),
            "apiserver",
            &self.spec.bins.lab,
            vec![
                "apiserver".into(),
                "--listen".into(),
                listen.to_string(),
                "--kubeconfig".into(),
                kc.display().to_string(),
            ],
        )?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !kc.exists() {
            if Instant::now() >= deadline || self.dead("apiserver") {
                bail!(
                    "the lab API server did not start; log:\n{}",
                    self.state.log_tail("apiserver", 20)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kube(|c| async move { k8s::wait_ready(&c, Duration::from_secs(10)).await })
    }

    fn dead(&self, name: &str) -> bool {
        self.state.pid(name).is_some_and(|p| !procs::pid_alive(p))
    }

    fn start_real_apiserver(&self) -> Result<()> {
        let bins = ferrolb_kubeapi::assets::binaries()
            .map_err(|m| anyhow::anyhow!("--apiserver real: {m} (or use --apiserver lab)"))?;
        let dir = self.state.path("kubeapi");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let pki = Pki::generate(&[IpAddr::V4(addr::MASTER), lo])?;
        let layout = Layout {
            etcd_data: dir.join("etcd"),
            etcd_client: SocketAddr::new(lo, 2379),
            etcd_peer: SocketAddr::new(lo, 2380),
            apiserver: SocketAddr::new(IpAddr::V4(addr::MASTER), addr::APISERVER_PORT),
            pki: pki.write_to(&dir)?,
            audit_log: None,
            dir,
        };
        let master = self.names.master();
        self.spawn(&master, "etcd", &bins.etcd, args::etcd_args(&layout))?;
        let client_addr = layout.etcd_client;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !nsexec::block_on_in(&master, move || async move {
            Ok(ferrolb_kubeapi::server::etcd_healthy(client_addr))
        })? {
            if Instant::now() >= deadline || self.dead("etcd") {
                bail!(
                    "etcd did not start; log:\n{}",
                    self.state.log_tail("etcd", 20)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.spawn(
            &master,
            "apiserver",
            &bins.kube_apiserver,
            args::apiserver_args(&layout),
        )?;
        let admin = pki.admin_kubeconfig(&layout.url());
        std::fs::write(self.kubeconfig(), admin).context("writing the admin kubeconfig")?;
        // Seconds on a quiet machine; watch the process so a crash is reported at once.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ready = self.kube(|c| async move {
                Ok(
                    ferrolb_kubeapi::server::wait_ready(&c, Duration::from_secs(2))
                        .await
                        .is_ok(),
                )
            })?;
            if ready {
                break;
            }
            if Instant::now() >= deadline || self.dead("apiserver") {
                bail!(
                    "kube-apiserver did not become ready; log:\n{}",
                    self.state.log_tail("apiserver", 30)
                );
            }
        }
        let (url, ca) = (layout.url(), pki.ca.cert_pem.clone());
        let tokens = self.kube(move |c| async move {
            ferrolb_kubeapi::apply::apply_rbac_manifests(&c, "ferrolb-lab").await?;
            // MetalLB's CRDs, as a MetalLB 0.13+ cluster has them: the daemons watch them
            // from the start (with no objects the ConfigMap stays the configuration).
            ferrolb_kubeapi::apply::apply_crd_manifests(&c, "ferrolb-lab").await?;
            let mut out = Vec::new();
            for sa in ["controller", "speaker"] {
                let y = ferrolb_kubeapi::server::service_account_kubeconfig(
                    &c,
                    &url,
                    &ca,
                    k8s::SYSTEM_NS,
                    sa,
                )
                .await?;
                out.push((sa, y));
            }
            Ok(out)
        })?;
        for (sa, yaml) in tokens {
            let path = self.component_kubeconfig(sa);
            std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}
