//! Kubernetes Events (core/v1, as MetalLB's client-go recorder writes them).
//!
//! Event writes never sit on the allocation path: the loop hands them to a bounded channel
//! and a background task writes them with limited concurrency. When the channel is full the
//! event is dropped with a log line — an Event is advisory, a Service status is not.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// The `source.component` / `reportingComponent` MetalLB uses.
pub const COMPONENT: &str = "metallb-controller";

/// Severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// `Normal`.
    Normal,
    /// `Warning`.
    Warning,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Normal => "Normal",
            Severity::Warning => "Warning",
        }
    }
}

/// The object an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regarding {
    /// `Service` or `ConfigMap`.
    pub kind: &'static str,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID, if known.
    pub uid: Option<String>,
}

/// One event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    /// What it is about.
    pub regarding: Regarding,
    /// Normal or Warning.
    pub severity: Severity,
    /// `IPAllocated`, `AllocationFailed`, ...
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
}

/// Events queued at most; beyond that new ones are dropped (as client-go's recorder does
/// under a burst), so a mass assignment never waits for its Events.
const QUEUE: usize = 8192;

/// Longest an Event waits for Service writes to finish before it is written anyway.
pub const MAX_DEFER: Duration = Duration::from_secs(5);

/// Sender side, used by the loop.
#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::Sender<EventSpec>,
    dropped: Arc<AtomicU64>,
}

impl EventSink {
    /// Queue an event; drops it if the queue is full (logged on the first drop and every
    /// 1000th after, not per event).
    pub fn publish(&self, ev: EventSpec) {
        if self.tx.try_send(ev).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_multiple_of(1000) {
                tracing::warn!(dropped = n + 1, "event queue full, dropping events");
            }
        }
    }
}

/// Start the writer task. `instance` goes to `reportingInstance`.
///
/// `writes_busy` is the number of Service writes queued or running: Events wait while it
/// is non-zero (up to [`MAX_DEFER`] per event), so a burst of assignments gets the API
/// server's attention first and its Events follow.
pub fn spawn(
    client: kube::Client,
    instance: String,
    metrics: Arc<Metrics>,
    writes_busy: Arc<AtomicUsize>,
    cancel: CancellationToken,
) -> (EventSink, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<EventSpec>(QUEUE);
    let task = tokio::spawn(async move {
        let stream = tokio_stream_from(rx);
        let writes = stream
            .then(move |ev| {
                let busy = writes_busy.clone();
                async move {
                    let start = tokio::time::Instant::now();
                    while busy.load(Ordering::Relaxed) > 0 && start.elapsed() < MAX_DEFER {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    ev
                }
            })
            .map(|ev| {
                let client = client.clone();
                let instance = instance.clone();
                let metrics = metrics.clone();
                async move {
                    let api: Api<Event> = Api::namespaced(client, &ev.regarding.namespace);
                    let obj = build(&ev, &instance, Timestamp::now());
                    match api.create(&PostParams::default(), &obj).await {
                        Ok(_) => {}
                        Err(e) => {
                            metrics.update_errors.inc();
                            tracing::warn!(error = %e, reason = ev.reason, object = %ev.regarding.name, "writing event failed");
                        }
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
    (
        EventSink {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        },
        task,
    )
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<EventSpec>,
) -> impl futures::Stream<Item = EventSpec> + Unpin {
    Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// Build the core/v1 Event object.
pub fn build(ev: &EventSpec, instance: &str, now: Timestamp) -> Event {
    let name = format!("{}.{:x}", ev.regarding.name, now.as_nanosecond());
    Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(ev.regarding.namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some(ev.regarding.kind.into()),
            name: Some(ev.regarding.name.clone()),
            namespace: Some(ev.regarding.namespace.clone()),
            uid: ev.regarding.uid.clone(),
            ..Default::default()
        },
        reason: Some(ev.reason.into()),
        message: Some(ev.message.clone()),
        type_: Some(ev.severity.as_str().into()),
        source: Some(EventSource {
            component: Some(COMPONENT.into()),
            host: None,
        }),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        reporting_component: Some(COMPONENT.into()),
        reporting_instance: Some(instance.into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_core_v1_event() {
        let ev = EventSpec {
            regarding: Regarding {
                kind: "Service",
                namespace: "default".into(),
                name: "web".into(),
                uid: Some("u1".into()),
            },
            severity: Severity::Warning,
            reason: "AllocationFailed",
            message: "no IP".into(),
        };
        let obj = build(&ev, "me", Timestamp::UNIX_EPOCH);
        assert_eq!(obj.type_.as_deref(), Some("Warning"));
        assert_eq!(obj.reason.as_deref(), Some("AllocationFailed"));
        assert_eq!(obj.involved_object.kind.as_deref(), Some("Service"));
        assert_eq!(obj.involved_object.uid.as_deref(), Some("u1"));
        assert_eq!(obj.metadata.name.as_deref(), Some("web.0"));
        assert_eq!(
            obj.source.and_then(|s| s.component).as_deref(),
            Some(COMPONENT)
        );
    }
}
