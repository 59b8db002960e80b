//! The watches behind [`super::ConfigState`]: one task per kind feeding a bounded queue, one
//! task folding the changes into [`Sources`] and publishing the state.
//!
//! A `metallb.io` kind (and the Secrets) is probed with a one-item list before it is
//! watched: 404 (CRD not installed) or 403 (RBAC) make it [`Change::Absent`], probed again
//! every [`PROBE_PERIOD`], instead of a watch retrying every second forever. A watch that
//! starts answering 404 (the CRD was deleted) goes back to probing.

use std::fmt::Debug;
use std::time::Duration;

use ferrolb_crds::types::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::ListParams;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::ConfigState;
use super::secrets::BASIC_AUTH;
use super::store::{Change, Input, Sources};
use crate::ratelog::LogLimiter;
use crate::slim::SlimNode;
use crate::watch::{WatchBackoff, watch as watch_stream};

/// How often a kind found not served (or forbidden) is looked for again.
pub const PROBE_PERIOD: Duration = Duration::from_secs(30);

/// Changes queued between the watches and the folding task (backpressure beyond).
const QUEUE: usize = 256;

/// Where the configuration lives and what to read.
#[derive(Debug, Clone)]
pub struct Options {
    /// `metallb-system`.
    pub namespace: String,
    /// The ConfigMap's name (`config`).
    pub configmap_name: String,
    /// Resolve `passwordSecret` (the speaker; the controller does not need passwords, and
    /// so needs no right to read Secrets).
    pub read_secrets: bool,
    /// Read the Nodes' labels for the node-dependent rules (`Sources::with_nodes`).
    pub read_nodes: bool,
    /// [`PROBE_PERIOD`] unless a test shortens it.
    pub probe_period: Duration,
}

impl Options {
    /// Secrets not read, default probe period.
    pub fn new(namespace: &str, configmap_name: &str) -> Self {
        Options {
            namespace: namespace.to_string(),
            configmap_name: configmap_name.to_string(),
            read_secrets: false,
            read_nodes: false,
            probe_period: PROBE_PERIOD,
        }
    }
}

/// Starts the watches; the receiver always holds the newest [`ConfigState`].
pub fn spawn(
    client: kube::Client,
    opts: Options,
    cancel: CancellationToken,
) -> watch::Receiver<ConfigState> {
    let (state_tx, state_rx) = watch::channel(ConfigState::default());
    let (tx, rx) = mpsc::channel::<Input>(QUEUE);
    let ns = opts.namespace.as_str();
    let period = opts.probe_period;
    let plain = watcher::Config::default;
    let cm_cfg = plain().fields(&format!("metadata.name={}", opts.configmap_name));
    let mut tasks = Vec::new();
    macro_rules! follow {
        ($t:ty, $cfg:expr, $name:expr, $probe:expr, $wrap:expr) => {
            tasks.push(tokio::spawn(follow::<$t>(
                Api::namespaced(client.clone(), ns),
                $cfg,
                $name,
                $probe.then_some(period),
                $wrap,
                tx.clone(),
            )))
        };
    }
    follow!(ConfigMap, cm_cfg, "configmap", false, Input::ConfigMap);
    follow!(IPAddressPool, plain(), "ipaddresspools", true, Input::Pool);
    follow!(BGPPeer, plain(), "bgppeers", true, Input::Peer);
    follow!(
        BGPAdvertisement,
        plain(),
        "bgpadvertisements",
        true,
        Input::BgpAdvertisement
    );
    follow!(
        L2Advertisement,
        plain(),
        "l2advertisements",
        true,
        Input::L2Advertisement
    );
    follow!(BFDProfile, plain(), "bfdprofiles", true, Input::BfdProfile);
    follow!(Community, plain(), "communities", true, Input::Community);
    if opts.read_secrets {
        // Only basic-auth Secrets are ever fetched: no other Secret of the namespace
        // reaches this process's memory.
        let cfg = plain().fields(&format!("type={BASIC_AUTH}"));
        follow!(Secret, cfg, "secrets", true, Input::Secret);
    }
    if opts.read_nodes {
        // Probed like the CRs: RBAC that predates this watch (403) must not stop the
        // daemon; the node-dependent rules are then skipped.
        tasks.push(tokio::spawn(follow::<SlimNode>(
            Api::all(client.clone()),
            plain(),
            "nodes",
            Some(period),
            Input::Node,
            tx.clone(),
        )));
    }
    drop(tx);
    let mut sources = Sources::new(&opts.namespace, &opts.configmap_name, opts.read_secrets);
    if opts.read_nodes {
        sources = sources.with_nodes();
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = fold(rx, sources, state_tx) => {}
        }
        for t in tasks {
            t.abort();
        }
    });
    state_rx
}

