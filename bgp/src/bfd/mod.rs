//! BFD (RFC 5880, 5881, 5883): sub-second detection of a dead path, for BGP (RFC 5882).
//!
//! The same split as the BGP code:
//! - [`packet`]: the Control packet codec with the checks of RFC 5880 section 6.8.6;
//! - [`session`]: the pure session state machine (events in, actions out);
//! - [`socket`] and the engine task: UDP on ports 3784 (single hop, TTL 255 required) and
//!   4784 (multihop, TTL at least the configured minimum), one sending socket per session
//!   with a source port in 49152-65535;
//! - [`link_to_bgp`]: takes a BGP session down (Cease 6/10, "BFD Down", RFC 9384) when its
//!   BFD session fails, and leaves it alone when the peer only signals AdminDown.
//!
//! ```ignore
//! let (bfd, events) = Bfd::new(BfdConfig::default())?;
//! bfd.set_peer(PeerSpec::single_hop(router_ip))?;   // 300 ms x 3, active
//! let link = ferrolb_bgp::bfd::link_to_bgp(speaker.clone(), events);
//! bfd.status();                                      // state, intervals, detect time, counters
//! bfd.shutdown().await;                              // AdminDown to every peer
//! ```
//!
//! A peer that never answers leaves its BFD session Down and the BGP session exactly as it
//! would be without BFD: BGP is never held back waiting for BFD.

mod engine;
mod link;
pub mod packet;
pub mod session;
pub mod socket;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub use link::link_to_bgp;
pub use packet::{ControlPacket, Diag, PacketError, SessionState};
pub use session::{Negotiated, SessionConfig, Transition, is_failure};

use engine::{Command, Engine, slot};

/// Where the shared receivers listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfdConfig {
    /// Single-hop receive port (3784; 0 picks a free one, for tests).
    pub single_hop_port: u16,
    /// Multihop receive port (4784; 0 picks a free one, for tests).
    pub multihop_port: u16,
    /// IPv4 receive address.
    pub listen_v4: Ipv4Addr,
    /// IPv6 receive address.
    pub listen_v6: Ipv6Addr,
}

impl Default for BfdConfig {
    fn default() -> Self {
        BfdConfig {
            single_hop_port: socket::SINGLE_HOP_PORT,
            multihop_port: socket::MULTIHOP_PORT,
            listen_v4: Ipv4Addr::UNSPECIFIED,
            listen_v6: Ipv6Addr::UNSPECIFIED,
        }
    }
}

/// One BFD session: to whom, over what, with which timers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    /// The peer's address (the session's key).
    pub peer: IpAddr,
    /// Our source address (default: whatever the kernel picks towards the peer).
    pub local: Option<IpAddr>,
    /// RFC 5883 multihop (port 4784) instead of single hop (port 3784).
    pub multihop: bool,
    /// Timers, passive role, echo advertisement.
    pub session: SessionConfig,
    /// Multihop only: lowest TTL accepted (FRR's and MetalLB's default 254).
    pub minimum_ttl: u8,
    /// Destination port override (tests); default by hop count.
    pub remote_port: Option<u16>,
}

impl PeerSpec {
    /// A single-hop session with the default timers (300 ms × 3).
    pub fn single_hop(peer: IpAddr) -> Self {
        PeerSpec {
            peer,
            local: None,
            multihop: false,
            session: SessionConfig::default(),
            minimum_ttl: 254,
            remote_port: None,
        }
    }

    fn same_transport(&self, other: &PeerSpec) -> bool {
        self.local == other.local
            && self.multihop == other.multihop
            && self.remote_port == other.remote_port
    }

    /// Check the values; the error names the field.
    pub fn validate(&self) -> Result<(), BfdError> {
        let bad = |field: &'static str, reason: &str| {
            Err(BfdError::Invalid {
                peer: self.peer,
                field,
                reason: reason.to_string(),
            })
        };
        let max = Duration::from_micros(u64::from(u32::MAX));
        if self.peer.is_unspecified() || self.peer.is_multicast() {
            return bad("peer", "must be a unicast address");
        }
        if self
            .local
            .is_some_and(|l| l.is_ipv4() != self.peer.is_ipv4())
        {
            return bad("local", "must be of the peer's address family");
        }
        let s = &self.session;
        if s.desired_min_tx < Duration::from_millis(1) || s.desired_min_tx > max {
            return bad("desired_min_tx", "must be 1 ms to 4294 s");
        }
        if s.required_min_rx < Duration::from_millis(1) || s.required_min_rx > max {
            return bad("required_min_rx", "must be 1 ms to 4294 s");
        }
        if s.required_min_echo_rx > max {
            return bad("required_min_echo_rx", "must be at most 4294 s");
        }
        if s.detect_mult == 0 {
            return bad("detect_mult", "must be at least 1");
        }
        if self.multihop && self.minimum_ttl == 0 {
            return bad("minimum_ttl", "must be at least 1");
        }
        Ok(())
    }
}

