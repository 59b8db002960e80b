//! The tokio task that runs every BFD session of a [`super::Bfd`]: it owns the pure
//! [`Session`]s, their timers and sending sockets, reads the shared receivers, and carries
//! out what the sessions decide.
//!
//! One task for all sessions: a received packet is handled where it is read (no channel
//! hop, no queue), timers are deadlines scanned once per wake-up, and a flood of packets
//! costs one bounded read loop per wake-up. Nothing here grows with the packet rate.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};
use tracing::{debug, info, warn};

use super::packet::{ControlPacket, SessionState};
use super::session::{Action, Event, Session, SessionConfig, Timer, Transition, is_failure};
use super::socket::{self, RECV_BUF};
use super::{BfdEvent, PeerSpec, Shared, describe_transition};

/// Most datagrams read from one socket per wake-up before timers get their turn.
const READ_BATCH: usize = 64;
/// How long a removed session keeps sending AdminDown (unless a detection time is known).
const DRAIN_DEFAULT: Duration = Duration::from_secs(1);
/// Transition log lines per session per minute before they are summarised.
const LOG_BURST: u32 = 20;
const LOG_WINDOW: Duration = Duration::from_secs(60);

/// Receiver slots: IPv4/IPv6 × single-hop/multihop.
pub(crate) fn slot(v6: bool, multihop: bool) -> usize {
    usize::from(v6) * 2 + usize::from(multihop)
}

/// Commands from the handle.
pub(crate) enum Command {
    /// A receiving socket the handle opened for slot `0`.
    Receiver(usize, StdUdpSocket),
    /// A new session (replacing any session to the same peer) with its sending socket.
    Add(Box<PeerSpec>, StdUdpSocket),
    /// New parameters for an existing session.
    Reconfigure(IpAddr, SessionConfig, u8),
    /// AdminDown, then forget the session.
    Remove(IpAddr),
    /// AdminDown to every session, then stop.
    Shutdown(oneshot::Sender<()>),
}

/// A simple per-window budget for log lines a peer can provoke.
#[derive(Debug)]
struct LogBudget {
    window: Instant,
    used: u32,
    suppressed: u64,
}

impl LogBudget {
    fn new() -> Self {
        LogBudget {
            window: Instant::now(),
            used: 0,
            suppressed: 0,
        }
    }

    /// Whether to log now; when a new window opens, also how many were suppressed.
    fn take(&mut self) -> (bool, u64) {
        let now = Instant::now();
        if now.duration_since(self.window) >= LOG_WINDOW {
            self.window = now;
            self.used = 0;
        }
        if self.used < LOG_BURST {
            self.used += 1;
            (true, std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            (false, 0)
        }
    }
}

struct Entry {
    spec: PeerSpec,
    fsm: Session,
    tx: StdUdpSocket,
    dest: SocketAddr,
    timers: [Option<Instant>; 2],
    /// Set once removed: AdminDown goes out until then, then the entry is dropped.
    drain_until: Option<Instant>,
    logs: LogBudget,
}

fn timer_index(t: Timer) -> usize {
    match t {
        Timer::Transmit => 0,
        Timer::Detect => 1,
    }
}

const TIMERS: [Timer; 2] = [Timer::Transmit, Timer::Detect];

pub(crate) struct Engine {
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<BfdEvent>,
    shared: Arc<Shared>,
    receivers: [Option<UdpSocket>; 4],
    /// Sessions by our discriminator.
    sessions: HashMap<u32, Entry>,
    /// Live (not draining) sessions by peer address.
    by_peer: HashMap<IpAddr, u32>,
    buf: [u8; RECV_BUF],
    drop_logs: LogBudget,
}

async fn readable(s: Option<&UdpSocket>) {
    match s {
        Some(s) => {
            let _ = s.readable().await;
        }
        None => std::future::pending().await,
    }
}

impl Engine {
    pub(crate) fn new(
        cmd_rx: mpsc::UnboundedReceiver<Command>,
        events: mpsc::UnboundedSender<BfdEvent>,
        shared: Arc<Shared>,
    ) -> Engine {
        Engine {
            cmd_rx,
            events,
            shared,
            receivers: [None, None, None, None],
            sessions: HashMap::new(),
            by_peer: HashMap::new(),
            buf: [0; RECV_BUF],
            drop_logs: LogBudget::new(),
        }
    }

