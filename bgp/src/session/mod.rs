//! The tokio driver and the public [`Speaker`] API.
//!
//! A [`Speaker`] is a cheap, cloneable handle. Each configured peer runs in its own
//! task (`peer.rs`) that owns the pure [`crate::fsm::Fsm`], its timers, up to two TCP
//! connections (for collision handling) and the peer's Adj-RIBs; the handle talks to it
//! over a channel. An optional shared listener accepts incoming connections and hands
//! them to the peer task of the remote address.
//!
//! Routes are level-triggered: [`Speaker::set_desired`] states the whole set, and a
//! live session only receives the difference. On Established the full table goes out
//! at once, packed into as few UPDATEs as fit, followed by End-of-RIB per family.

mod config;
mod io;
pub mod learned;
mod peer;
mod ratelimit;
mod refresh;
pub mod socket;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use ipnet::IpNet;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

pub use config::{
    ConfigError, DEFAULT_MAX_PREFIX_RESTART, NextHopSpec, PeerConfig, PeerSelector, RouteSpec,
    SpeakerConfig, SpeakerError,
};
pub use io::FLUSH_TIMEOUT;
pub use learned::{LearnedBatch, LearnedReceiver, LearnedRoute, LearnedSender, learned_feed};

use crate::fsm::State;
use crate::rib::Route;
use peer::{Desired, PeerCommand, PeerTask, SharedStatus};

/// What happens on the speaker's sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpeakerEvent {
    /// A peer changed state; `reason` says why when it went down.
    PeerStateChanged {
        /// The peer.
        peer: IpAddr,
        /// Old state.
        from: State,
        /// New state.
        to: State,
        /// Why (set on transitions downwards).
        reason: Option<String>,
    },
    /// A peer announced a prefix (or changed its route).
    RouteLearned {
        /// The peer.
        peer: IpAddr,
        /// Prefix.
        prefix: IpNet,
        /// Route now in effect.
        route: Route,
    },
    /// A peer's prefix is gone (withdrawn, or the session went down).
    RouteWithdrawn {
        /// The peer.
        peer: IpAddr,
        /// Prefix.
        prefix: IpNet,
    },
    /// The initial table and End-of-RIB of a new session were written to the socket.
    EndOfRibSent {
        /// The peer.
        peer: IpAddr,
        /// Prefixes announced in it.
        prefixes: usize,
    },
}

/// A peer's state and counters, for metrics and the status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer's address.
    pub peer: IpAddr,
    /// The peer's AS.
    pub remote_as: u32,
    /// FSM state.
    pub state: State,
    /// When the session became Established.
    pub established_since: Option<SystemTime>,
    /// How long it has been Established.
    pub uptime: Option<Duration>,
    /// Why the last connection or session ended.
    pub last_error: Option<String>,
    /// UPDATE messages sent (End-of-RIB markers included).
    pub updates_sent: u64,
    /// UPDATE messages received (End-of-RIB markers included).
    pub updates_received: u64,
    /// Prefixes currently announced to the peer.
    pub prefixes_announced: usize,
    /// Prefixes currently received from the peer.
    pub prefixes_received: usize,
    /// Our end of the Established session.
    pub local_address: Option<SocketAddr>,
    /// The configured maximum-prefix limit.
    pub max_prefixes: Option<u32>,
    /// Sessions ended because the peer sent more prefixes than that (Cease 6/1).
    pub max_prefix_ceases: u64,
    /// ROUTE-REFRESH requests received.
    pub route_refreshes_received: u64,
}

struct PeerEntry {
    config: PeerConfig,
    cmd: mpsc::UnboundedSender<PeerCommand>,
    status: Arc<Mutex<SharedStatus>>,
    task: JoinHandle<()>,
}

type PeerMap = Arc<Mutex<HashMap<IpAddr, PeerEntry>>>;

