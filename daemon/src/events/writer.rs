//! The Event writer task: correlate, coalesce, write with bounded concurrency.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::bounded::Bounded;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::correlate::{CACHE, Correlator};
use super::{EventSpec, Occurrences, Options, Stats, build};
use crate::ratelog::LogLimiter;

/// Attempts per Event on errors that retrying can cure (5xx, 429, connection).
const ATTEMPTS: u32 = 3;
/// How long a shutdown may spend flushing queued Events.
const FLUSH: Duration = Duration::from_secs(2);

/// Occurrences of one Event not written yet.
struct Pending {
    ev: EventSpec,
    occurrences: i32,
    first: Timestamp,
    last: Timestamp,
    since: Instant,
    attempts: u32,
}

/// What the API server holds for a key.
#[derive(Clone)]
struct Written {
    name: String,
    count: i32,
    first: Timestamp,
}

struct Done {
    key: String,
    pending: Pending,
    /// What is written now, and whether a new Event object was created for it.
    result: Result<(Written, bool), kube::Error>,
}

struct Writer {
    client: kube::Client,
    opts: Options,
    stats: Arc<Stats>,
    correlator: Correlator,
    written: Bounded<String, Written>,
    pending: HashMap<String, Pending>,
    order: VecDeque<String>,
    in_flight: HashSet<String>,
    tasks: JoinSet<Done>,
    drop_log: LogLimiter,
    fail_log: LogLimiter,
    seq: u64,
}

pub(super) async fn run(
    client: kube::Client,
    opts: Options,
    stats: Arc<Stats>,
    mut rx: mpsc::UnboundedReceiver<EventSpec>,
    cancel: CancellationToken,
) {
    let mut w = Writer {
        client,
        opts,
        stats,
        correlator: Correlator::default(),
        written: Bounded::new(CACHE),
        pending: HashMap::new(),
        order: VecDeque::new(),
        in_flight: HashSet::new(),
        tasks: JoinSet::new(),
        drop_log: LogLimiter::new(Duration::from_secs(10)),
        fail_log: LogLimiter::new(Duration::from_secs(10)),
        seq: 0,
    };
    loop {
        let waiting = !w.pending.is_empty() && w.gated();
        tokio::select! {
            _ = cancel.cancelled() => break,
            ev = rx.recv() => match ev {
                Some(ev) => w.observe(ev),
                None => break,
            },
            Some(done) = w.tasks.join_next() => match done {
                Ok(done) => w.on_done(done),
                Err(e) => tracing::error!(error = %e, "event write task failed"),
            },
            _ = tokio::time::sleep(Duration::from_millis(20)), if waiting => {}
        }
        w.dispatch(false);
    }
    w.flush(&mut rx).await;
}

fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 429 || s.code >= 500 || s.code == 409,
        _ => true,
    }
}

impl Writer {
    /// Held back by the gate (and not for too long yet).
    fn gated(&self) -> bool {
        let busy = self
            .opts
            .gate
            .as_ref()
            .is_some_and(|g| g.load(Ordering::Relaxed) > 0);
        let oldest = self
            .order
            .front()
            .and_then(|k| self.pending.get(k))
            .map(|p| p.since.elapsed());
        busy && oldest.is_some_and(|age| age < self.opts.max_defer)
    }

    fn observe(&mut self, ev: EventSpec) {
        let now = Timestamp::now();
        let c = self
            .correlator
            .correlate(&self.opts.source, &ev, Instant::now());
        if let Some(p) = self.pending.get_mut(&c.key) {
            p.occurrences = p.occurrences.saturating_add(1);
            p.last = now;
            p.ev.message = c.message;
            return;
        }
        if self.pending.len() >= self.opts.max_pending {
            let n = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(held) = self.drop_log.allow() {
                tracing::warn!(
                    dropped_total = n,
                    held_back_lines = held,
                    queued = self.pending.len(),
                    reason = ev.reason,
                    object = %format!("{}/{}", ev.regarding.namespace, ev.regarding.name),
                    "event queue full: dropping events (counted in the dropped total)"
                );
            }
            return;
        }
        let mut ev = ev;
        ev.message = c.message;
        self.pending.insert(
            c.key.clone(),
            Pending {
                ev,
                occurrences: 1,
                first: now,
                last: now,
                since: Instant::now(),
                attempts: 0,
            },
        );
        self.order.push_back(c.key);
    }