/// Why a session could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BfdError {
    /// A value out of range; names the field.
    #[error("BFD session to {peer}: {field}: {reason}")]
    Invalid {
        /// The peer.
        peer: IpAddr,
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A receiving port could not be bound (another BFD daemon on this host?).
    #[error("BFD: binding the receiver on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The session's sending socket could not be opened (e.g. a source address this host
    /// does not have).
    #[error("BFD session to {peer}: opening the sending socket: {source}")]
    Socket {
        /// The peer.
        peer: IpAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// Not inside a tokio runtime.
    #[error("BFD needs a tokio runtime")]
    NoRuntime,
    /// The engine task is gone.
    #[error("BFD engine stopped")]
    ShutDown,
}

/// What happens on the sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BfdEvent {
    /// A session changed state.
    StateChanged {
        /// The peer.
        peer: IpAddr,
        /// The change.
        transition: Transition,
    },
}

/// One session, for status pages and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStatus {
    /// The peer.
    pub peer: IpAddr,
    /// Our sending socket's address (source port in 49152-65535).
    pub local_address: Option<SocketAddr>,
    /// Multihop session.
    pub multihop: bool,
    /// Our state.
    pub state: SessionState,
    /// The peer's state as last received.
    pub remote_state: SessionState,
    /// Our discriminator.
    pub local_discriminator: u32,
    /// The peer's discriminator (0 until heard).
    pub remote_discriminator: u32,
    /// Our diagnostic.
    pub local_diag: Diag,
    /// The peer's diagnostic.
    pub remote_diag: Diag,
    /// Configured parameters.
    pub config: SessionConfig,
    /// Negotiated intervals and detection time.
    pub negotiated: Negotiated,
    /// How long the session has been Up.
    pub uptime: Option<Duration>,
    /// Why the session last left Up or Init.
    pub last_down_reason: Option<String>,
    /// Control packets accepted for this session.
    pub control_packets_in: u64,
    /// Control packets sent.
    pub control_packets_out: u64,
    /// Transitions to Up.
    pub session_up_events: u64,
    /// Transitions from Up to Down or AdminDown.
    pub session_down_events: u64,
    /// Packets for this session dropped (TTL below the multihop minimum).
    pub dropped: u64,
}

/// Packets dropped before reaching any session, by reason (`bad_ttl`, `unknown_peer`,
/// `unknown_discriminator`, `wrong_source`, the codec's [`PacketError::kind`]s, ...).
pub type DropStats = BTreeMap<&'static str, u64>;

/// Text for why a session went down.
pub fn describe_transition(t: &Transition) -> String {
    match (t.to, t.diag) {
        (SessionState::AdminDown, _) => "administratively down (local)".to_string(),
        (_, Diag::ControlDetectionTimeExpired) => "control detection time expired".to_string(),
        (_, Diag::NeighborSignaledDown) if t.remote_state == SessionState::AdminDown => {
            "neighbor signaled AdminDown".to_string()
        }
        (_, Diag::NeighborSignaledDown) => {
            format!("neighbor signaled session down ({})", t.remote_diag)
        }
        (_, d) => d.to_string(),
    }
}

type StatusMap = HashMap<IpAddr, (SessionStatus, Option<std::time::Instant>)>;

/// State shared by the handle (reader) and the engine (writer).
#[derive(Default)]
pub(crate) struct Shared {
    status: Mutex<StatusMap>,
    drops: Mutex<DropStats>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn insert_status(&self, spec: &PeerSpec, local: Option<SocketAddr>, fsm: &session::Session) {
        let s = SessionStatus {
            peer: spec.peer,
            local_address: local,
            multihop: spec.multihop,
            state: fsm.state(),
            remote_state: fsm.remote_state(),
            local_discriminator: fsm.local_discriminator(),
            remote_discriminator: 0,
            local_diag: fsm.local_diag(),
            remote_diag: fsm.remote_diag(),
            config: spec.session,
            negotiated: fsm.negotiated(),
            uptime: None,
            last_down_reason: None,
            control_packets_in: 0,
            control_packets_out: 0,
            session_up_events: 0,
            session_down_events: 0,
            dropped: 0,
        };
        lock(&self.status).insert(spec.peer, (s, None));
    }

    fn remove_status(&self, peer: IpAddr) {
        lock(&self.status).remove(&peer);
    }

    fn update_status(
        &self,
        peer: IpAddr,
        f: impl FnOnce(&mut SessionStatus, &mut Option<std::time::Instant>),
    ) {
        if let Some((s, since)) = lock(&self.status).get_mut(&peer) {
            f(s, since);
        }
    }

    fn count_drop(&self, kind: &'static str) {
        *lock(&self.drops).entry(kind).or_default() += 1;
    }
}

struct Inner {
    config: BfdConfig,
    cmd: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    /// What the handle last asked for, per peer.
    specs: Mutex<HashMap<IpAddr, PeerSpec>>,
    /// Receivers opened so far (by slot), with their bound address.
    receivers: Mutex<[Option<SocketAddr>; 4]>,
}