struct Inner {
    /// The runtime peer tasks run on (so `add_peer` works from any thread).
    runtime: tokio::runtime::Handle,
    config: SpeakerConfig,
    peers: PeerMap,
    /// Desired routes for peers added later (set through [`PeerSelector::All`]).
    default_desired: Mutex<Desired>,
    events: mpsc::UnboundedSender<SpeakerEvent>,
    listener: Option<Arc<TcpListener>>,
    accept_task: Option<JoinHandle<()>>,
    /// With [`Speaker::with_learned_feed`]: where learned routes go.
    learned: Option<learned::LearnedSender>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(t) = &self.accept_task {
            t.abort();
        }
    }
}

/// Handle to a BGP speaker (cheap to clone). Dropping the last handle stops every
/// session with a Cease.
#[derive(Clone)]
pub struct Speaker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Speaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Speaker")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these short locks cannot leave the data half
    // updated in a way that matters; keep serving.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Speaker {
    /// Create a speaker (inside a tokio runtime). Binds the listener if configured.
    pub fn new(
        config: SpeakerConfig,
    ) -> Result<(Speaker, mpsc::UnboundedReceiver<SpeakerEvent>), SpeakerError> {
        Self::build(config, None)
    }

    /// Like [`Speaker::new`], but routes learned from the peers go into a bounded,
    /// coalescing feed (see [`learned`]) instead of `RouteLearned` / `RouteWithdrawn`
    /// events: what a consumer with a large table needs. While more than `capacity`
    /// changes wait in the feed, the sessions stop reading their sockets.
    #[allow(clippy::type_complexity)]
    pub fn with_learned_feed(
        config: SpeakerConfig,
        capacity: usize,
    ) -> Result<
        (
            Speaker,
            mpsc::UnboundedReceiver<SpeakerEvent>,
            learned::LearnedReceiver,
        ),
        SpeakerError,
    > {
        let (tx, rx) = learned::learned_feed(capacity);
        let (speaker, events) = Self::build(config, Some(tx))?;
        Ok((speaker, events, rx))
    }

    fn build(
        config: SpeakerConfig,
        learned: Option<learned::LearnedSender>,
    ) -> Result<(Speaker, mpsc::UnboundedReceiver<SpeakerEvent>), SpeakerError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| SpeakerError::NoRuntime)?;
        let (events, rx) = mpsc::unbounded_channel();
        let peers: PeerMap = Arc::default();
        let (listener, accept_task) = match config.listen {
            Some(addr) => {
                let l = Arc::new(
                    socket::listen(addr).map_err(|source| SpeakerError::Listen { addr, source })?,
                );
                let task = runtime.spawn(accept_loop(l.clone(), peers.clone()));
                (Some(l), Some(task))
            }
            None => (None, None),
        };
        let inner = Inner {
            runtime,
            config,
            peers,
            default_desired: Mutex::new(Arc::default()),
            events,
            listener,
            accept_task,
            learned,
        };
        Ok((
            Speaker {
                inner: Arc::new(inner),
            },
            rx,
        ))
    }

    /// The address the listener is bound to (useful with port 0).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.inner
            .listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Add and start a peer. The error names the invalid field.
    pub fn add_peer(&self, config: PeerConfig) -> Result<(), ConfigError> {
        config.validate(self.inner.config.router_id, self.inner.listener.is_some())?;
        let mut peers = lock(&self.inner.peers);
        if peers.contains_key(&config.address) {
            return Err(ConfigError::DuplicatePeer(config.address));
        }
        self.set_listener_md5(&config, config.password.as_deref())?;
        let (cmd, cmd_rx) = mpsc::unbounded_channel();
        let status = Arc::new(Mutex::new(SharedStatus {
            status: PeerStatus {
                peer: config.address,
                remote_as: config.remote_as,
                state: State::Idle,
                established_since: None,
                uptime: None,
                last_error: None,
                updates_sent: 0,
                updates_received: 0,
                prefixes_announced: 0,
                prefixes_received: 0,
                local_address: None,
                max_prefixes: config.max_prefixes,
                max_prefix_ceases: 0,
                route_refreshes_received: 0,
            },
            established_at: None,
        }));
        let desired = lock(&self.inner.default_desired).clone();
        let task = PeerTask::new(
            config.clone(),
            self.inner.config.router_id,
            desired,
            cmd_rx,
            self.inner.events.clone(),
            status.clone(),
            self.inner.learned.clone(),
        );
        let handle = self.inner.runtime.spawn(task.run());
        info!(peer = %config.address, remote_as = config.remote_as, "BGP peer added");
        peers.insert(
            config.address,
            PeerEntry {
                config,
                cmd,
                status,
                task: handle,
            },
        );
        Ok(())
    }

    /// Change a peer's configuration. Returns whether the session was reset: only
    /// session-affecting changes reset it (see [`PeerConfig::needs_reset`]); an
    /// identical configuration changes nothing.
    pub fn update_peer(&self, config: PeerConfig) -> Result<bool, ConfigError> {
        config.validate(self.inner.config.router_id, self.inner.listener.is_some())?;
        let mut peers = lock(&self.inner.peers);
        let entry = peers
            .get_mut(&config.address)
            .ok_or(ConfigError::UnknownPeer(config.address))?;
        if entry.config == config {
            return Ok(false);
        }
        let reset = entry.config.needs_reset(&config);
        if entry.config.password != config.password {
            self.set_listener_md5(&config, config.password.as_deref())?;
        }
        entry.config = config.clone();
        entry
            .cmd
            .send(PeerCommand::UpdateConfig(Box::new(config)))
            .map_err(|_| ConfigError::ShutDown)?;
        Ok(reset)
    }

    /// Remove a peer: Cease 6/3 (Peer De-configured) and wait (about a second at most)
    /// for it to be written.
    pub async fn remove_peer(&self, address: IpAddr) -> Result<(), ConfigError> {
        let entry = lock(&self.inner.peers)
            .remove(&address)
            .ok_or(ConfigError::UnknownPeer(address))?;
        if entry.config.password.is_some()
            && let Err(e) = self.set_listener_md5(&entry.config, None)
        {
            debug!(peer = %address, error = %e, "cannot remove MD5 key from listener");
        }
        let (done, wait) = oneshot::channel();
        let _ = entry.cmd.send(PeerCommand::Stop {
            deconfigured: true,
            reason: None,
            graceful: false,
            done,
        });
        let _ = tokio::time::timeout(FLUSH_TIMEOUT + Duration::from_millis(500), wait).await;
        entry.task.abort();
        info!(peer = %address, "BGP peer removed");
        Ok(())
    }

    /// Replace the desired routes of one peer, or of all peers (and the default for
    /// peers added later). A table the caller already holds in an `Arc` is kept as it
    /// is, not copied: the peers' tasks hold that one allocation (one table for every
    /// peer given the same `Arc`).
    pub fn set_desired(
        &self,
        peers: PeerSelector,
        routes: impl Into<Arc<BTreeMap<IpNet, RouteSpec>>>,
    ) -> Result<(), ConfigError> {
        let routes: Desired = routes.into();
        if peers == PeerSelector::All {
            *lock(&self.inner.default_desired) = routes.clone();
        }
        self.send(peers, |_| PeerCommand::SetDesired(routes.clone()))
    }

    /// Add or change one route.
    pub fn announce(
        &self,
        peers: PeerSelector,
        prefix: IpNet,
        spec: RouteSpec,
    ) -> Result<(), ConfigError> {
        if peers == PeerSelector::All {
            Arc::make_mut(&mut lock(&self.inner.default_desired)).insert(prefix, spec.clone());
        }
        self.send(peers, |_| PeerCommand::Announce(prefix, spec.clone()))
    }

    /// Remove one route.
    pub fn withdraw(&self, peers: PeerSelector, prefix: IpNet) -> Result<(), ConfigError> {
        if peers == PeerSelector::All {
            Arc::make_mut(&mut lock(&self.inner.default_desired)).remove(&prefix);
        }
        self.send(peers, |_| PeerCommand::Withdraw(prefix))
    }

    fn send(
        &self,
        peers: PeerSelector,
        mut make: impl FnMut(IpAddr) -> PeerCommand,
    ) -> Result<(), ConfigError> {
        let map = lock(&self.inner.peers);
        match peers {
            PeerSelector::All => {
                for (addr, e) in map.iter() {
                    let _ = e.cmd.send(make(*addr));
                }
                Ok(())
            }
            PeerSelector::Peer(addr) => {
                let e = map.get(&addr).ok_or(ConfigError::UnknownPeer(addr))?;
                e.cmd.send(make(addr)).map_err(|_| ConfigError::ShutDown)
            }
        }
    }

    /// The peer's BFD session failed (RFC 5882): its BGP session goes down at once with
    /// Cease 6/10 (RFC 9384) and comes back through the normal FSM after the back-off.
    /// Nothing happens when no connection exists.
    pub fn bfd_down(&self, peer: IpAddr, detail: &str) -> Result<(), ConfigError> {
        self.send(PeerSelector::Peer(peer), |_| {
            PeerCommand::BfdDown(detail.to_string())
        })
    }

    /// State and counters of every peer, sorted by address.
    pub fn peer_status(&self) -> Vec<PeerStatus> {
        let map = lock(&self.inner.peers);
        let mut out: Vec<PeerStatus> = map
            .values()
            .map(|e| {
                let s = lock(&e.status);
                let mut st = s.status.clone();
                st.uptime = s.established_at.map(|t| t.elapsed());
                st
            })
            .collect();
        out.sort_by_key(|s| s.peer);
        out
    }

    /// Stop every session with Cease 6/2 (and the RFC 8203 `reason`), wait for the
    /// NOTIFICATIONs to be written (about a second at most), and stop listening.
    pub async fn shutdown(&self, reason: Option<&str>) {
        self.stop_all(reason, false).await;
    }

    /// Stop for a restart (RFC 4724, restarting speaker): sessions that negotiated
    /// graceful restart are closed without a NOTIFICATION, so their peers keep our routes
    /// for our restart time and a new instance takes over without a withdrawal; the
    /// others get Cease 6/2 with `reason`, as in [`Speaker::shutdown`].
    pub async fn shutdown_for_restart(&self, reason: Option<&str>) {
        self.stop_all(reason, true).await;
    }

    async fn stop_all(&self, reason: Option<&str>, graceful: bool) {
        if let Some(t) = &self.inner.accept_task {
            t.abort();
        }
        let entries: Vec<PeerEntry> = lock(&self.inner.peers).drain().map(|(_, e)| e).collect();
        let mut waits = Vec::new();
        for e in &entries {
            let (done, wait) = oneshot::channel();
            let stop = PeerCommand::Stop {
                deconfigured: false,
                reason: reason.map(str::to_owned),
                graceful,
                done,
            };
            if e.cmd.send(stop).is_ok() {
                waits.push(wait);
            }
        }
        let all = futures::future::join_all(waits);
        if tokio::time::timeout(FLUSH_TIMEOUT + Duration::from_millis(200), all)
            .await
            .is_err()
        {
            warn!("some peers did not finish their shutdown in time");
        }
        for e in entries {
            e.task.abort();
        }
        info!("BGP speaker shut down");
    }

    fn set_listener_md5(&self, config: &PeerConfig, key: Option<&str>) -> Result<(), ConfigError> {
        let (Some(l), Some(_)) = (&self.inner.listener, config.password.as_ref()) else {
            return Ok(());
        };
        // An IPv6 listener sees IPv4 peers as mapped addresses.
        let addr = match (l.local_addr().map(|a| a.is_ipv6()), config.address) {
            (Ok(true), IpAddr::V4(v4)) => IpAddr::V6(v4.to_ipv6_mapped()),
            _ => config.address,
        };
        socket::set_md5(l.as_ref(), addr, key).map_err(|source| ConfigError::Socket {
            peer: config.address,
            what: "setting the TCP MD5 key on the listener",
            source,
        })
    }
}

/// Accept connections and hand each to the task of the peer it comes from.
async fn accept_loop(listener: Arc<TcpListener>, peers: PeerMap) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let ip = remote.ip().to_canonical();
                let map = lock(&peers);
                match map.get(&ip) {
                    Some(e) => {
                        let _ = e.cmd.send(PeerCommand::Inbound(stream));
                    }
                    None => debug!(%remote, "connection from an unknown peer refused"),
                }
            }
            Err(e) => {
                // E.g. EMFILE: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
