//! The RFC 4271 session state machine (pure: no I/O, no tokio, no clocks).
//!
//! The driver (`crate::session`) feeds [`Event`]s in and carries out the [`Action`]s that
//! come back: open a TCP connection, write a message, close a socket, arm or disarm a
//! timer. Time only enters as timer expiries, and randomness (connect-retry jitter) comes
//! from a seed given to [`Fsm::new`], so every behaviour here can be scripted in tests
//! without sockets or sleeping.
//!
//! One `Fsm` serves one configured peer and tracks up to two TCP connections at once
//! (one we initiated, [`ConnId::Outbound`], and one the peer initiated,
//! [`ConnId::Inbound`]) so that a connection collision (RFC 4271 section 6.8) can be
//! resolved here: the connection initiated by the side with the higher BGP identifier is
//! kept and the other one is closed with Cease 6/7.
//!
//! Choices worth knowing:
//! - Keepalives are sent every `min(configured keepalive, negotiated hold / 3)` seconds
//!   (at least 1 s). MetalLB accepts a keepalive up to the hold time; sending more often
//!   than configured is always safe, sending less often than hold/3 risks a flap.
//! - A negotiated hold time of 0 disables both the hold timer and keepalives.
//! - The hold timer is restarted by *received* messages only.
//! - After a session drops the FSM waits in Active (still accepting the peer's own
//!   connection) for the connect-retry back-off (1 s doubling to 120 s, times a jitter
//!   factor in [0.75, 1.0]), then reconnects. Idle means stopped.
//!   The back-off resets once a session reaches Established.

mod backoff;
mod config;
mod shutdown;
mod types;

use std::time::Duration;

use crate::wire::{AddressFamily, Message, Notification, Open, SessionContext};

pub use backoff::Backoff;
pub use config::{FsmConfig, negotiate_timers, validate_open};
pub use shutdown::{cease, decode_shutdown_message, encode_shutdown_message};
pub use types::{Action, ConnId, DownReason, Event, State, Timer};

/// Hold time used while waiting for the peer's OPEN (RFC 4271 suggests 4 minutes).
pub const OPEN_SENT_HOLD: Duration = Duration::from_secs(240);
/// First connect-retry delay.
pub const BACKOFF_START: Duration = Duration::from_secs(1);
/// Largest connect-retry delay.
pub const BACKOFF_CAP: Duration = Duration::from_secs(120);
/// Longest an outgoing TCP connect may take before it is abandoned and retried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The NOTIFICATION codes, defined once in [`crate::wire::codes`].
pub use crate::wire::codes;

/// Per-connection progress.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Outgoing connect in progress (outbound only).
    Connecting,
    /// TCP up, our OPEN sent.
    OpenSent,
    /// Peer's OPEN received and accepted, our KEEPALIVE sent.
    OpenConfirm(Box<Open>),
    /// Session established.
    Established,
}

/// The session state machine of one peer.
#[derive(Debug, Clone)]
pub struct Fsm {
    config: FsmConfig,
    state: State,
    /// False after ManualStop / Deconfigured: no automatic restarts.
    running: bool,
    conns: [Option<Phase>; 2],
    /// Negotiated (hold, keepalive) of the Established session; `None` when hold is 0.
    established_timers: Option<(Duration, Duration)>,
    backoff: Backoff,
    /// After a max-prefix Cease: no session, not even an inbound one, until the
    /// connect-retry timer fires.
    held_off: bool,
}

