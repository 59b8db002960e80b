//! Kubernetes Events of both daemons (core/v1, as MetalLB's client-go recorder writes them),
//! aggregated the way client-go's recorder does.
//!
//! The hot path only calls [`EventSink::publish`], which never blocks. A background task
//! ([`spawn`]) correlates each occurrence ([`correlate`]: dedup by object, reason and
//! message; similar messages combined), coalesces repeats that are still queued, and writes:
//! a new Event is created with `count` = its occurrences, a repeat patches `count`,
//! `lastTimestamp` and `message` of the Event it belongs to. The queue holds at most
//! `max_pending` distinct Events; beyond that an occurrence is dropped, counted in
//! [`Stats::dropped`] and logged (rate-limited) — never silently. With a `gate` (the
//! controller's count of Service writes in flight) Events wait for the writes, at most
//! `max_defer`, so a burst of assignments gets the API server first.

mod bounded;
pub mod correlate;
pub mod spec;
mod writer;

pub use spec::{EventSpec, Regarding, Severity};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Who reports: `source.component`/`reportingComponent`, `source.host`,
/// `reportingInstance`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// `metallb-controller`, `metallb-speaker` (MetalLB's names, for existing dashboards).
    pub component: &'static str,
    /// The node, for per-node reporters.
    pub host: Option<String>,
    /// This instance (leader-election identity, node name).
    pub instance: String,
}

/// How the writer behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Who reports.
    pub source: Source,
    /// Field manager of the writes.
    pub field_manager: &'static str,
    /// Writes in flight at most.
    pub concurrency: usize,
    /// Distinct Events queued at most (beyond: dropped and counted).
    pub max_pending: usize,
    /// Events wait while this is non-zero (e.g. Service writes in flight) ...
    pub gate: Option<Arc<AtomicUsize>>,
    /// ... but at most this long.
    pub max_defer: Duration,
}

impl Options {
    /// Defaults: 8 writes in flight, 16,384 queued Events, no gate, 30 s defer limit.
    pub fn new(source: Source, field_manager: &'static str) -> Self {
        Options {
            source,
            field_manager,
            concurrency: 8,
            max_pending: 16_384,
            gate: None,
            max_defer: Duration::from_secs(30),
        }
    }
}

/// What happened to the occurrences published (each counted once).
#[derive(Debug, Default)]
pub struct Stats {
    /// Published.
    pub published: AtomicU64,
    /// Event objects created (one occurrence each).
    pub created: AtomicU64,
    /// Occurrences counted into an Event that already holds one (its `count` went up).
    pub aggregated: AtomicU64,
    /// Dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Rejected by the API server (after retries).
    pub failed: AtomicU64,
}

impl Stats {
    /// (published, created, aggregated, dropped, failed).
    pub fn snapshot(&self) -> (u64, u64, u64, u64, u64) {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        (
            g(&self.published),
            g(&self.created),
            g(&self.aggregated),
            g(&self.dropped),
            g(&self.failed),
        )
    }
}

/// The producer side.
#[derive(Clone, Debug)]
pub struct EventSink {
    tx: mpsc::UnboundedSender<EventSpec>,
    stats: Arc<Stats>,
}

impl EventSink {
    /// Queues an occurrence; never blocks.
    pub fn publish(&self, ev: EventSpec) {
        self.stats.published.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(ev).is_err() {
            // The writer has stopped (shutdown): count it, as any other drop.
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }
}

/// Starts the writer task; it ends after `cancel` (flushing what it can for 2 s).
pub fn spawn(
    client: kube::Client,
    opts: Options,
    cancel: CancellationToken,
) -> (EventSink, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let stats = Arc::new(Stats::default());
    let task = tokio::spawn(writer::run(client, opts, stats.clone(), rx, cancel));
    (EventSink { tx, stats }, task)
}

/// Longest message written (the events.k8s.io limit; longer ones are cut at a character
/// boundary and end in `...`).
pub const MAX_MESSAGE: usize = 1024;

/// `message`, cut to [`MAX_MESSAGE`] bytes.
pub fn truncate_message(message: &str) -> String {
    if message.len() <= MAX_MESSAGE {
        return message.to_string();
    }
    let mut end = MAX_MESSAGE - 3;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

/// One Event object as written.
#[derive(Debug, Clone)]
pub struct Occurrences {
    /// `metadata.name`.
    pub name: String,
    /// Message.
    pub message: String,
    /// `count`.
    pub count: i32,
    /// `firstTimestamp`.
    pub first: Timestamp,
    /// `lastTimestamp`.
    pub last: Timestamp,
}

/// The `apiVersion` of an Event's object: ferrolb's configuration kinds are MetalLB's
/// `metallb.io` ones, everything else it reports on is core/v1.
pub fn api_version(kind: &str) -> &'static str {
    match kind {
        "BGPPeer" => "metallb.io/v1beta2",
        "IPAddressPool" | "BGPAdvertisement" | "L2Advertisement" | "BFDProfile" | "Community" => {
            "metallb.io/v1beta1"
        }
        _ => "v1",
    }
}

/// The core/v1 Event for `ev` from `source`.
pub fn build(source: &Source, ev: &EventSpec, o: &Occurrences) -> Event {
    let r = &ev.regarding;
    Event {
        metadata: ObjectMeta {
            name: Some(o.name.clone()),
            namespace: Some(r.namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some(api_version(r.kind).into()),
            kind: Some(r.kind.into()),
            name: Some(r.name.clone()),
            namespace: Some(r.namespace.clone()),
            uid: r.uid.clone(),
            ..Default::default()
        },
        reason: Some(ev.reason.into()),
        message: Some(truncate_message(&o.message)),
        type_: Some(ev.severity.as_str().into()),
        source: Some(EventSource {
            component: Some(source.component.into()),
            host: source.host.clone(),
        }),
        first_timestamp: Some(Time(o.first)),
        last_timestamp: Some(Time(o.last)),
        count: Some(o.count),
        reporting_component: Some(source.component.into()),
        reporting_instance: Some(source.instance.clone()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_core_v1_event() {
        let src = Source {
            component: "metallb-speaker",
            host: Some("n1".into()),
            instance: "n1".into(),
        };
        let ev = EventSpec {
            regarding: Regarding {
                kind: "Service",
                namespace: "apps".into(),
                name: "web".into(),
                uid: Some("u1".into()),
            },
            severity: Severity::Warning,
            reason: "AnnounceFailed",
            message: "x".repeat(2000),
        };
        let o = Occurrences {
            name: "web.1".into(),
            message: ev.message.clone(),
            count: 3,
            first: Timestamp::UNIX_EPOCH,
            last: Timestamp::UNIX_EPOCH,
        };
        let obj = build(&src, &ev, &o);
        assert_eq!(obj.type_.as_deref(), Some("Warning"));
        assert_eq!(obj.count, Some(3));
        assert_eq!(obj.involved_object.uid.as_deref(), Some("u1"));
        assert_eq!(obj.metadata.namespace.as_deref(), Some("apps"));
        assert_eq!(
            obj.source.as_ref().and_then(|s| s.host.as_deref()),
            Some("n1")
        );
        assert_eq!(obj.reporting_instance.as_deref(), Some("n1"));
        let m = obj.message.unwrap();
        assert_eq!(m.len(), MAX_MESSAGE);
        assert!(m.ends_with("..."));
        assert_eq!(truncate_message("short"), "short");
        assert_eq!(truncate_message(&"\u{e9}".repeat(600)).len(), 1023);
    }
}