/// Folds changes into `sources`; after each burst, evaluates and publishes if it differs.
async fn fold(mut rx: mpsc::Receiver<Input>, mut sources: Sources, tx: watch::Sender<ConfigState>) {
    let mut state = ConfigState::default();
    let mut logged_absent = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut dirty = sources.apply(first);
        while let Ok(more) = rx.try_recv() {
            dirty |= sources.apply(more);
        }
        if !dirty {
            continue;
        }
        let Some(evaluation) = sources.evaluate() else {
            continue;
        };
        let absent = sources.absent();
        if absent != logged_absent {
            for (kind, why) in &absent {
                tracing::info!(kind, reason = %why, "configuration kind not available; counted as empty (Nodes: their rules skipped) and looked for again periodically");
            }
            logged_absent = absent;
        }
        if state.take(evaluation, &sources) {
            log_state(&state, &sources);
            tx.send_replace(state.clone());
        }
    }
}

/// Logs what readers now see (only when it changed, so a Node label change that leaves
/// the model as it was repeats nothing).
fn log_state(st: &ConfigState, sources: &Sources) {
    let cm = sources.configmap_key();
    let source = st.origin.map_or("", |o| o.as_str());
    for w in &st.warnings {
        tracing::warn!(source, warning = %w, "configuration warning");
    }
    match (&st.stale, &st.config) {
        (None, Some(c)) => tracing::info!(
            source,
            configmap = %cm,
            peers = c.peers.len(),
            pools = c.pools.len(),
            "configuration loaded"
        ),
        // The reason names the source and every error (`ConfigState::take`).
        (Some(reason), _) => {
            tracing::error!(configmap = %cm, %reason, "configuration not taken; keeping the one in force, if any")
        }
        (None, None) => {}
    }
}

/// Why an answer means "this kind is not there for us", if it does.
fn absent_reason(code: u16, message: &str, what: &str) -> Option<String> {
    match code {
        404 => Some(format!("{what} not served (CRD not installed?)")),
        403 => Some(format!("{what} not readable (RBAC): {message}")),
        _ => None,
    }
}

fn api_status(e: &kube::Error) -> Option<(u16, String)> {
    match e {
        kube::Error::Api(s) => Some((s.code, s.message.clone())),
        _ => None,
    }
}

fn watch_status(e: &watcher::Error) -> Option<(u16, String)> {
    match e {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => api_status(e),
        watcher::Error::WatchError(s) => Some((s.code, s.message.clone())),
        watcher::Error::NoResourceVersion => None,
    }
}

/// Follows one kind until the receiver is gone. `probe`: look for the kind first (and
/// again every period while it is absent).
async fn follow<K>(
    api: Api<K>,
    cfg: watcher::Config,
    name: &'static str,
    probe: Option<Duration>,
    wrap: fn(Change<K>) -> Input,
    tx: mpsc::Sender<Input>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let mut backoff = WatchBackoff::default();
    let mut log = LogLimiter::new(crate::watch::ERROR_LOG_PERIOD);
    loop {
        if let Some(period) = probe {
            let lp = ListParams {
                field_selector: cfg.field_selector.clone(),
                limit: Some(1),
                ..Default::default()
            };
            match api.list(&lp).await {
                Ok(_) => {}
                Err(e) => {
                    let absent = api_status(&e).and_then(|(c, m)| absent_reason(c, &m, name));
                    if let Some(why) = absent {
                        if tx.send(wrap(Change::Absent(why))).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(period).await;
                    } else {
                        if log.allow().is_some() {
                            tracing::warn!(watch = name, error = %e, "cannot list; retrying at most every second");
                        }
                        tokio::time::sleep(backoff.next().unwrap_or(Duration::from_secs(1))).await;
                    }
                    continue;
                }
            }
            backoff.reset();
        }
        let mut stream = watch_stream(api.clone(), cfg.clone(), name);
        while let Some(item) = stream.next().await {
            let change = match item {
                Ok(Event::Init) => Change::Relist,
                Ok(Event::InitApply(o)) => Change::Item(o),
                Ok(Event::InitDone) => Change::Listed,
                Ok(Event::Apply(o)) => Change::Upsert(o),
                Ok(Event::Delete(o)) => Change::Delete(o),
                Err(e) => {
                    let gone = watch_status(&e).is_some_and(|(c, _)| c == 404 || c == 403);
                    if probe.is_some() && gone {
                        break;
                    }
                    continue;
                }
            };
            if tx.send(wrap(change)).await.is_err() {
                return;
            }
        }
        if probe.is_none() {
            // A plain watch only ends with its receiver.
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_served_and_forbidden_are_absent_other_errors_are_retried() {
        assert!(
            absent_reason(404, "", "ipaddresspools")
                .unwrap()
                .contains("not served")
        );
        assert!(
            absent_reason(403, "nope", "secrets")
                .unwrap()
                .contains("RBAC): nope")
        );
        assert_eq!(absent_reason(500, "", "x"), None);
        assert_eq!(absent_reason(503, "", "x"), None);
    }
}
