//! The per-peer task: owns the FSM, the timers, the connections and the Adj-RIBs of
//! one peer, and carries out what the FSM decides.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ipnet::IpNet;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::sleep_until;
use tracing::{debug, info};

use super::config::{PeerConfig, RouteSpec};
use super::io::{IO_QUEUE, IoEvent, WriteItem};
use super::learned::LearnedSender;
use super::ratelimit::LogEvery;
use super::refresh::Refreshes;
use super::{PeerStatus, SpeakerEvent};
use crate::fsm::{Action, ConnId, Event, Fsm, State, Timer};
use crate::rib::{AdjRibIn, AdjRibOut};
use crate::wire::{AddressFamily, SessionContext};

/// The desired routes of a peer (shared between peers when set for all of them).
pub(crate) type Desired = Arc<BTreeMap<IpNet, RouteSpec>>;

/// Commands from the [`super::Speaker`] handle.
#[derive(Debug)]
pub(crate) enum PeerCommand {
    SetDesired(Desired),
    Announce(IpNet, RouteSpec),
    Withdraw(IpNet),
    UpdateConfig(Box<PeerConfig>),
    Inbound(TcpStream),
    /// The peer's BFD session failed: take the BGP session down now.
    BfdDown(String),
    /// Stop for good: `deconfigured` sends Cease 6/3, otherwise 6/2 with `reason`. With
    /// `graceful` (a restart, RFC 4724) a session that negotiated graceful restart is
    /// closed without any NOTIFICATION instead, so the peer keeps our routes as stale
    /// until we are back or our restart time runs out.
    Stop {
        deconfigured: bool,
        reason: Option<String>,
        graceful: bool,
        done: oneshot::Sender<()>,
    },
}

/// Status shared with the speaker handle.
#[derive(Debug, Clone)]
pub(crate) struct SharedStatus {
    pub status: PeerStatus,
    pub established_at: Option<Instant>,
}

/// One live TCP connection.
struct Conn {
    generation: u64,
    writer: mpsc::UnboundedSender<WriteItem>,
    writer_task: JoinHandle<()>,
    reader_task: JoinHandle<()>,
    local: SocketAddr,
    /// Context for decoding/encoding: the negotiated one once Established.
    ctx: SessionContext,
}

/// The Established session.
struct Session {
    conn: ConnId,
    ctx: SessionContext,
    local: SocketAddr,
    rib_out: AdjRibOut,
    rib_in: AdjRibIn,
    /// ROUTE-REFRESH resends running or asked for again.
    refreshes: Refreshes,
    /// Families whose End-of-RIB has not arrived yet.
    eor_pending: Vec<AddressFamily>,
    /// The 80 % maximum-prefix warning was logged for this session.
    warned_near_limit: bool,
    /// Routes left out for want of a next hop of their family when last warned about,
    /// so the warning comes once per change, not on every desired-set update.
    warned_no_next_hop: std::cell::Cell<usize>,
}

pub(crate) struct PeerTask {
    config: PeerConfig,
    default_router_id: Ipv4Addr,
    fsm: Fsm,
    timers: HashMap<Timer, tokio::time::Instant>,
    conns: [Option<Conn>; 2],
    next_generation: u64,
    connect: Option<(u64, JoinHandle<()>)>,
    closing: Vec<JoinHandle<()>>,
    session: Option<Session>,
    desired: Desired,
    io_tx: mpsc::Sender<IoEvent>,
    io_rx: mpsc::Receiver<IoEvent>,
    cmd_rx: mpsc::UnboundedReceiver<PeerCommand>,
    events: mpsc::UnboundedSender<SpeakerEvent>,
    status: Arc<Mutex<SharedStatus>>,
    /// Why the last connection or session ended, attached to the next state change.
    pending_reason: Option<String>,
    /// The socket's own reason for the last failed connect ("connection refused"), which
    /// the FSM only knows as a generic connection failure.
    connect_error: Option<String>,
    /// Where learned routes go instead of per-route events, when the speaker has a feed.
    learned: Option<LearnedSender>,
    /// ROUTE-REFRESH requests, logged at most once per interval.
    refresh_log: LogEvery,
    /// RFC 7606 decisions on received UPDATEs, logged at most once per interval.
    rfc7606_log: LogEvery,
    /// A restarting peer's routes kept stale (graceful restart helper, `helper.rs`).
    stale: Option<helper::Stale>,
}

mod conn;
mod export;
mod helper;
mod inbound;
mod session;

