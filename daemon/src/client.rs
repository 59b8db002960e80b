//! The kube client of a daemon, and who it says it is.
//!
//! Every request carries a User-Agent naming the component and its instance
//! (`ferrolb-controller/0.1.0 (ctl-7f3a)`, `ferrolb-speaker/0.1.0 (node-1)`), so an audit log
//! tells the leader, its standby and each speaker apart; every write carries the component
//! as its field manager, so `managedFields` names ferrolb instead of `unknown`.

use std::path::Path;

use http::HeaderValue;
use http::header::USER_AGENT;
use kube::api::{PatchParams, PostParams};

/// Why no Kubernetes client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig file could not be read or used.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// No configuration could be inferred, or the client could not be built.
    #[error("kubernetes client: {0}")]
    Client(String),
}

/// Who is calling: the component (`ferrolb-controller`, `ferrolb-speaker`) and this
/// instance (the controller's leader-election identity, the speaker's node name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The program; also the field manager of every write.
    pub component: &'static str,
    /// Which one of them.
    pub instance: String,
}

impl Identity {
    /// `component/version (instance)`, with anything a header cannot carry replaced.
    pub fn user_agent(&self) -> String {
        let instance: String = self
            .instance
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!(
            "{}/{} ({instance})",
            self.component,
            env!("CARGO_PKG_VERSION")
        )
    }

    /// The field manager of this component's writes.
    pub fn field_manager(&self) -> &'static str {
        self.component
    }

    /// Patch parameters: our field manager. Field validation stays the server's default
    /// (unknown fields dropped with a warning): strict validation costs the API server an
    /// extra decoding pass per write (measured: ~25 % of a burst's time), and would turn a
    /// field a newer server knows but an older one does not into a failed write instead of a
    /// partial one.
    pub fn patch_params(&self) -> PatchParams {
        PatchParams {
            field_manager: Some(self.field_manager().to_string()),
            ..PatchParams::default()
        }
    }

    /// Create/replace parameters with our field manager.
    pub fn post_params(&self) -> PostParams {
        PostParams {
            field_manager: Some(self.field_manager().to_string()),
            ..PostParams::default()
        }
    }
}

/// The client configuration from a kubeconfig file, or inferred (in-cluster, `$KUBECONFIG`,
/// `~/.kube`).
pub async fn load_config(kubeconfig: Option<&Path>) -> Result<kube::Config, ClientError> {
    match kubeconfig {
        Some(path) => {
            let err = |message: String| ClientError::Kubeconfig {
                path: path.display().to_string(),
                message,
            };
            let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| err(e.to_string()))
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| ClientError::Client(e.to_string())),
    }
}

/// A client from `config` whose every request carries `identity`'s User-Agent.
pub fn client(mut config: kube::Config, identity: &Identity) -> Result<kube::Client, ClientError> {
    let ua = HeaderValue::from_str(&identity.user_agent())
        .map_err(|e| ClientError::Client(format!("User-Agent {:?}: {e}", identity.user_agent())))?;
    config.headers.retain(|(name, _)| name != USER_AGENT);
    config.headers.push((USER_AGENT, ua));
    kube::Client::try_from(config).map_err(|e| ClientError::Client(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_and_params_name_the_component() {
        let id = Identity {
            component: "ferrolb-controller",
            instance: "ctl-1\n\u{e9}".into(),
        };
        let ua = id.user_agent();
        assert!(ua.starts_with("ferrolb-controller/"), "{ua}");
        assert!(ua.ends_with("(ctl-1__)"), "{ua}");
        assert!(HeaderValue::from_str(&ua).is_ok());
        assert_eq!(
            id.patch_params().field_manager.as_deref(),
            Some("ferrolb-controller")
        );
        assert!(id.patch_params().field_validation.is_none());
        assert_eq!(
            id.post_params().field_manager.as_deref(),
            Some("ferrolb-controller")
        );
    }

    #[tokio::test]
    async fn a_missing_kubeconfig_names_the_file() {
        let Err(err) = load_config(Some(Path::new("/nonexistent/kubeconfig"))).await else {
            panic!("a config from a kubeconfig that does not exist");
        };
        assert!(
            matches!(&err, ClientError::Kubeconfig { path, .. } if path == "/nonexistent/kubeconfig"),
            "{err}"
        );
    }
}