    pub(crate) async fn run(mut self) {
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                biased;
                cmd = self.cmd_rx.recv() => match cmd {
                    Some(Command::Shutdown(done)) => {
                        self.admin_down_all();
                        let _ = done.send(());
                        return;
                    }
                    Some(cmd) => self.on_command(cmd),
                    None => {
                        self.admin_down_all();
                        return;
                    }
                },
                () = readable(self.receivers[0].as_ref()) => self.drain(0),
                () = readable(self.receivers[1].as_ref()) => self.drain(1),
                () = readable(self.receivers[2].as_ref()) => self.drain(2),
                () = readable(self.receivers[3].as_ref()) => self.drain(3),
                () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    self.fire_timers();
                }
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.sessions
            .values()
            .flat_map(|e| e.timers.iter().flatten().chain(e.drain_until.iter()))
            .min()
            .copied()
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Receiver(i, sock) => match UdpSocket::from_std(sock) {
                Ok(s) => self.receivers[i] = Some(s),
                Err(e) => warn!(error = %e, "BFD: cannot register receiving socket"),
            },
            Command::Add(spec, tx) => self.add(*spec, tx),
            Command::Reconfigure(peer, config, minimum_ttl) => {
                let Some(&d) = self.by_peer.get(&peer) else {
                    return;
                };
                if let Some(e) = self.sessions.get_mut(&d) {
                    e.spec.session = config;
                    e.spec.minimum_ttl = minimum_ttl;
                }
                self.with_status(peer, |s| s.config = config);
                self.feed(d, Event::Reconfigure(config));
            }
            Command::Remove(peer) => self.remove(peer),
            Command::Shutdown(_) => {}
        }
    }

    fn add(&mut self, spec: PeerSpec, tx: StdUdpSocket) {
        let peer = spec.peer;
        if let Some(old) = self.by_peer.remove(&peer) {
            // A changed transport: the old session goes away without ceremony.
            self.sessions.remove(&old);
        }
        let mut discr: u32 = rand::random();
        while discr == 0 || self.sessions.contains_key(&discr) {
            discr = rand::random();
        }
        let port = spec.remote_port.unwrap_or(if spec.multihop {
            socket::MULTIHOP_PORT
        } else {
            socket::SINGLE_HOP_PORT
        });
        let local = tx.local_addr().ok();
        let fsm = Session::new(spec.session, discr, rand::random());
        self.shared.insert_status(&spec, local, &fsm);
        info!(%peer, multihop = spec.multihop, local = ?local, tx_ms = spec.session.desired_min_tx.as_millis(), rx_ms = spec.session.required_min_rx.as_millis(), multiplier = spec.session.detect_mult, passive = spec.session.passive, "BFD session added");
        self.sessions.insert(
            discr,
            Entry {
                dest: SocketAddr::new(peer, port),
                spec,
                fsm,
                tx,
                timers: [None, None],
                drain_until: None,
                logs: LogBudget::new(),
            },
        );
        self.by_peer.insert(peer, discr);
        self.feed(discr, Event::Start);
    }

    fn remove(&mut self, peer: IpAddr) {
        let Some(d) = self.by_peer.remove(&peer) else {
            return;
        };
        self.shared.remove_status(peer);
        self.feed(d, Event::AdminDown);
        if let Some(e) = self.sessions.get_mut(&d) {
            let drain = e
                .fsm
                .negotiated()
                .detect_time
                .unwrap_or(DRAIN_DEFAULT)
                .min(Duration::from_secs(10));
            e.drain_until = Some(Instant::now() + drain);
        }
        info!(%peer, "BFD session removed (AdminDown sent)");
    }

    fn admin_down_all(&mut self) {
        let live: Vec<u32> = self.by_peer.values().copied().collect();
        for d in live {
            self.feed(d, Event::AdminDown);
        }
        info!(
            sessions = self.by_peer.len(),
            "BFD stopped (AdminDown sent to every peer)"
        );
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        let mut due: Vec<(u32, Option<Timer>)> = Vec::new();
        for (d, e) in &self.sessions {
            if e.drain_until.is_some_and(|t| t <= now) {
                due.push((*d, None));
                continue;
            }
            for t in TIMERS {
                if e.timers[timer_index(t)].is_some_and(|at| at <= now) {
                    due.push((*d, Some(t)));
                }
            }
        }
        for (d, t) in due {
            match t {
                None => {
                    self.sessions.remove(&d);
                }
                Some(t) => {
                    if let Some(e) = self.sessions.get_mut(&d) {
                        e.timers[timer_index(t)] = None;
                    }
                    self.feed(d, Event::TimerExpired(t));
                }
            }
        }
    }

    /// Read up to [`READ_BATCH`] datagrams from receiver `i`, then run the timers that are
    /// due, so a sustained flood on a socket cannot starve the sessions' own packets and
    /// detection timers (the receivers win `select!` while they stay readable).
    fn drain(&mut self, i: usize) {
        self.read_batch(i);
        self.fire_timers();
    }

    fn read_batch(&mut self, i: usize) {
        let multihop = i % 2 == 1;
        for _ in 0..READ_BATCH {
            let Some(sock) = self.receivers[i].as_ref() else {
                return;
            };
            let d = match sock.try_io(tokio::io::Interest::READABLE, || {
                socket::recv(sock, &mut self.buf)
            }) {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    debug!(error = %e, "BFD: receive error");
                    // Clear the readiness tokio keeps for anything but WouldBlock, or the
                    // loop would spin on a persistent error.
                    let _ = sock.try_io(tokio::io::Interest::READABLE, || {
                        Err::<(), _>(std::io::ErrorKind::WouldBlock.into())
                    });
                    return;
                }
            };
            self.on_datagram(multihop, d);
        }
    }

    fn dropped(&self, kind: &'static str, from: SocketAddr) {
        self.shared.count_drop(kind);
        debug!(%from, kind, "BFD packet dropped");
    }

    fn on_datagram(&mut self, multihop: bool, d: socket::Datagram) {
        if d.truncated {
            return self.dropped("oversize", d.from);
        }
        // RFC 5881 section 5: single-hop packets must arrive with TTL 255.
        if !multihop && d.ttl != Some(socket::TTL as u8) {
            return self.dropped("bad_ttl", d.from);
        }
        let pkt = match ControlPacket::decode(&self.buf[..d.len]) {
            Ok(p) => p,
            Err(e) => {
                self.shared.count_drop(e.kind());
                let (log, suppressed) = self.drop_logs.take();
                if log {
                    warn!(from = %d.from, error = %e, suppressed, "malformed BFD packet dropped");
                }
                return;
            }
        };
        let discr = if pkt.your_discriminator != 0 {
            if !self.sessions.contains_key(&pkt.your_discriminator) {
                return self.dropped("unknown_discriminator", d.from);
            }
            pkt.your_discriminator
        } else {
            match self.by_peer.get(&d.from.ip()) {
                Some(&x) => x,
                None => return self.dropped("unknown_peer", d.from),
            }
        };
        let Some(e) = self.sessions.get(&discr) else {
            return;
        };
        if e.spec.peer != d.from.ip() || e.spec.multihop != multihop {
            return self.dropped("wrong_source", d.from);
        }
        if multihop && d.ttl.is_none_or(|t| t < e.spec.minimum_ttl) {
            let peer = e.spec.peer;
            self.with_status(peer, |s| s.dropped += 1);
            return self.dropped("bad_ttl", d.from);
        }
        let peer = e.spec.peer;
        if e.drain_until.is_none() {
            // (A removed session still drains; the status belongs to its successor.)
            self.with_status(peer, |s| s.control_packets_in += 1);
        }
        self.feed(discr, Event::Received(pkt));
    }

    fn with_status(&self, peer: IpAddr, f: impl FnOnce(&mut super::SessionStatus)) {
        self.shared.update_status(peer, |s, _| f(s));
    }

    fn feed(&mut self, discr: u32, event: Event) {
        let Some(e) = self.sessions.get_mut(&discr) else {
            return;
        };
        let actions = e.fsm.handle(event);
        let now = Instant::now();
        let mut sent = 0u64;
        let mut transitions = Vec::new();
        for a in actions {
            match a {
                Action::Send(p) => match e.tx.send_to(&p.encode(), e.dest) {
                    Ok(_) => sent += 1,
                    Err(err) => {
                        self.shared.count_drop("send_error");
                        debug!(peer = %e.spec.peer, error = %err, "BFD: send failed");
                    }
                },
                Action::StartTimer(t, d) => e.timers[timer_index(t)] = Some(now + d),
                Action::StopTimer(t) => e.timers[timer_index(t)] = None,
                Action::StateChanged(t) => transitions.push(t),
            }
        }
        let peer = e.spec.peer;
        let live = e.drain_until.is_none();
        let negotiated = e.fsm.negotiated();
        let (remote_discr, state, remote_state) = (
            e.fsm.remote_discriminator(),
            e.fsm.state(),
            e.fsm.remote_state(),
        );
        let (local_diag, remote_diag) = (e.fsm.local_diag(), e.fsm.remote_diag());
        for t in &transitions {
            log_transition(peer, t, &mut e.logs);
        }
        if !live {
            return;
        }
        self.shared.update_status(peer, |s, up_since| {
            s.control_packets_out += sent;
            s.negotiated = negotiated;
            s.remote_discriminator = remote_discr;
            s.state = state;
            s.remote_state = remote_state;
            s.local_diag = local_diag;
            s.remote_diag = remote_diag;
            for t in &transitions {
                if t.to == SessionState::Up {
                    s.session_up_events += 1;
                    *up_since = Some(std::time::Instant::now());
                } else if t.from == SessionState::Up {
                    s.session_down_events += 1;
                    *up_since = None;
                }
                if matches!(t.to, SessionState::Down | SessionState::AdminDown)
                    && matches!(t.from, SessionState::Up | SessionState::Init)
                {
                    s.last_down_reason = Some(describe_transition(t));
                }
            }
        });
        for transition in transitions {
            let _ = self
                .events
                .send(BfdEvent::StateChanged { peer, transition });
        }
    }
}

