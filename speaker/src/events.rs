//! Kubernetes Events (core/v1, as MetalLB's client-go recorder writes them).
//!
//! Writes never sit on the announcement path: the driver queues them on a bounded channel
//! and a background task posts them with limited concurrency. A full queue drops the event
//! with a log line: an Event is advisory, a route is not.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// The `source.component` MetalLB's speaker uses.
pub const COMPONENT: &str = "metallb-speaker";

/// One event about a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    /// Service namespace.
    pub namespace: String,
    /// Service name.
    pub name: String,
    /// Service UID, if known.
    pub uid: Option<String>,
    /// `Normal` (false) or `Warning` (true).
    pub warning: bool,
    /// `nodeAssigned`, ...
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
}

/// Sender side, used by the driver.
#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::Sender<EventSpec>,
}

impl EventSink {
    /// Queue an event; drops it (with a log line) if the queue is full.
    pub fn publish(&self, ev: EventSpec) {
        if let Err(e) = self.tx.try_send(ev) {
            tracing::warn!(error = %e, "event queue full, dropping event");
        }
    }
}

/// Start the writer task; `node` goes to `source.host` and `reportingInstance`.
pub fn spawn(
    client: kube::Client,
    node: String,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) -> (EventSink, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<EventSpec>(4096);
    let task = tokio::spawn(async move {
        let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let writes = stream
            .map(|ev| {
                let client = client.clone();
                let node = node.clone();
                let metrics = metrics.clone();
                async move {
                    let api: Api<Event> = Api::namespaced(client, &ev.namespace);
                    let obj = build(&ev, &node, Timestamp::now());
                    if let Err(e) = api.create(&PostParams::default(), &obj).await {
                        metrics.update_errors.inc();
                        tracing::warn!(error = %e, reason = ev.reason, service = %format!("{}/{}", ev.namespace, ev.name), "writing event failed");
                    }
                }
            })
            .buffer_unordered(8);
        tokio::pin!(writes);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                next = writes.next() => if next.is_none() { break },
            }
        }
    });
    (EventSink { tx }, task)
}

/// Build the core/v1 Event object.
pub fn build(ev: &EventSpec, node: &str, now: Timestamp) -> Event {
    let name = format!("{}.{:x}", ev.name, now.as_nanosecond());
    Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(ev.namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            name: Some(ev.name.clone()),
            namespace: Some(ev.namespace.clone()),
            uid: ev.uid.clone(),
            ..Default::default()
        },
        reason: Some(ev.reason.into()),
        message: Some(ev.message.clone()),
        type_: Some(if ev.warning { "Warning" } else { "Normal" }.into()),
        source: Some(EventSource {
            component: Some(COMPONENT.into()),
            host: Some(node.into()),
        }),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        reporting_component: Some(COMPONENT.into()),
        reporting_instance: Some(node.into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_core_v1_event() {
        let ev = EventSpec {
            namespace: "apps".into(),
            name: "web".into(),
            uid: Some("u1".into()),
            warning: false,
            reason: "nodeAssigned",
            message: "announcing from node \"n1\" with protocol \"bgp\"".into(),
        };
        let obj = build(&ev, "n1", Timestamp::UNIX_EPOCH);
        assert_eq!(obj.type_.as_deref(), Some("Normal"));
        assert_eq!(obj.reason.as_deref(), Some("nodeAssigned"));
        assert_eq!(obj.involved_object.kind.as_deref(), Some("Service"));
        assert_eq!(obj.involved_object.uid.as_deref(), Some("u1"));
        assert_eq!(obj.metadata.namespace.as_deref(), Some("apps"));
        assert_eq!(obj.source.and_then(|s| s.host).as_deref(), Some("n1"));
    }
}
