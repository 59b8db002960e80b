//! The BFD session state machine of RFC 5880 section 6.8, pure: no sockets, no clock, no
//! tokio. The driver feeds [`Event`]s in and carries out the [`Action`]s that come back;
//! time enters only as timer expiries, and the transmit jitter comes from the seed given
//! to [`Session::new`], so every behaviour is scripted in `tests/bfd_fsm_script.rs`.
//!
//! What it implements (asynchronous mode; no Demand mode, no authentication, no Echo
//! transmission):
//! - The three-way handshake Down -> Init -> Up, AdminDown both ways, and the detection
//!   timeout (diag 1). A received AdminDown takes the session Down with diag 3, which the
//!   client (BGP) must not treat as a failure (RFC 5882 section 3.2, see [`is_failure`]).
//! - Timer negotiation: while not Up the advertised Desired Min TX is at least 1 s
//!   (section 6.8.3); packets are sent every `max(DesiredMinTx, RemoteMinRx)`, reduced by a
//!   random 0-25 % (10-25 % when our multiplier is 1), section 6.8.7; the detection time is
//!   the *remote* multiplier times `max(RequiredMinRx, remote DesiredMinTx)` (6.8.4).
//! - Poll/Final: every change of the advertised intervals starts a Poll Sequence (or queues
//!   one behind the running one). While Up, a slower transmit interval or a faster receive
//!   interval only takes effect once the peer's Final acknowledged it; the safe direction
//!   takes effect at once. A received Poll is answered with a Final at once.
//! - Passive role: nothing is sent until the peer's first packet arrives.
//! - A state change or a new Poll Sequence sends a packet at once (as BIRD and FRR do), so
//!   the handshake and the switch to the fast rate do not wait for the slow 1 s timer.
//!
//! Demand mode is never requested; a peer's Demand bit is ignored (we keep sending, which
//! is always allowed to be more than needed). Echo packets are never sent; the advertised
//! Required Min Echo RX is whatever the configuration says (0 unless echo mode is on).

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::packet::{ControlPacket, Diag, SessionState, from_micros, to_micros};

/// The Desired Min TX interval advertised while the session is not Up (section 6.8.3).
pub const SLOW_TX: Duration = Duration::from_secs(1);

/// What the local system asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// Desired Min TX Interval once Up.
    pub desired_min_tx: Duration,
    /// Required Min RX Interval.
    pub required_min_rx: Duration,
    /// Detect Mult (>= 1).
    pub detect_mult: u8,
    /// Passive role: wait for the peer's first packet before sending.
    pub passive: bool,
    /// Required Min Echo RX Interval advertised (0: we loop back no Echo packets).
    pub required_min_echo_rx: Duration,
}

impl Default for SessionConfig {
    /// FRR's and MetalLB's defaults: 300 ms both ways, multiplier 3, active, no echo.
    fn default() -> Self {
        SessionConfig {
            desired_min_tx: Duration::from_millis(300),
            required_min_rx: Duration::from_millis(300),
            detect_mult: 3,
            passive: false,
            required_min_echo_rx: Duration::ZERO,
        }
    }
}

/// The session's two timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// Next periodic Control packet.
    Transmit,
    /// Detection time: nothing received from the peer for this long.
    Detect,
}

/// Inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Enable the session (from creation, or out of AdminDown).
    Start,
    /// Hold the session administratively down (removal, shutdown).
    AdminDown,
    /// A Control packet that passed the codec's checks and was demultiplexed here.
    Received(ControlPacket),
    /// A timer expired.
    TimerExpired(Timer),
    /// New local parameters (a changed profile).
    Reconfigure(SessionConfig),
}

/// A state change, with what the client needs to judge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// Old state.
    pub from: SessionState,
    /// New state.
    pub to: SessionState,
    /// Our diagnostic for the change.
    pub diag: Diag,
    /// The peer's state as last received.
    pub remote_state: SessionState,
    /// The peer's diagnostic as last received.
    pub remote_diag: Diag,
}

/// Outputs, to be carried out in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this packet now.
    Send(ControlPacket),
    /// (Re)arm a timer.
    StartTimer(Timer, Duration),
    /// Disarm a timer.
    StopTimer(Timer),
    /// The state changed.
    StateChanged(Transition),
}

/// RFC 5882 section 3.2: whether a transition means the path failed, so that the client
/// (BGP) should take its session down. Only Up -> Down counts, and not when the peer said
/// AdminDown (it is being reconfigured or removed, the path may be fine).
pub fn is_failure(t: &Transition) -> bool {
    t.from == SessionState::Up
        && t.to == SessionState::Down
        && t.remote_state != SessionState::AdminDown
}