    fn dispatch(&mut self, ignore_gate: bool) {
        if !ignore_gate && self.gated() {
            return;
        }
        let mut blocked = Vec::new();
        while self.tasks.len() < self.opts.concurrency.max(1) {
            let Some(key) = self.order.pop_front() else {
                break;
            };
            if self.in_flight.contains(&key) {
                blocked.push(key);
                continue;
            }
            let Some(p) = self.pending.remove(&key) else {
                continue;
            };
            self.in_flight.insert(key.clone());
            let prev = self.written.get(&key).cloned();
            self.seq += 1;
            let name = format!(
                "{}.{:x}",
                p.ev.regarding.name,
                p.last.as_nanosecond() as u64 + self.seq
            );
            let api: Api<Event> = Api::namespaced(self.client.clone(), &p.ev.regarding.namespace);
            let opts = self.opts.clone();
            self.tasks.spawn(async move {
                let result = write(&api, &opts, &p, prev, name).await;
                Done {
                    key,
                    pending: p,
                    result,
                }
            });
        }
        for key in blocked.into_iter().rev() {
            self.order.push_front(key);
        }
    }

    fn on_done(&mut self, done: Done) {
        self.in_flight.remove(&done.key);
        let Done {
            key,
            mut pending,
            result,
        } = done;
        match result {
            Ok((w, created)) => {
                // One occurrence makes the new object; every other one is a count increment.
                let folded = pending.occurrences as u64 - u64::from(created);
                self.stats
                    .created
                    .fetch_add(u64::from(created), Ordering::Relaxed);
                self.stats.aggregated.fetch_add(folded, Ordering::Relaxed);
                self.written.put(key, w);
            }
            Err(e) if transient(&e) && pending.attempts + 1 < ATTEMPTS => {
                pending.attempts += 1;
                self.requeue(key, pending);
            }
            Err(e) => {
                let n = self
                    .stats
                    .failed
                    .fetch_add(pending.occurrences as u64, Ordering::Relaxed)
                    + pending.occurrences as u64;
                if let Some(held) = self.fail_log.allow() {
                    let r = &pending.ev.regarding;
                    tracing::warn!(
                        object = %format!("{}/{} {}/{}", super::api_version(r.kind), r.kind, r.namespace, r.name),
                        reason = pending.ev.reason,
                        error = %e,
                        failed_total = n,
                        held_back_lines = held,
                        "the API server rejected an event"
                    );
                }
            }
        }
    }

    /// Puts a failed write back, merged with occurrences that arrived meanwhile.
    fn requeue(&mut self, key: String, p: Pending) {
        match self.pending.get_mut(&key) {
            Some(newer) => {
                newer.occurrences = newer.occurrences.saturating_add(p.occurrences);
                newer.first = p.first.min(newer.first);
                newer.since = p.since.min(newer.since);
                newer.attempts = p.attempts;
            }
            None => {
                self.pending.insert(key.clone(), p);
                self.order.push_back(key);
            }
        }
    }

    /// On shutdown: write what is queued, for at most [`FLUSH`].
    async fn flush(&mut self, rx: &mut mpsc::UnboundedReceiver<EventSpec>) {
        while let Ok(ev) = rx.try_recv() {
            self.observe(ev);
        }
        let deadline = tokio::time::Instant::now() + FLUSH;
        loop {
            self.dispatch(true);
            if self.tasks.is_empty() {
                break;
            }
            match tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
                Ok(Some(Ok(done))) => self.on_done(done),
                Ok(Some(Err(_))) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let left: i32 = self.pending.values().map(|p| p.occurrences).sum();
        if left > 0 || !self.tasks.is_empty() {
            self.stats.dropped.fetch_add(left as u64, Ordering::Relaxed);
            tracing::warn!(
                unwritten = left,
                in_flight = self.tasks.len(),
                "shutting down with events not written"
            );
        }
        self.tasks.abort_all();
    }
}

/// Creates the Event, or adds to the count of the one already written for this key.
async fn write(
    api: &Api<Event>,
    opts: &Options,
    p: &Pending,
    prev: Option<Written>,
    name: String,
) -> Result<(Written, bool), kube::Error> {
    if let Some(w) = prev {
        let count = w.count.saturating_add(p.occurrences);
        let patch = json!({
            "count": count,
            "lastTimestamp": p.last,
            "message": super::truncate_message(&p.ev.message),
        });
        let pp = PatchParams {
            field_manager: Some(opts.field_manager.to_string()),
            ..PatchParams::default()
        };
        match api.patch(&w.name, &pp, &Patch::Merge(&patch)).await {
            Ok(_) => {
                return Ok((
                    Written {
                        name: w.name,
                        count,
                        first: w.first,
                    },
                    false,
                ));
            }
            // Expired (Events live an hour) or deleted: start a new one, as client-go does.
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let o = Occurrences {
        name: name.clone(),
        message: p.ev.message.clone(),
        count: p.occurrences,
        first: p.first,
        last: p.last,
    };
    let obj = build(&opts.source, &p.ev, &o);
    let pp = PostParams {
        field_manager: Some(opts.field_manager.to_string()),
        ..PostParams::default()
    };
    api.create(&pp, &obj).await?;
    Ok((
        Written {
            name,
            count: p.occurrences,
            first: p.first,
        },
        true,
    ))
}
