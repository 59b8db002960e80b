//! The command lines of etcd and kube-apiserver for a test cluster, as plain data, so the
//! in-process fixture ([`crate::KubeApiServer`]) and the netns lab (which starts them as
//! detached processes in its master namespace) run exactly the same servers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::pki::PkiFiles;

/// The ServiceAccount token issuer (and audience) of every test cluster.
pub const ISSUER: &str = "https://kubernetes.default.svc";
/// The Service cluster-IP ranges: IPv4 first, so a Service that names no family gets IPv4
/// as before, and an IPv6 range so that the dual-stack lab's `RequireDualStack` Service is
/// valid (without one the server refuses it: "this cluster is not configured for
/// dual-stack services").
pub const SERVICE_CIDR: &str = "10.96.0.0/12,fd00:10:96::/112";

/// Where one cluster's files and ports are.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Work directory (certificates, logs, audit policy).
    pub dir: PathBuf,
    /// etcd's data directory.
    pub etcd_data: PathBuf,
    /// etcd's client URL address (always loopback).
    pub etcd_client: SocketAddr,
    /// etcd's peer address (loopback; a one-member cluster still binds it).
    pub etcd_peer: SocketAddr,
    /// kube-apiserver's address (bind and advertise).
    pub apiserver: SocketAddr,
    /// The certificate and key files.
    pub pki: PkiFiles,
    /// The audit log, if auditing is on.
    pub audit_log: Option<PathBuf>,
}

impl Layout {
    /// `https://ADDR:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.apiserver)
    }

    /// The audit policy file (written by [`write_audit_policy`]).
    pub fn audit_policy(&self) -> PathBuf {
        self.dir.join("audit-policy.yaml")
    }
}

/// Records every request at `Metadata` level (user, verb, object, response code, user
/// agent): what an RBAC check needs, without request bodies.
pub const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [\"RequestReceived\"]\nrules:\n- level: Metadata\n";

/// Writes [`AUDIT_POLICY`] to `layout.audit_policy()`.
pub fn write_audit_policy(layout: &Layout) -> std::io::Result<()> {
    std::fs::write(layout.audit_policy(), AUDIT_POLICY)
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// etcd's arguments: a one-member cluster on loopback.
pub fn etcd_args(l: &Layout) -> Vec<String> {
    let client = format!("http://{}", l.etcd_client);
    let peer = format!("http://{}", l.etcd_peer);
    vec![
        "--name".into(),
        "kubeapi".into(),
        "--data-dir".into(),
        s(&l.etcd_data),
        "--listen-client-urls".into(),
        client.clone(),
        "--advertise-client-urls".into(),
        client,
        "--listen-peer-urls".into(),
        peer.clone(),
        "--initial-advertise-peer-urls".into(),
        peer.clone(),
        "--initial-cluster".into(),
        format!("kubeapi={peer}"),
        "--logger".into(),
        "zap".into(),
        "--log-level".into(),
        "warn".into(),
    ]
}

/// kube-apiserver's arguments: TLS with our certificates, RBAC, ServiceAccount tokens
/// (TokenRequest), etcd at `layout.etcd_client`, optionally an audit log.
pub fn apiserver_args(l: &Layout) -> Vec<String> {
    let addr = l.apiserver.ip();
    let mut v: Vec<String> = vec![
        format!("--etcd-servers=http://{}", l.etcd_client),
        format!("--bind-address={addr}"),
        format!("--advertise-address={addr}"),
        // No kube-proxy routes the `kubernetes` Service here, and a loopback address is not
        // a valid EndpointSlice address: keep the Service without endpoints.
        "--endpoint-reconciler-type=none".into(),
        format!("--secure-port={}", l.apiserver.port()),
        format!("--cert-dir={}", s(&l.dir.join("cert-dir"))),
        format!("--tls-cert-file={}", s(&l.pki.serving_cert)),
        format!("--tls-private-key-file={}", s(&l.pki.serving_key)),
        format!("--client-ca-file={}", s(&l.pki.ca_cert)),
        format!("--service-account-key-file={}", s(&l.pki.sa_pub)),
        format!("--service-account-signing-key-file={}", s(&l.pki.sa_key)),
        format!("--service-account-issuer={ISSUER}"),
        format!("--api-audiences={ISSUER}"),
        "--authorization-mode=RBAC".into(),
        format!("--service-cluster-ip-range={SERVICE_CIDR}"),
        // No controller-manager mounts tokens into pods here; the plugin would only get in
        // the way of creating pods, which no test does.
        "--disable-admission-plugins=ServiceAccount".into(),
        "--allow-privileged=true".into(),
        "--profiling=false".into(),
    ];
    if let Some(log) = &l.audit_log {
        v.push(format!("--audit-log-path={}", s(log)));
        v.push(format!("--audit-policy-file={}", s(&l.audit_policy())));
        v.push("--audit-log-format=json".into());
        v.push("--audit-log-maxbackup=1".into());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(audit: bool) -> Layout {
        let dir = PathBuf::from("/w");
        Layout {
            etcd_data: dir.join("etcd"),
            etcd_client: "127.0.0.1:2379".parse().unwrap(),
            etcd_peer: "127.0.0.1:2380".parse().unwrap(),
            apiserver: "127.0.0.1:6443".parse().unwrap(),
            pki: PkiFiles {
                ca_cert: dir.join("ca.crt"),
                serving_cert: dir.join("a.crt"),
                serving_key: dir.join("a.key"),
                sa_key: dir.join("sa.key"),
                sa_pub: dir.join("sa.pub"),
            },
            audit_log: audit.then(|| dir.join("audit.log")),
            dir,
        }
    }

    #[test]
    fn command_lines() {
        let l = layout(true);
        let a = apiserver_args(&l);
        assert!(a.contains(&"--etcd-servers=http://127.0.0.1:2379".to_string()));
        assert!(a.contains(&"--authorization-mode=RBAC".to_string()));
        assert!(
            a.contains(&"--service-cluster-ip-range=10.96.0.0/12,fd00:10:96::/112".to_string())
        );
        assert!(a.contains(&"--advertise-address=127.0.0.1".to_string()));
        assert!(a.iter().any(|x| x == "--audit-log-path=/w/audit.log"));
        assert!(
            !apiserver_args(&layout(false))
                .iter()
                .any(|x| x.starts_with("--audit"))
        );
        let e = etcd_args(&l);
        assert!(
            e.windows(2)
                .any(|w| w[0] == "--initial-cluster" && w[1] == "kubeapi=http://127.0.0.1:2380")
        );
        assert_eq!(l.url(), "https://127.0.0.1:6443");
    }
}