/// Negotiated values, for status pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// Interval between our periodic packets, before jitter (`None`: we send none).
    pub transmit_interval: Option<Duration>,
    /// The interval at which we expect the peer's packets: `max(our RequiredMinRx, its
    /// DesiredMinTx)`.
    pub receive_interval: Duration,
    /// The detection time (`None` until the peer was heard).
    pub detect_time: Option<Duration>,
    /// The peer's multiplier (0 until heard).
    pub remote_detect_mult: u8,
    /// The peer's Required Min RX.
    pub remote_min_rx: Duration,
    /// The peer's Desired Min TX.
    pub remote_desired_tx: Duration,
    /// The peer's Required Min Echo RX.
    pub remote_min_echo_rx: Duration,
    /// A Poll Sequence is running.
    pub polling: bool,
}

/// One BFD session.
#[derive(Debug, Clone)]
pub struct Session {
    config: SessionConfig,
    started: bool,
    state: SessionState,
    local_diag: Diag,
    local_discr: u32,
    remote_discr: u32,
    remote_state: SessionState,
    remote_diag: Diag,
    remote_min_rx: Duration,
    remote_desired_tx: Duration,
    remote_min_echo_rx: Duration,
    remote_detect_mult: u8,
    /// bfd.DesiredMinTxInterval / bfd.RequiredMinRxInterval as advertised now.
    adv_tx: Duration,
    adv_rx: Duration,
    /// The values the peer last acknowledged with a Final (or that were in force before Up).
    acked_tx: Duration,
    acked_rx: Duration,
    /// The intervals carried by the running Poll Sequence.
    poll: Option<(Duration, Duration)>,
    poll_pending: bool,
    /// The transmit interval the Transmit timer was last armed with.
    armed_interval: Option<Duration>,
    rng: StdRng,
}

impl Session {
    /// A session in state Down that does nothing until [`Event::Start`]. `local_discr` must
    /// be non-zero and unique on this system; `seed` drives the jitter.
    pub fn new(config: SessionConfig, local_discr: u32, seed: u64) -> Session {
        let mut s = Session {
            config,
            started: false,
            state: SessionState::Down,
            local_diag: Diag::None,
            local_discr,
            remote_discr: 0,
            remote_state: SessionState::Down,
            remote_diag: Diag::None,
            // Section 6.8.1: initialised to 1 (µs) so that the first packets go out.
            remote_min_rx: Duration::from_micros(1),
            remote_desired_tx: Duration::ZERO,
            remote_min_echo_rx: Duration::ZERO,
            remote_detect_mult: 0,
            adv_tx: SLOW_TX,
            adv_rx: config.required_min_rx,
            acked_tx: SLOW_TX,
            acked_rx: config.required_min_rx,
            poll: None,
            poll_pending: false,
            armed_interval: None,
            rng: StdRng::seed_from_u64(seed),
        };
        s.adv_tx = s.wanted_tx();
        s.acked_tx = s.adv_tx;
        s
    }

    /// Current state.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// The configuration in use.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Our discriminator.
    pub fn local_discriminator(&self) -> u32 {
        self.local_discr
    }

    /// The peer's discriminator (0 if unknown).
    pub fn remote_discriminator(&self) -> u32 {
        self.remote_discr
    }

    /// The peer's state as last received.
    pub fn remote_state(&self) -> SessionState {
        self.remote_state
    }

    /// Our diagnostic.
    pub fn local_diag(&self) -> Diag {
        self.local_diag
    }

    /// The peer's diagnostic as last received.
    pub fn remote_diag(&self) -> Diag {
        self.remote_diag
    }

    /// Intervals and detection time as negotiated now.
    pub fn negotiated(&self) -> Negotiated {
        Negotiated {
            transmit_interval: self.periodic().then(|| self.transmit_interval()),
            receive_interval: self.rx_in_effect().max(self.remote_desired_tx),
            detect_time: self.detect_time(),
            remote_detect_mult: self.remote_detect_mult,
            remote_min_rx: self.remote_min_rx,
            remote_desired_tx: self.remote_desired_tx,
            remote_min_echo_rx: self.remote_min_echo_rx,
            polling: self.poll.is_some(),
        }
    }

