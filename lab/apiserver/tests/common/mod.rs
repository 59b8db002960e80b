//! Shared test helpers: start a server and build a real kube client from its kubeconfig.
#![allow(dead_code)]

use ferrolb_apiserver::{ApiServer, ApiServerHandle};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Start a server and a client that talks to it exactly as to a real cluster.
pub async fn start() -> anyhow::Result<(ApiServerHandle, kube::Client)> {
    let server = ApiServer::start().await?;
    let client = client_for(&server).await?;
    Ok((server, client))
}

/// A kube client built from the server's kubeconfig text.
pub async fn client_for(server: &ApiServerHandle) -> anyhow::Result<kube::Client> {
    let kc = Kubeconfig::from_yaml(&server.kubeconfig_yaml())?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(cfg)?)
}

/// The Status of a failed kube call (panics with context if the call did not fail with one).
pub fn status_of<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> Box<kube::core::Status> {
    match r {
        Err(kube::Error::Api(s)) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}
