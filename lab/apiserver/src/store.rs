//! The object store: every object of every resource, one global resourceVersion counter,
//! a bounded event history for resuming watches, and a broadcast channel for live watches.
//!
//! All writes go through [`Store::write`] under one mutex, so the resourceVersion order, the
//! history order and the broadcast order are the same. Nothing is awaited under the lock,
//! and broadcasting never blocks: a watcher that falls too far behind is closed (and its
//! client re-watches or relists), as the real API server does.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::resources::{NAMESPACES, RESOURCES};
use crate::status::ApiError;

/// Watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object deleted (the object carries the deletion's resourceVersion).
    Deleted,
}

impl EventType {
    /// The wire name (`ADDED`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, kept in the history and fanned out to watchers.
#[derive(Debug)]
pub struct Event {
    /// The resourceVersion this change produced.
    pub rv: u64,
    /// Resource index into [`RESOURCES`].
    pub res: usize,
    /// Event type.
    pub kind: EventType,
    /// The object after the change (for DELETED: the last state, with the new RV).
    pub obj: Arc<Value>,
    /// What selectors can see of the previous version (see
    /// [`crate::selector::selectable_summary`]), for selector transitions in filtered
    /// watches; keeping only this lets old object versions be freed.
    pub prev: Option<Value>,
    json: OnceLock<Bytes>,
}

impl Event {
    /// The object serialized once, shared by every watcher.
    pub fn obj_json(&self) -> Bytes {
        self.json
            .get_or_init(|| Bytes::from(serde_json::to_vec(&*self.obj).unwrap_or_default()))
            .clone()
    }
}

/// What the broadcast channel carries.
#[derive(Debug, Clone)]
pub enum Broadcast {
    /// A change.
    Event(Arc<Event>),
    /// Close every open watch (compaction / watch-cache reset).
    CloseAll,
}

/// The result of a write closure.
pub enum Write {
    /// Store this object (create or update).
    Put(Value),
    /// Delete the object.
    Delete,
}

type Key = (String, String);

struct Inner {
    rv: u64,
    objects: Vec<BTreeMap<Key, Arc<Value>>>,
    history: VecDeque<Arc<Event>>,
    /// Watches from a resourceVersion below this are answered with 410 Expired.
    floor: u64,
    history_cap: usize,
}

/// Where a watch starts.
pub enum WatchStart {
    /// Snapshot of current objects (sent as ADDED), then changes after it.
    Snapshot(Vec<Arc<Value>>),
    /// Changes after the requested resourceVersion, from the history.
    Backlog(Vec<Arc<Event>>),
}

/// A registered watch: where it starts and the live channel.
pub struct Subscription {
    /// Initial events.
    pub start: WatchStart,
    /// The global resourceVersion at subscription time.
    pub rv: u64,
    /// Live changes after `rv`.
    pub rx: broadcast::Receiver<Broadcast>,
}

/// A read-only view of the store, given to write closures (which run under the lock).
pub struct View<'a>(&'a Inner);

impl View<'_> {
    /// Does namespace `ns` exist?
    pub fn namespace_exists(&self, ns: &str) -> bool {
        self.0.objects[NAMESPACES].contains_key(&(String::new(), ns.to_string()))
    }
}

/// The store.
pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Broadcast>,
}

/// Broadcast buffer per watcher; a watcher further behind than this is closed.
const BROADCAST_CAPACITY: usize = 32 * 1024;