/// Handle to the BFD sessions of this process (cheap to clone). Dropping the last handle
/// sends AdminDown to every peer and stops the engine.
#[derive(Clone)]
pub struct Bfd {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Bfd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bfd")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Bfd {
    /// Start the engine (inside a tokio runtime). No socket is opened until a session
    /// needs it, so a node without BFD profiles never binds port 3784.
    pub fn new(config: BfdConfig) -> Result<(Bfd, mpsc::UnboundedReceiver<BfdEvent>), BfdError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BfdError::NoRuntime)?;
        let (cmd, cmd_rx) = mpsc::unbounded_channel();
        let (events, events_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::default());
        runtime.spawn(Engine::new(cmd_rx, events, shared.clone()).run());
        let inner = Inner {
            config,
            cmd,
            shared,
            specs: Mutex::new(HashMap::new()),
            receivers: Mutex::new([None; 4]),
        };
        Ok((
            Bfd {
                inner: Arc::new(inner),
            },
            events_rx,
        ))
    }

    fn send(&self, c: Command) -> Result<(), BfdError> {
        self.inner.cmd.send(c).map_err(|_| BfdError::ShutDown)
    }

    /// Open the receiver for a family and hop mode now (sessions open theirs on demand);
    /// returns its address. Daemons use it to fail early, tests to learn a port-0 address.
    pub fn listen(&self, v6: bool, multihop: bool) -> Result<SocketAddr, BfdError> {
        self.ensure_receiver(v6, multihop)?;
        self.receiver_addr(v6, multihop).ok_or(BfdError::ShutDown)
    }

    fn ensure_receiver(&self, v6: bool, multihop: bool) -> Result<(), BfdError> {
        let i = slot(v6, multihop);
        let mut open = lock(&self.inner.receivers);
        if open[i].is_some() {
            return Ok(());
        }
        let c = &self.inner.config;
        let port = if multihop {
            c.multihop_port
        } else {
            c.single_hop_port
        };
        let addr = if v6 {
            SocketAddr::new(IpAddr::V6(c.listen_v6), port)
        } else {
            SocketAddr::new(IpAddr::V4(c.listen_v4), port)
        };
        let sock = socket::receiver(addr).map_err(|source| BfdError::Listen { addr, source })?;
        let bound = sock.local_addr().unwrap_or(addr);
        self.send(Command::Receiver(i, sock))?;
        open[i] = Some(bound);
        Ok(())
    }

    /// Add a session, or change it. Identical settings do nothing; new timers are applied
    /// to the running session with a Poll Sequence; a new source address, hop mode or port
    /// replaces the session.
    pub fn set_peer(&self, spec: PeerSpec) -> Result<(), BfdError> {
        spec.validate()?;
        let mut specs = lock(&self.inner.specs);
        if let Some(old) = specs.get(&spec.peer) {
            if *old == spec {
                return Ok(());
            }
            if old.same_transport(&spec) {
                self.send(Command::Reconfigure(
                    spec.peer,
                    spec.session,
                    spec.minimum_ttl,
                ))?;
                specs.insert(spec.peer, spec);
                return Ok(());
            }
        }
        self.ensure_receiver(spec.peer.is_ipv6(), spec.multihop)?;
        let tx = socket::sender(spec.peer, spec.local, rand::random()).map_err(|source| {
            BfdError::Socket {
                peer: spec.peer,
                source,
            }
        })?;
        self.send(Command::Add(Box::new(spec.clone()), tx))?;
        specs.insert(spec.peer, spec);
        Ok(())
    }

    /// Remove a session: AdminDown goes to the peer (for about a detection time), so its
    /// clients know this is not a failure.
    pub fn remove_peer(&self, peer: IpAddr) {
        if lock(&self.inner.specs).remove(&peer).is_some() {
            self.inner.shared.remove_status(peer);
            let _ = self.send(Command::Remove(peer));
        }
    }

    /// The configured peers and their settings.
    pub fn peers(&self) -> BTreeMap<IpAddr, PeerSpec> {
        lock(&self.inner.specs)
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    /// Every session's status, sorted by peer.
    pub fn status(&self) -> Vec<SessionStatus> {
        let map = lock(&self.inner.shared.status);
        let mut out: Vec<SessionStatus> = map
            .values()
            .map(|(s, since)| {
                let mut s = s.clone();
                s.uptime = since.map(|t| t.elapsed());
                s
            })
            .collect();
        out.sort_by_key(|s| s.peer);
        out
    }

    /// One session's status.
    pub fn session(&self, peer: IpAddr) -> Option<SessionStatus> {
        self.status().into_iter().find(|s| s.peer == peer)
    }

    /// Packets dropped before reaching a session, by reason.
    pub fn drops(&self) -> DropStats {
        lock(&self.inner.shared.drops).clone()
    }

    /// The address a receiver is bound to, once a session opened it (tests use port 0).
    pub fn receiver_addr(&self, v6: bool, multihop: bool) -> Option<SocketAddr> {
        lock(&self.inner.receivers)[slot(v6, multihop)]
    }

    /// Send AdminDown to every peer and stop the engine.
    pub async fn shutdown(&self) {
        let (done, wait) = oneshot::channel();
        if self.send(Command::Shutdown(done)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), wait).await;
        }
        lock(&self.inner.specs).clear();
    }
}