    /// Feed one event; returns the actions to carry out, in order.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Start => self.on_start(&mut out),
            Event::AdminDown => self.on_admin_down(&mut out),
            Event::Received(p) => self.on_packet(&mut out, &p),
            Event::TimerExpired(Timer::Transmit) => {
                self.armed_interval = None;
                if self.periodic() {
                    self.send(&mut out, false);
                }
                self.arm_transmit(&mut out, true);
            }
            Event::TimerExpired(Timer::Detect) => self.on_detect_expired(&mut out),
            Event::Reconfigure(c) => self.on_reconfigure(&mut out, c),
        }
        out
    }

    /// Desired Min TX for the current state (at least 1 s while not Up).
    fn wanted_tx(&self) -> Duration {
        if self.state == SessionState::Up {
            self.config.desired_min_tx
        } else {
            self.config.desired_min_tx.max(SLOW_TX)
        }
    }

    fn tx_in_effect(&self) -> Duration {
        if self.state == SessionState::Up {
            self.adv_tx.min(self.acked_tx)
        } else {
            self.adv_tx
        }
    }

    fn rx_in_effect(&self) -> Duration {
        if self.state == SessionState::Up {
            self.adv_rx.max(self.acked_rx)
        } else {
            self.adv_rx
        }
    }

    fn transmit_interval(&self) -> Duration {
        self.tx_in_effect().max(self.remote_min_rx)
    }

    fn detect_time(&self) -> Option<Duration> {
        (self.remote_detect_mult > 0).then(|| {
            self.rx_in_effect().max(self.remote_desired_tx) * u32::from(self.remote_detect_mult)
        })
    }

    /// Whether we may send at all (section 6.8.7): started, and not a passive side that
    /// has not heard from its peer.
    fn may_send(&self) -> bool {
        self.started && !(self.config.passive && self.remote_discr == 0)
    }

    /// Whether periodic packets go out (not if the peer's Required Min RX is 0).
    fn periodic(&self) -> bool {
        self.may_send() && !self.remote_min_rx.is_zero()
    }

    fn packet(&self, final_: bool) -> ControlPacket {
        ControlPacket {
            diag: self.local_diag,
            state: self.state,
            poll: self.poll.is_some() && !final_,
            final_,
            cpi: false,
            demand: false,
            detect_mult: self.config.detect_mult,
            my_discriminator: self.local_discr,
            your_discriminator: self.remote_discr,
            desired_min_tx: to_micros(self.adv_tx),
            required_min_rx: to_micros(self.adv_rx),
            required_min_echo_rx: to_micros(self.config.required_min_echo_rx),
        }
    }

    fn send(&self, out: &mut Vec<Action>, final_: bool) {
        if self.may_send() {
            out.push(Action::Send(self.packet(final_)));
        }
    }

    fn jittered(&mut self, d: Duration) -> Duration {
        let top = if self.config.detect_mult == 1 {
            0.90
        } else {
            1.0
        };
        d.mul_f64(self.rng.random_range(0.75..=top))
    }

    /// Arm the Transmit timer for the current interval. Unless `force`, a timer already
    /// armed with the same interval is left running.
    fn arm_transmit(&mut self, out: &mut Vec<Action>, force: bool) {
        if !self.periodic() {
            if self.armed_interval.take().is_some() {
                out.push(Action::StopTimer(Timer::Transmit));
            }
            return;
        }
        let interval = self.transmit_interval();
        if !force && self.armed_interval == Some(interval) {
            return;
        }
        self.armed_interval = Some(interval);
        let d = self.jittered(interval);
        out.push(Action::StartTimer(Timer::Transmit, d));
    }

    /// Recompute the advertised intervals; a change starts (or queues) a Poll Sequence.
    /// Returns whether a new Poll Sequence started.
    fn update_advertised(&mut self) -> bool {
        let tx = self.wanted_tx();
        let rx = self.config.required_min_rx;
        if tx == self.adv_tx && rx == self.adv_rx {
            return false;
        }
        self.adv_tx = tx;
        self.adv_rx = rx;
        if self.state != SessionState::Up {
            // The lag rules only protect a session that is Up.
            self.acked_tx = tx;
            self.acked_rx = rx;
        }
        if self.state == SessionState::AdminDown || !self.started {
            return false;
        }
        if self.poll.is_none() {
            self.poll = Some((tx, rx));
            true
        } else {
            self.poll_pending = true;
            false
        }
    }

    /// Change state; returns whether that started a Poll Sequence (entering or leaving Up
    /// changes the advertised Desired Min TX).
    fn set_state(&mut self, out: &mut Vec<Action>, to: SessionState, diag: Diag) -> bool {
        let from = self.state;
        self.state = to;
        self.local_diag = diag;
        out.push(Action::StateChanged(Transition {
            from,
            to,
            diag,
            remote_state: self.remote_state,
            remote_diag: self.remote_diag,
        }));
        self.update_advertised()
    }

    fn on_start(&mut self, out: &mut Vec<Action>) {
        if self.started && self.state != SessionState::AdminDown {
            return;
        }
        self.started = true;
        if self.state == SessionState::AdminDown {
            let _ = self.set_state(out, SessionState::Down, Diag::None);
        } else {
            self.update_advertised();
        }
        self.send(out, false);
        self.arm_transmit(out, true);
    }

    fn on_admin_down(&mut self, out: &mut Vec<Action>) {
        if self.state == SessionState::AdminDown {
            return;
        }
        self.started = true;
        let _ = self.set_state(out, SessionState::AdminDown, Diag::AdministrativelyDown);
        self.poll = None;
        self.poll_pending = false;
        out.push(Action::StopTimer(Timer::Detect));
        self.send(out, false);
        self.arm_transmit(out, true);
    }

    fn on_packet(&mut self, out: &mut Vec<Action>, p: &ControlPacket) {
        if !self.started {
            return;
        }
        let was_sending = self.may_send();
        self.remote_discr = p.my_discriminator;
        self.remote_state = p.state;
        self.remote_diag = p.diag;
        self.remote_min_rx = from_micros(p.required_min_rx);
        self.remote_desired_tx = from_micros(p.desired_min_tx);
        self.remote_min_echo_rx = from_micros(p.required_min_echo_rx);
        self.remote_detect_mult = p.detect_mult;
        let mut new_poll = false;
        if p.final_
            && let Some((tx, rx)) = self.poll.take()
        {
            self.acked_tx = tx;
            self.acked_rx = rx;
            if std::mem::take(&mut self.poll_pending) {
                self.poll = Some((self.adv_tx, self.adv_rx));
                new_poll = true;
            }
        }
        if self.state == SessionState::AdminDown {
            return;
        }
        let before = self.state;
        let next = match (self.state, p.state) {
            (SessionState::Init | SessionState::Up, SessionState::AdminDown)
            | (SessionState::Up, SessionState::Down) => {
                Some((SessionState::Down, Diag::NeighborSignaledDown))
            }
            (SessionState::Down, SessionState::Down) => Some((SessionState::Init, Diag::None)),
            (SessionState::Down, SessionState::Init)
            | (SessionState::Init, SessionState::Init | SessionState::Up) => {
                Some((SessionState::Up, Diag::None))
            }
            _ => None,
        };
        if let Some((to, diag)) = next {
            new_poll |= self.set_state(out, to, diag);
        }
        if let Some(d) = self.detect_time() {
            out.push(Action::StartTimer(Timer::Detect, d));
        }
        if p.poll {
            self.send(out, true);
        } else if self.state != before || new_poll || (!was_sending && self.may_send()) {
            self.send(out, false);
        }
        let force = self.state != before || new_poll || !was_sending;
        self.arm_transmit(out, force);
    }

    fn on_detect_expired(&mut self, out: &mut Vec<Action>) {
        if self.remote_detect_mult == 0 {
            return;
        }
        // Section 6.8.1: forget the peer after a detection time of silence.
        self.remote_discr = 0;
        self.remote_detect_mult = 0;
        self.remote_min_rx = Duration::from_micros(1);
        self.remote_desired_tx = Duration::ZERO;
        self.remote_min_echo_rx = Duration::ZERO;
        if matches!(self.state, SessionState::Init | SessionState::Up) {
            self.remote_state = SessionState::Down;
            let _ = self.set_state(out, SessionState::Down, Diag::ControlDetectionTimeExpired);
            self.send(out, false);
            self.arm_transmit(out, true);
        } else {
            self.arm_transmit(out, false);
        }
    }

    fn on_reconfigure(&mut self, out: &mut Vec<Action>, config: SessionConfig) {
        if config == self.config {
            return;
        }
        let was_sending = self.may_send();
        self.config = config;
        let polled = self.update_advertised();
        if !self.started {
            return;
        }
        // The running Detect timer is left alone: a longer detection time only applies from
        // the next packet on, and a shorter one is never needed before it.
        if polled || (!was_sending && self.may_send()) {
            self.send(out, false);
        }
        self.arm_transmit(out, polled || !was_sending);
    }
}
