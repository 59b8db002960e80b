//! Watch streams: newline-delimited JSON `{"type": ..., "object": ...}` events.
//!
//! A watch starts either from a snapshot (no resourceVersion, `"0"`, or
//! `sendInitialEvents=true`: current objects as ADDED) or from the history after the given
//! resourceVersion; a version older than the compaction floor yields one ERROR event with a
//! 410 `Expired` Status on an HTTP 200 stream, as the real API server does. With label or
//! field selectors, an object that starts or stops matching is sent as ADDED or DELETED.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::resources::RESOURCES;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{Broadcast, Event, EventType, Store, WatchStart};
use crate::table::{self, Include};

/// What one watch request asked for.
pub struct WatchRequest {
    /// Resource index.
    pub res: usize,
    /// Namespace filter (`None`: all namespaces).
    pub ns: Option<String>,
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
    /// Resume after this resourceVersion (`None`: start with a snapshot).
    pub from: Option<u64>,
    /// `allowWatchBookmarks=true`.
    pub bookmarks: bool,
    /// `sendInitialEvents=true`: snapshot, then a bookmark marking the end of it.
    pub send_initial: bool,
    /// Close the stream after this long (`timeoutSeconds`).
    pub timeout: Duration,
    /// How often an idle watch gets a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Send each object as a one-row `meta.k8s.io/v1` Table (kubectl get -w).
    pub table: Option<Include>,
}

impl WatchRequest {
    /// The JSON of an event's object: the object itself, or a one-row Table.
    fn render(&self, obj: &Value, rv: u64, cached: Option<Bytes>) -> Bytes {
        match (self.table, cached) {
            (None, Some(b)) => b,
            (None, None) => Bytes::from(serde_json::to_vec(obj).unwrap_or_default()),
            (Some(inc), _) => {
                let t = table::table(&RESOURCES[self.res], std::iter::once(obj), rv, inc);
                Bytes::from(serde_json::to_vec(&t).unwrap_or_default())
            }
        }
    }

    fn matches(&self, obj: &Value) -> bool {
        let ns_ok = match &self.ns {
            Some(ns) => {
                obj.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns.as_str())
            }
            None => true,
        };
        ns_ok && self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// The event this watcher sees for `ev`, if any.
    fn translate(&self, ev: &Event) -> Option<EventType> {
        if ev.res != self.res {
            return None;
        }
        let now = self.matches(&ev.obj);
        match ev.kind {
            EventType::Added => now.then_some(EventType::Added),
            EventType::Deleted => now.then_some(EventType::Deleted),
            EventType::Modified if self.labels.is_empty() && self.fields.is_empty() => {
                now.then_some(EventType::Modified)
            }
            EventType::Modified => {
                let before = ev.prev.as_ref().is_some_and(|p| self.matches(p));
                match (before, now) {
                    (true, true) => Some(EventType::Modified),
                    (false, true) => Some(EventType::Added),
                    (true, false) => Some(EventType::Deleted),
                    (false, false) => None,
                }
            }
        }
    }
}

fn push_event(buf: &mut BytesMut, kind: &str, obj_json: &[u8]) {
    buf.extend_from_slice(b"{\"type\":\"");
    buf.extend_from_slice(kind.as_bytes());
    buf.extend_from_slice(b"\",\"object\":");
    buf.extend_from_slice(obj_json);
    buf.extend_from_slice(b"}\n");
}

fn push_bookmark(buf: &mut BytesMut, res: usize, rv: u64, initial_end: bool) {
    let Some(rt) = RESOURCES.get(res) else {
        return;
    };
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end && let Some(m) = meta.as_object_mut() {
        m.insert(
            "annotations".into(),
            json!({"k8s.io/initial-events-end": "true"}),
        );
    }
    let obj = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": meta});
    push_event(buf, "BOOKMARK", obj.to_string().as_bytes());
}

/// Flush threshold for batching events into one body chunk.
const CHUNK: usize = 64 * 1024;