fn log_transition(peer: IpAddr, t: &Transition, budget: &mut LogBudget) {
    let (log, suppressed) = budget.take();
    if !log {
        return;
    }
    let (from, to) = (t.from, t.to);
    if is_failure(t) {
        warn!(%peer, %from, %to, reason = %describe_transition(t), suppressed, "BFD session down");
    } else {
        info!(%peer, %from, %to, diag = %t.diag, remote_state = %t.remote_state, suppressed, "BFD state changed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A receiver that stays readable (more queued than one batch, as under a flood) must
    /// not keep a due transmit timer from firing: `select!` prefers the receivers.
    #[tokio::test]
    async fn a_busy_receiver_does_not_starve_due_timers() {
        let (_cmd, cmd_rx) = mpsc::unbounded_channel();
        let (events, _events) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::default());
        let mut engine = Engine::new(cmd_rx, events, shared.clone());
        let rx = socket::receiver("127.0.0.1:0".parse().unwrap()).expect("receiver");
        let rx_at = rx.local_addr().unwrap();
        engine.on_command(Command::Receiver(0, rx));
        // The peer: a plain socket that sees what the session sends.
        let peer = StdUdpSocket::bind("127.0.0.2:0").expect("peer");
        peer.set_nonblocking(true).unwrap();
        let spec = PeerSpec {
            local: Some("127.0.0.1".parse().unwrap()),
            remote_port: Some(peer.local_addr().unwrap().port()),
            ..PeerSpec::single_hop("127.0.0.2".parse().unwrap())
        };
        let tx = socket::sender(spec.peer, spec.local, 1).expect("sender");
        engine.on_command(Command::Add(Box::new(spec), tx));
        let mut buf = [0u8; 128];
        while peer.recv(&mut buf).is_ok() {}
        // Two batches of junk queued (TTL 64: dropped as bad_ttl), and the timer due.
        let junk = StdUdpSocket::bind("127.0.0.3:0").expect("junk");
        for _ in 0..2 * READ_BATCH {
            junk.send_to(&[0u8; 24], rx_at).expect("send");
        }
        for e in engine.sessions.values_mut() {
            e.timers[timer_index(Timer::Transmit)] = Some(Instant::now());
        }
        engine.receivers[0]
            .as_ref()
            .unwrap()
            .readable()
            .await
            .unwrap();
        engine.drain(0);
        assert_eq!(
            shared.drops.lock().unwrap().get("bad_ttl"),
            Some(&(READ_BATCH as u64)),
            "one batch read, the rest still queued"
        );
        let n = peer.recv(&mut buf).expect("the due packet went out");
        let p = ControlPacket::decode(&buf[..n]).expect("a Control packet");
        assert_eq!(p.state, SessionState::Down);
    }
}