impl Fsm {
    /// A stopped FSM (state Idle). `seed` drives the connect-retry jitter.
    pub fn new(config: FsmConfig, seed: u64) -> Self {
        Fsm {
            config,
            state: State::Idle,
            running: false,
            conns: [None, None],
            established_timers: None,
            backoff: Backoff::new(seed),
            held_off: false,
        }
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The configuration in use.
    pub fn config(&self) -> &FsmConfig {
        &self.config
    }

    /// Whether the FSM currently has (or is setting up) connection `conn`.
    pub fn has_conn(&self, conn: ConnId) -> bool {
        self.conns[conn.index()].is_some()
    }

    /// The connection carrying the Established session, if any.
    pub fn established_conn(&self) -> Option<ConnId> {
        [ConnId::Outbound, ConnId::Inbound]
            .into_iter()
            .find(|c| matches!(self.conns[c.index()], Some(Phase::Established)))
    }

    /// Un-jittered base of the next connect-retry delay (for tests and status).
    pub fn next_backoff_base(&self) -> Duration {
        self.backoff.peek_base()
    }

    /// Feed one event; returns the actions to carry out, in order.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::ManualStart => self.on_start(&mut out),
            Event::ManualStop { reason } => {
                self.stop(
                    &mut out,
                    cease(codes::ADMINISTRATIVE_SHUTDOWN, reason.as_deref()),
                );
            }
            Event::Deconfigured => {
                self.stop(&mut out, cease(codes::PEER_DECONFIGURED, None));
            }
            Event::AdminReset { reason } => self.on_admin_reset(&mut out, reason.as_deref()),
            Event::TcpConnected(conn) => self.on_connected(&mut out, conn),
            Event::TcpConnectFailed => self.on_connect_failed(&mut out),
            Event::TcpClosed(conn) => {
                if self.has_conn(conn) {
                    self.drop_conn(&mut out, conn, None, DownReason::TcpClosed);
                }
            }
            Event::Message(conn, msg) => {
                if self.has_conn(conn) {
                    self.on_message(&mut out, conn, msg);
                }
            }
            Event::DecodeError(conn, n) => {
                if self.has_conn(conn) {
                    let reason = DownReason::NotificationSent(n.clone());
                    self.drop_conn(&mut out, conn, Some(n), reason);
                }
            }
            Event::TimerExpired(timer) => self.on_timer(&mut out, timer),
            Event::BfdDown { detail } => self.on_bfd_down(&mut out, detail),
            Event::MaxPrefixesExceeded {
                family,
                limit,
                restart_after,
            } => self.on_max_prefixes(&mut out, family, limit, restart_after),
        }
        self.update_state(&mut out);
        out
    }

    fn phase(&self, conn: ConnId) -> Option<&Phase> {
        self.conns[conn.index()].as_ref()
    }

    fn set_phase(&mut self, conn: ConnId, phase: Option<Phase>) {
        self.conns[conn.index()] = phase;
    }

    fn on_start(&mut self, out: &mut Vec<Action>) {
        if self.running {
            return;
        }
        self.running = true;
        self.held_off = false;
        self.backoff.reset();
        if !self.config.passive {
            self.start_connect(out);
        }
    }

    fn start_connect(&mut self, out: &mut Vec<Action>) {
        if self.has_conn(ConnId::Outbound) {
            return;
        }
        self.set_phase(ConnId::Outbound, Some(Phase::Connecting));
        out.push(Action::Connect);
        out.push(Action::StartTimer(Timer::ConnectRetry, CONNECT_TIMEOUT));
    }

    /// Close every connection (NOTIFICATION on those past the OPEN), stop all timers.
    fn close_all(&mut self, out: &mut Vec<Action>, notification: &Notification) -> bool {
        let was_established = self.established_conn().is_some();
        for conn in [ConnId::Outbound, ConnId::Inbound] {
            if let Some(phase) = self.phase(conn) {
                if !matches!(phase, Phase::Connecting) {
                    out.push(Action::Send(
                        conn,
                        Message::Notification(notification.clone()),
                    ));
                }
                out.push(Action::CloseTcp(conn));
                out.push(Action::StopTimer(Timer::Hold(conn)));
                out.push(Action::StopTimer(Timer::Keepalive(conn)));
                self.set_phase(conn, None);
            }
        }
        out.push(Action::StopTimer(Timer::ConnectRetry));
        was_established
    }

    fn stop(&mut self, out: &mut Vec<Action>, notification: Notification) {
        self.running = false;
        if self.close_all(out, &notification) {
            out.push(Action::SessionDown(DownReason::Stopped));
        }
    }

    fn on_admin_reset(&mut self, out: &mut Vec<Action>, reason: Option<&str>) {
        if !self.running {
            return;
        }
        let n = cease(codes::ADMINISTRATIVE_RESET, reason);
        if self.close_all(out, &n) {
            out.push(Action::SessionDown(DownReason::AdminReset));
        }
        self.schedule_retry(out);
    }

    fn on_bfd_down(&mut self, out: &mut Vec<Action>, detail: String) {
        if !self.running || self.conns.iter().all(Option::is_none) {
            return;
        }
        let n = cease(codes::BFD_DOWN, None);
        let reason = DownReason::BfdDown(detail);
        if self.close_all(out, &n) {
            out.push(Action::SessionDown(reason));
        } else {
            out.push(Action::ConnectionFailed(reason));
        }
        self.schedule_retry(out);
    }

    /// Cease 6/1 with the RFC 4486 data (AFI, SAFI, the limit), then hold off.
    fn on_max_prefixes(
        &mut self,
        out: &mut Vec<Action>,
        family: AddressFamily,
        limit: u32,
        restart_after: Duration,
    ) {
        if self.established_conn().is_none() {
            return;
        }
        let afi: u16 = match family {
            AddressFamily::Ipv4Unicast => 1,
            AddressFamily::Ipv6Unicast => 2,
        };
        let mut data = afi.to_be_bytes().to_vec();
        data.push(1);
        data.extend_from_slice(&limit.to_be_bytes());
        let n = Notification {
            code: codes::CEASE,
            subcode: codes::MAX_PREFIXES_REACHED,
            data,
        };
        self.close_all(out, &n);
        out.push(Action::SessionDown(DownReason::MaxPrefixes { limit }));
        if self.running {
            self.held_off = true;
            out.push(Action::StartTimer(Timer::ConnectRetry, restart_after));
        }
    }

    /// Wait out the back-off (state Active: inbound connections are still accepted)
    /// before the next outgoing attempt. Passive peers just wait for the peer.
    fn schedule_retry(&mut self, out: &mut Vec<Action>) {
        if self.config.passive {
            return;
        }
        let delay = self.backoff.next_delay();
        out.push(Action::StartTimer(Timer::ConnectRetry, delay));
    }

    fn on_connected(&mut self, out: &mut Vec<Action>, conn: ConnId) {
        match conn {
            ConnId::Outbound => {
                if !matches!(self.phase(conn), Some(Phase::Connecting)) {
                    // A connect we no longer want (e.g. stopped meanwhile).
                    out.push(Action::CloseTcp(conn));
                    return;
                }
                if self.established_conn().is_some() {
                    self.set_phase(conn, None);
                    out.push(Action::CloseTcp(conn));
                    out.push(Action::StopTimer(Timer::ConnectRetry));
                    return;
                }
                out.push(Action::StopTimer(Timer::ConnectRetry));
            }
            ConnId::Inbound => {
                let busy = self.has_conn(ConnId::Inbound)
                    || self.established_conn().is_some()
                    || !self.running
                    || self.held_off;
                if busy {
                    out.push(Action::CloseTcp(conn));
                    return;
                }
            }
        }
        self.set_phase(conn, Some(Phase::OpenSent));
        out.push(Action::Send(conn, Message::Open(self.config.local_open())));
        out.push(Action::StartTimer(Timer::Hold(conn), OPEN_SENT_HOLD));
    }

    fn on_connect_failed(&mut self, out: &mut Vec<Action>) {
        if !matches!(self.phase(ConnId::Outbound), Some(Phase::Connecting)) {
            return;
        }
        self.set_phase(ConnId::Outbound, None);
        out.push(Action::ConnectionFailed(DownReason::TcpClosed));
        out.push(Action::StopTimer(Timer::ConnectRetry));
        if !self.has_conn(ConnId::Inbound) {
            self.schedule_retry(out);
        }
    }

    fn on_timer(&mut self, out: &mut Vec<Action>, timer: Timer) {
        match timer {
            Timer::ConnectRetry => {
                if !self.running {
                    return;
                }
                self.held_off = false;
                if matches!(self.phase(ConnId::Outbound), Some(Phase::Connecting)) {
                    // The connect attempt took too long: abandon and back off.
                    self.set_phase(ConnId::Outbound, None);
                    out.push(Action::CloseTcp(ConnId::Outbound));
                    out.push(Action::ConnectionFailed(DownReason::TcpClosed));
                    if !self.has_conn(ConnId::Inbound) {
                        self.schedule_retry(out);
                    }
                } else if self.conns.iter().all(Option::is_none) && !self.config.passive {
                    self.start_connect(out);
                }
            }
            Timer::Hold(conn) => {
                if self.has_conn(conn) {
                    let n = Notification {
                        code: codes::HOLD_TIMER_EXPIRED,
                        subcode: 0,
                        data: Vec::new(),
                    };
                    self.drop_conn(out, conn, Some(n), DownReason::HoldTimerExpired);
                }
            }
            Timer::Keepalive(conn) => {
                if matches!(
                    self.phase(conn),
                    Some(Phase::OpenConfirm(_) | Phase::Established)
                ) {
                    out.push(Action::Send(conn, Message::Keepalive));
                    if let Some(ka) = self.keepalive_interval(conn) {
                        out.push(Action::StartTimer(Timer::Keepalive(conn), ka));
                    }
                }
            }
        }
    }

    /// Keepalive interval of a connection past OPEN (needs the peer's hold time).
    fn keepalive_interval(&self, conn: ConnId) -> Option<Duration> {
        match self.phase(conn)? {
            Phase::OpenConfirm(open) => {
                negotiate_timers(&self.config, open.hold_time).map(|(_, ka)| ka)
            }
            Phase::Established => self.established_timers.map(|(_, ka)| ka),
            _ => None,
        }
    }

    /// Tear down one connection; sends `notification` first if given. Whether the FSM
    /// then backs off depends on whether another connection is still alive.
    fn drop_conn(
        &mut self,
        out: &mut Vec<Action>,
        conn: ConnId,
        notification: Option<Notification>,
        reason: DownReason,
    ) {
        let Some(phase) = self.conns[conn.index()].take() else {
            return;
        };
        if let Some(n) = notification
            && !matches!(phase, Phase::Connecting)
        {
            out.push(Action::Send(conn, Message::Notification(n)));
        }
        out.push(Action::CloseTcp(conn));
        out.push(Action::StopTimer(Timer::Hold(conn)));
        out.push(Action::StopTimer(Timer::Keepalive(conn)));
        if matches!(phase, Phase::Established) {
            self.established_timers = None;
            out.push(Action::SessionDown(reason));
        } else {
            out.push(Action::ConnectionFailed(reason));
        }
        if self.running && !self.has_conn(conn.other()) {
            out.push(Action::StopTimer(Timer::ConnectRetry));
            self.schedule_retry(out);
        }
    }

    fn on_message(&mut self, out: &mut Vec<Action>, conn: ConnId, msg: Message) {
        let Some(phase) = self.phase(conn).cloned() else {
            return;
        };
        // A NOTIFICATION ends the connection in every state.
        if let Message::Notification(n) = msg {
            let reason = DownReason::NotificationReceived(n);
            self.drop_conn(out, conn, None, reason);
            return;
        }
        match phase {
            Phase::Connecting => {}
            Phase::OpenSent => match msg {
                Message::Open(open) => self.on_open(out, conn, open),
                _ => self.fsm_error(out, conn, codes::FSM_IN_OPEN_SENT),
            },
            Phase::OpenConfirm(open) => match msg {
                Message::Keepalive => self.establish(out, conn, *open),
                _ => self.fsm_error(out, conn, codes::FSM_IN_OPEN_CONFIRM),
            },
            Phase::Established => {
                self.restart_hold(out, conn);
                match msg {
                    Message::Keepalive => {}
                    Message::Update(u) => out.push(Action::DeliverUpdate(u)),
                    Message::EndOfRib(f) => out.push(Action::EndOfRibReceived(f)),
                    Message::RouteRefresh(f) => out.push(Action::RouteRefreshRequested(f)),
                    Message::Open(_) | Message::Notification(_) => {
                        self.fsm_error(out, conn, codes::FSM_IN_ESTABLISHED);
                    }
                }
            }
        }
    }

    fn fsm_error(&mut self, out: &mut Vec<Action>, conn: ConnId, subcode: u8) {
        let n = Notification {
            code: codes::FSM,
            subcode,
            data: Vec::new(),
        };
        self.drop_conn(out, conn, Some(n.clone()), DownReason::NotificationSent(n));
    }

    fn restart_hold(&self, out: &mut Vec<Action>, conn: ConnId) {
        if let Some((hold, _)) = self.established_timers {
            out.push(Action::StartTimer(Timer::Hold(conn), hold));
        }
    }

    fn on_open(&mut self, out: &mut Vec<Action>, conn: ConnId, open: Open) {
        if let Err(n) = validate_open(&self.config, &open) {
            self.drop_conn(out, conn, Some(n.clone()), DownReason::NotificationSent(n));
            return;
        }
        // Collision (RFC 4271 6.8): the other connection got as far as the peer's OPEN
        // too. Keep the connection initiated by the side with the higher identifier.
        let other = conn.other();
        if matches!(self.phase(other), Some(Phase::Established)) {
            // RFC 4271 6.8: a collision with an Established session closes the new one.
            let n = cease(codes::CONNECTION_COLLISION, None);
            self.drop_conn(out, conn, Some(n.clone()), DownReason::NotificationSent(n));
            return;
        }
        if matches!(
            self.phase(other),
            Some(Phase::OpenConfirm(_)) | Some(Phase::OpenSent)
        ) {
            let other_has_open = matches!(self.phase(other), Some(Phase::OpenConfirm(_)));
            let keep = if u32::from(self.config.router_id) > u32::from(open.bgp_id) {
                ConnId::Outbound
            } else {
                ConnId::Inbound
            };
            if other_has_open {
                let loser = keep.other();
                let n = cease(codes::CONNECTION_COLLISION, None);
                if loser == conn {
                    self.drop_conn(out, conn, Some(n.clone()), DownReason::NotificationSent(n));
                    return;
                }
                self.drop_conn(out, other, Some(n.clone()), DownReason::NotificationSent(n));
            } else if keep == conn {
                // The other connection has not seen the peer's OPEN yet, but we know the
                // identifier now: it can only lose, so close it right away.
                let n = cease(codes::CONNECTION_COLLISION, None);
                self.drop_conn(out, other, Some(n.clone()), DownReason::NotificationSent(n));
            } else {
                // We know this connection loses against the other once its OPEN arrives.
                let n = cease(codes::CONNECTION_COLLISION, None);
                self.drop_conn(out, conn, Some(n.clone()), DownReason::NotificationSent(n));
                return;
            }
        }
        out.push(Action::Send(conn, Message::Keepalive));
        match negotiate_timers(&self.config, open.hold_time) {
            Some((hold, ka)) => {
                out.push(Action::StartTimer(Timer::Hold(conn), hold));
                out.push(Action::StartTimer(Timer::Keepalive(conn), ka));
            }
            None => {
                out.push(Action::StopTimer(Timer::Hold(conn)));
            }
        }
        self.set_phase(conn, Some(Phase::OpenConfirm(Box::new(open))));
    }

    fn establish(&mut self, out: &mut Vec<Action>, conn: ConnId, open: Open) {
        let timers = negotiate_timers(&self.config, open.hold_time);
        self.established_timers = timers;
        if let Some((hold, _)) = timers {
            out.push(Action::StartTimer(Timer::Hold(conn), hold));
        }
        self.set_phase(conn, Some(Phase::Established));
        self.backoff.reset();
        // A leftover second connection (still before its OPEN) loses to the session.
        let other = conn.other();
        if self.has_conn(other) {
            let n = cease(codes::CONNECTION_COLLISION, None);
            self.drop_conn(out, other, Some(n.clone()), DownReason::NotificationSent(n));
        }
        out.push(Action::StopTimer(Timer::ConnectRetry));
        let ctx = SessionContext::negotiate(&self.config.local_open(), &open);
        // State must read Established before the driver acts on the session.
        self.update_state(out);
        out.push(Action::SessionEstablished(conn, ctx));
    }

    /// Derive the externally visible state from the connections and emit a change.
    fn update_state(&mut self, out: &mut Vec<Action>) {
        let best = self.conns.iter().flatten().fold(None::<State>, |acc, p| {
            let s = match p {
                Phase::Connecting => State::Connect,
                Phase::OpenSent => State::OpenSent,
                Phase::OpenConfirm(_) => State::OpenConfirm,
                Phase::Established => State::Established,
            };
            Some(acc.map_or(s, |a| a.max(s)))
        });
        let new = match best {
            Some(s) => s,
            None if !self.running => State::Idle,
            // Waiting for the peer, or out the back-off before the next connect.
            None => State::Active,
        };
        if new != self.state {
            out.push(Action::StateChanged {
                from: self.state,
                to: new,
            });
            self.state = new;
        }
    }
}