/// Start a watch and return the streaming response.
pub fn respond(store: Arc<Store>, req: WatchRequest) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    match store.subscribe(req.res, if req.send_initial { None } else { req.from }) {
        Ok(sub) => {
            tokio::spawn(run(req, sub, tx));
        }
        Err(e) => {
            let mut buf = BytesMut::new();
            let status = serde_json::to_vec(&e.to_status()).unwrap_or_default();
            push_event(&mut buf, "ERROR", &status);
            let _ = tx.try_send(buf.freeze());
        }
    }
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| {
            axum::response::IntoResponse::into_response(ApiError::internal(
                "building watch response",
            ))
        })
}

async fn flush(tx: &mpsc::Sender<Bytes>, buf: &mut BytesMut) -> bool {
    if buf.is_empty() {
        return true;
    }
    tx.send(buf.split().freeze()).await.is_ok()
}

/// The per-watch task: initial events, then live events, bookmarks and the timeout.
async fn run(req: WatchRequest, sub: crate::store::Subscription, tx: mpsc::Sender<Bytes>) {
    let mut progress = sub.rv;
    let mut rx = sub.rx;
    let mut buf = BytesMut::new();
    match sub.start {
        WatchStart::Snapshot(objs) => {
            for o in objs.iter().filter(|o| req.matches(o)) {
                let j = req.render(o, progress, None);
                push_event(&mut buf, "ADDED", &j);
                if buf.len() >= CHUNK && !flush(&tx, &mut buf).await {
                    return;
                }
            }
            if req.send_initial && req.bookmarks {
                push_bookmark(&mut buf, req.res, progress, true);
            }
        }
        WatchStart::Backlog(events) => {
            for ev in &events {
                if let Some(kind) = req.translate(ev) {
                    push_event(
                        &mut buf,
                        kind.as_str(),
                        &req.render(&ev.obj, ev.rv, Some(ev.obj_json())),
                    );
                    if buf.len() >= CHUNK && !flush(&tx, &mut buf).await {
                        return;
                    }
                }
            }
        }
    }
    if !flush(&tx, &mut buf).await {
        return;
    }
    let deadline = tokio::time::sleep(req.timeout);
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(req.bookmark_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let mut next = Some(msg);
                // Drain what is already queued into one chunk.
                while let Some(msg) = next.take() {
                    match msg {
                        Ok(Broadcast::Event(ev)) => {
                            progress = progress.max(ev.rv);
                            // A watch from a future version only sees changes after it.
                            let after_start = req.send_initial || req.from.is_none_or(|r| ev.rv > r);
                            if after_start && let Some(kind) = req.translate(&ev) {
                                push_event(&mut buf, kind.as_str(), &req.render(&ev.obj, ev.rv, Some(ev.obj_json())));
                            }
                        }
                        Ok(Broadcast::CloseAll) => {
                            let _ = flush(&tx, &mut buf).await;
                            return;
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            // Too slow: close, the client resumes or relists.
                            tracing::debug!(lagged = n, resource = RESOURCES[req.res].plural, "closing lagging watch");
                            return;
                        }
                        Err(broadcast::error::RecvError::Closed) => {
                            let _ = flush(&tx, &mut buf).await;
                            return;
                        }
                    }
                    if buf.len() < CHUNK {
                        next = match rx.try_recv() {
                            Ok(m) => Some(Ok(m)),
                            Err(broadcast::error::TryRecvError::Lagged(n)) => Some(Err(broadcast::error::RecvError::Lagged(n))),
                            Err(broadcast::error::TryRecvError::Closed) => Some(Err(broadcast::error::RecvError::Closed)),
                            Err(broadcast::error::TryRecvError::Empty) => None,
                        };
                    }
                }
                if !flush(&tx, &mut buf).await {
                    return;
                }
            }
            _ = tick.tick(), if req.bookmarks => {
                push_bookmark(&mut buf, req.res, progress, false);
                if !flush(&tx, &mut buf).await {
                    return;
                }
            }
            _ = &mut deadline => {
                return;
            }
            _ = tx.closed() => {
                return;
            }
        }
    }
}