impl Store {
    /// An empty store keeping `history_cap` events for resuming watches.
    pub fn new(history_cap: usize) -> Self {
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        Self {
            inner: Mutex::new(Inner {
                rv: 1,
                objects: RESOURCES.iter().map(|_| BTreeMap::new()).collect(),
                history: VecDeque::new(),
                floor: 0,
                history_cap: history_cap.max(1),
            }),
            tx,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means a panic elsewhere; the data is still consistent
        // because every write is applied atomically at the end of `write`.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current global resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// One object.
    pub fn get(&self, res: usize, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.lock()
            .objects
            .get(res)?
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// All objects of `res` (in namespace `ns` if given), with the list resourceVersion.
    pub fn list(&self, res: usize, ns: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let g = self.lock();
        let Some(map) = g.objects.get(res) else {
            return (Vec::new(), g.rv);
        };
        let items = match ns {
            Some(ns) => map
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| v.clone())
                .collect(),
            None => map.values().cloned().collect(),
        };
        (items, g.rv)
    }

    /// Run `f` with a consistent read view of the store.
    pub fn read<T>(&self, f: impl FnOnce(&View<'_>) -> T) -> T {
        let g = self.lock();
        f(&View(&g))
    }

    /// Atomically read-modify-write one object. `f` sees the current object and a read
    /// view of the rest of the store (under the same lock); the store stamps `metadata.resourceVersion`,
    /// records the event and broadcasts it. Returns the stored object and the event type
    /// (`None` when nothing changed).
    pub fn write<F>(
        &self,
        res: usize,
        ns: &str,
        name: &str,
        f: F,
    ) -> Result<(Arc<Value>, Option<EventType>), ApiError>
    where
        F: FnOnce(Option<&Value>, &View<'_>) -> Result<Write, ApiError>,
    {
        let mut g = self.lock();
        let key = (ns.to_string(), name.to_string());
        let current = g.objects.get(res).and_then(|m| m.get(&key)).cloned();
        let next_rv = g.rv + 1;
        match f(current.as_deref(), &View(&g))? {
            Write::Put(mut obj) => {
                if let Some(c) = &current
                    && same_content(c, &obj)
                {
                    return Ok((c.clone(), None));
                }
                set_rv(&mut obj, next_rv);
                let obj = Arc::new(obj);
                let kind = if current.is_some() {
                    EventType::Modified
                } else {
                    EventType::Added
                };
                g.rv = next_rv;
                if let Some(m) = g.objects.get_mut(res) {
                    m.insert(key, obj.clone());
                }
                self.record(&mut g, res, kind, obj.clone(), current);
                Ok((obj, Some(kind)))
            }
            Write::Delete => {
                let Some(c) = current else {
                    return Err(ApiError::internal("write closure deleted a missing object"));
                };
                let deleted = self.remove_locked(&mut g, res, key, c);
                if res == NAMESPACES {
                    self.cascade_namespace(&mut g, name);
                }
                Ok((deleted, Some(EventType::Deleted)))
            }
        }
    }

    fn remove_locked(
        &self,
        g: &mut Inner,
        res: usize,
        key: Key,
        current: Arc<Value>,
    ) -> Arc<Value> {
        g.rv += 1;
        let mut last = (*current).clone();
        set_rv(&mut last, g.rv);
        let last = Arc::new(last);
        if let Some(m) = g.objects.get_mut(res) {
            m.remove(&key);
        }
        self.record(g, res, EventType::Deleted, last.clone(), Some(current));
        last
    }

    /// Deleting a namespace deletes everything in it (without the real Terminating phase).
    fn cascade_namespace(&self, g: &mut Inner, ns: &str) {
        for res in 0..RESOURCES.len() {
            let keys: Vec<(Key, Arc<Value>)> = g.objects[res]
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (k, v) in keys {
                self.remove_locked(g, res, k, v);
            }
        }
    }

    fn record(
        &self,
        g: &mut Inner,
        res: usize,
        kind: EventType,
        obj: Arc<Value>,
        prev: Option<Arc<Value>>,
    ) {
        let ev = Arc::new(Event {
            rv: g.rv,
            res,
            kind,
            obj,
            prev: prev.map(|p| crate::selector::selectable_summary(&RESOURCES[res], &p)),
            json: OnceLock::new(),
        });
        g.history.push_back(ev.clone());
        while g.history.len() > g.history_cap {
            if let Some(old) = g.history.pop_front() {
                g.floor = g.floor.max(old.rv);
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(Broadcast::Event(ev));
    }

    /// Register a watch on `res` starting after `from` (`None`: from a snapshot of now).
    /// A `from` below the compaction floor is 410 Expired.
    pub fn subscribe(&self, res: usize, from: Option<u64>) -> Result<Subscription, ApiError> {
        let g = self.lock();
        let rx = self.tx.subscribe();
        let start = match from {
            None => WatchStart::Snapshot(
                g.objects
                    .get(res)
                    .map(|m| m.values().cloned().collect())
                    .unwrap_or_default(),
            ),
            Some(r) if r < g.floor => return Err(ApiError::gone_watch(r, g.floor)),
            Some(r) => {
                // History is ordered by rv: skip to the first event after r.
                let start = g.history.partition_point(|e| e.rv <= r);
                WatchStart::Backlog(
                    g.history
                        .range(start..)
                        .filter(|e| e.res == res)
                        .cloned()
                        .collect(),
                )
            }
        };
        Ok(Subscription {
            start,
            rv: g.rv,
            rx,
        })
    }

    /// Is a list at exactly resourceVersion `r` still servable (not compacted)?
    pub fn check_list_rv(&self, r: u64) -> Result<(), ApiError> {
        if r < self.lock().floor {
            Err(ApiError::gone_list())
        } else {
            Ok(())
        }
    }

    /// Forget history up to and including `rv`: watches resuming from an older version get
    /// 410 Expired. Open watches are not affected.
    pub fn compact_to(&self, rv: u64) {
        let mut g = self.lock();
        let rv = rv.min(g.rv);
        while g.history.front().is_some_and(|e| e.rv <= rv) {
            g.history.pop_front();
        }
        g.floor = g.floor.max(rv);
    }

    /// Close every open watch (server shutdown).
    pub fn close_watches(&self) {
        let _ = self.tx.send(Broadcast::CloseAll);
    }

    /// Simulate etcd compaction plus a watch-cache reset, the way clients experience it
    /// after an API server restart on a busy cluster: the resourceVersion advances (as
    /// writes to other resources would make it), all history is forgotten and every open
    /// watch is closed. Every watcher then reconnects with a resourceVersion that is too
    /// old, gets 410 Expired, and must relist. Returns the new floor.
    pub fn compact(&self) -> u64 {
        let mut g = self.lock();
        g.rv += 1;
        g.history.clear();
        g.floor = g.rv;
        let _ = self.tx.send(Broadcast::CloseAll);
        g.rv
    }
}

fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

/// Equal apart from resourceVersion and managedFields timestamps (a no-op write).
fn same_content(old: &Value, new: &Value) -> bool {
    fn normalized(v: &Value) -> Value {
        let mut v = v.clone();
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
            if let Some(Value::Array(mf)) = meta.get_mut("managedFields") {
                for e in mf {
                    if let Some(o) = e.as_object_mut() {
                        o.remove("time");
                    }
                }
            }
        }
        v
    }
    normalized(old) == normalized(new)
}
