//! Kubeconfig files for the test cluster: the admin's (client certificate) and
//! ServiceAccount-token ones, each self-contained (`*-data` fields), so a copy works anywhere.

use base64::prelude::{BASE64_STANDARD, Engine as _};

/// How the user authenticates.
#[derive(Debug, Clone)]
pub enum Credentials<'a> {
    /// A client certificate and its key (PEM).
    Certificate {
        /// Certificate PEM.
        cert_pem: &'a str,
        /// Key PEM.
        key_pem: &'a str,
    },
    /// A bearer token (e.g. from a TokenRequest).
    Token(&'a str),
}

/// Kubeconfig YAML for `server` (an `https://` URL) trusting `ca_pem`, with `user`'s
/// credentials and `namespace` as the default namespace.
pub fn kubeconfig(
    server: &str,
    ca_pem: &str,
    user: &str,
    creds: &Credentials<'_>,
    namespace: &str,
) -> String {
    let user_fields = match creds {
        Credentials::Certificate { cert_pem, key_pem } => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            BASE64_STANDARD.encode(cert_pem),
            BASE64_STANDARD.encode(key_pem)
        ),
        Credentials::Token(t) => format!("    token: {t}\n"),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: ferrolb-kubeapi\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
         users:\n- name: {user}\n  user:\n{user_fields}\
         contexts:\n- name: {user}\n  context:\n    cluster: ferrolb-kubeapi\n    user: {user}\n    namespace: {namespace}\n\
         current-context: {user}\npreferences: {{}}\n",
        ca = BASE64_STANDARD.encode(ca_pem),
    )
}

/// The kube configuration a component would load from `yaml`.
pub async fn config_from_yaml(yaml: &str) -> Result<kube::Config, kube::config::KubeconfigError> {
    let kc = kube::config::Kubeconfig::from_yaml(yaml)?;
    kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn token_and_certificate_kubeconfigs_parse() {
        let pki = crate::pki::Pki::generate(&["127.0.0.1".parse().unwrap()]).unwrap();
        let y = kubeconfig(
            "https://127.0.0.1:6443",
            &pki.ca.cert_pem,
            "admin",
            &Credentials::Certificate {
                cert_pem: &pki.admin.cert_pem,
                key_pem: &pki.admin.key_pem,
            },
            "default",
        );
        let c = config_from_yaml(&y).await.expect("certificate kubeconfig");
        assert_eq!(c.cluster_url.to_string(), "https://127.0.0.1:6443/");
        assert!(c.root_cert.is_some());
        let y = kubeconfig(
            "https://127.0.0.1:6443",
            &pki.ca.cert_pem,
            "sa",
            &Credentials::Token("abc"),
            "metallb-system",
        );
        let c = config_from_yaml(&y).await.expect("token kubeconfig");
        assert_eq!(c.default_namespace, "metallb-system");
    }
}