impl PeerTask {
    pub(crate) fn new(
        config: PeerConfig,
        default_router_id: Ipv4Addr,
        desired: Desired,
        cmd_rx: mpsc::UnboundedReceiver<PeerCommand>,
        events: mpsc::UnboundedSender<SpeakerEvent>,
        status: Arc<Mutex<SharedStatus>>,
        learned: Option<LearnedSender>,
    ) -> Self {
        let fsm = Fsm::new(config.fsm_config(default_router_id), rand::random());
        let (io_tx, io_rx) = mpsc::channel(IO_QUEUE);
        PeerTask {
            config,
            default_router_id,
            fsm,
            timers: HashMap::new(),
            conns: [None, None],
            next_generation: 0,
            connect: None,
            closing: Vec::new(),
            session: None,
            desired,
            io_tx,
            io_rx,
            cmd_rx,
            events,
            status,
            pending_reason: None,
            connect_error: None,
            learned,
            refresh_log: LogEvery::default(),
            rfc7606_log: LogEvery::default(),
            stale: None,
        }
    }

    fn peer(&self) -> IpAddr {
        self.config.address
    }

    /// Run until stopped (or until the speaker handle is gone).
    pub(crate) async fn run(mut self) {
        self.feed(Event::ManualStart);
        loop {
            self.closing.retain(|h| !h.is_finished());
            let deadline = self
                .timers
                .values()
                .copied()
                .chain(self.stale.as_ref().map(helper::Stale::deadline))
                .min();
            // Backpressure: while the learned-route feed is full, read no more messages
            // (the reader then stops reading the socket).
            let sink = self.learned.clone();
            let blocked = sink.as_ref().is_some_and(|s| !s.has_room());
            tokio::select! {
                biased;
                cmd = self.cmd_rx.recv() => match cmd {
                    Some(PeerCommand::Stop { deconfigured, reason, graceful, done }) => {
                        if graceful && self.session.as_ref().is_some_and(|s| s.ctx.graceful_restart.is_some()) {
                            self.close_silently();
                        } else {
                            self.stop(deconfigured, reason).await;
                        }
                        let _ = done.send(());
                        return;
                    }
                    Some(cmd) => self.on_command(cmd),
                    None => {
                        self.stop(false, Some("speaker stopped".into())).await;
                        return;
                    }
                },
                Some(ev) = self.io_rx.recv(), if !blocked => self.on_io(ev),
                () = async { if let Some(s) = &sink { s.room().await } }, if blocked => {}
                () = sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)),
                    if deadline.is_some() => self.fire_timers(),
            }
        }
    }

    /// Drops every connection without a NOTIFICATION (the kernel closes the sockets): to
    /// a peer that negotiated graceful restart this is a restarting speaker.
    fn close_silently(&mut self) {
        info!(peer = %self.peer(), "closing without NOTIFICATION for a graceful restart");
        if let Some((_, task)) = self.connect.take() {
            task.abort();
        }
        for c in self.conns.iter_mut().filter_map(Option::take) {
            c.reader_task.abort();
            c.writer_task.abort();
        }
    }

    async fn stop(&mut self, deconfigured: bool, reason: Option<String>) {
        self.stale_flush();
        let event = if deconfigured {
            Event::Deconfigured
        } else {
            Event::ManualStop { reason }
        };
        self.feed(event);
        if let Some((_, task)) = self.connect.take() {
            task.abort();
        }
        // Let the Cease reach the peer before the task (and the sockets) go away.
        for h in self.closing.drain(..) {
            let _ = h.await;
        }
    }

    fn fire_timers(&mut self) {
        let now = tokio::time::Instant::now();
        let expired: Vec<Timer> = self
            .timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(t, _)| *t)
            .collect();
        for t in expired {
            self.timers.remove(&t);
            self.feed(Event::TimerExpired(t));
        }
        if self.stale.as_ref().is_some_and(|s| s.deadline() <= now) {
            self.stale_expired();
        }
    }

    fn feed(&mut self, event: Event) {
        let actions = self.fsm.handle(event);
        for a in actions {
            self.apply(a);
        }
    }

    fn with_status(&self, f: impl FnOnce(&mut SharedStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    fn emit(&self, event: SpeakerEvent) {
        // Nobody listening is fine: the events are a convenience for the daemon.
        let _ = self.events.send(event);
    }

    fn apply(&mut self, action: Action) {
        match action {
            Action::Connect => self.start_connect(),
            Action::Send(conn, msg) => self.send_message(conn, &msg),
            Action::CloseTcp(conn) => self.close_conn(conn),
            Action::StartTimer(t, d) => {
                self.timers.insert(t, tokio::time::Instant::now() + d);
            }
            Action::StopTimer(t) => {
                self.timers.remove(&t);
            }
            Action::StateChanged { from, to } => {
                let reason = if to < from {
                    self.pending_reason.take()
                } else {
                    None
                };
                info!(peer = %self.peer(), %from, %to, reason = reason.as_deref().unwrap_or(""), "BGP state changed");
                self.with_status(|s| s.status.state = to);
                self.emit(SpeakerEvent::PeerStateChanged {
                    peer: self.peer(),
                    from,
                    to,
                    reason,
                });
            }
            Action::SessionEstablished(conn, ctx) => self.on_established(conn, ctx),
            Action::SessionDown(reason) => self.on_session_down(&reason),
            Action::ConnectionFailed(reason) => {
                debug!(peer = %self.peer(), %reason, "BGP connection failed");
                let text = self
                    .connect_error
                    .take()
                    .unwrap_or_else(|| reason.to_string());
                self.with_status(|s| s.status.last_error = Some(text.clone()));
                self.pending_reason = Some(text);
            }
            Action::DeliverUpdate(update) => self.on_update(&update),
            Action::EndOfRibReceived(family) => {
                debug!(peer = %self.peer(), ?family, "End-of-RIB received");
                self.with_status(|st| st.status.updates_received += 1);
                let peer = self.peer();
                self.stale_end_of_rib(family);
                if let Some(s) = self.session.as_mut() {
                    let was_pending = !s.eor_pending.is_empty();
                    s.eor_pending.retain(|f| *f != family);
                    if was_pending
                        && s.eor_pending.is_empty()
                        && let Some(sink) = &self.learned
                    {
                        sink.synced(peer);
                    }
                }
            }
            Action::RouteRefreshRequested(family) => self.on_route_refresh(family),
        }
    }

    fn on_command(&mut self, cmd: PeerCommand) {
        match cmd {
            PeerCommand::SetDesired(desired) => {
                self.desired = desired;
                self.sync_desired();
            }
            PeerCommand::Announce(prefix, spec) => {
                Arc::make_mut(&mut self.desired).insert(prefix, spec.clone());
                let Some(s) = self.session.as_ref() else {
                    return;
                };
                let route = export::resolve(&self.config, s, &prefix, &spec);
                let Some(s) = self.session.as_mut() else {
                    return;
                };
                let diff = match route {
                    Some(route) => s.rib_out.announce(prefix, route),
                    // Not announceable on this session (family, next hop): make sure an
                    // older announcement of the prefix is withdrawn.
                    None => s.rib_out.withdraw(&prefix),
                };
                self.send_diff(diff);
            }
            PeerCommand::Withdraw(prefix) => {
                Arc::make_mut(&mut self.desired).remove(&prefix);
                if let Some(d) = self.session_mut().map(|s| s.rib_out.withdraw(&prefix)) {
                    self.send_diff(d);
                }
            }
            PeerCommand::UpdateConfig(new) => self.update_config(*new),
            PeerCommand::Inbound(stream) => self.on_inbound(stream),
            PeerCommand::BfdDown(detail) => self.feed(Event::BfdDown { detail }),
            PeerCommand::Stop { .. } => {} // handled in `run`
        }
    }

    fn session_mut(&mut self) -> Option<&mut Session> {
        self.session.as_mut()
    }

    fn update_config(&mut self, new: PeerConfig) {
        if self.config.needs_reset(&new) {
            info!(peer = %self.peer(), "configuration changed: resetting session");
            self.feed(Event::AdminReset {
                reason: Some("configuration changed".into()),
            });
            if let Some((_, task)) = self.connect.take() {
                task.abort();
            }
            for conn in [ConnId::Outbound, ConnId::Inbound] {
                self.close_conn(conn);
            }
            self.timers.clear();
            let old_state = self.fsm.state();
            self.config = new;
            self.fsm = Fsm::new(
                self.config.fsm_config(self.default_router_id),
                rand::random(),
            );
            if old_state != State::Idle {
                self.apply(Action::StateChanged {
                    from: old_state,
                    to: State::Idle,
                });
            }
            self.feed(Event::ManualStart);
        } else {
            self.config = new;
            let limit = self.config.max_prefixes;
            self.with_status(|s| s.status.max_prefixes = limit);
            self.sync_desired();
        }
    }
}
