//! Scripts for the pure BFD session state machine (RFC 5880 section 6.8): events in,
//! actions out, no sockets and no sleeping.

use std::time::Duration;

use ferrolb_bgp::bfd::session::{Action, Event, SLOW_TX, Session, SessionConfig, Timer};
use ferrolb_bgp::bfd::{ControlPacket, Diag, SessionState, Transition, is_failure};

const MS: Duration = Duration::from_millis(1);

fn cfg(tx_ms: u64, rx_ms: u64, mult: u8) -> SessionConfig {
    SessionConfig {
        desired_min_tx: MS * tx_ms as u32,
        required_min_rx: MS * rx_ms as u32,
        detect_mult: mult,
        ..SessionConfig::default()
    }
}

fn sent(actions: &[Action]) -> Vec<ControlPacket> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(p) => Some(*p),
            _ => None,
        })
        .collect()
}

fn one_sent(actions: &[Action]) -> ControlPacket {
    let s = sent(actions);
    assert_eq!(s.len(), 1, "exactly one packet expected: {actions:?}");
    s[0]
}

fn timer(actions: &[Action], t: Timer) -> Option<Duration> {
    actions.iter().rev().find_map(|a| match a {
        Action::StartTimer(x, d) if *x == t => Some(*d),
        _ => None,
    })
}

fn first_transition(actions: &[Action]) -> Transition {
    actions
        .iter()
        .find_map(|x| match x {
            Action::StateChanged(t) => Some(*t),
            _ => None,
        })
        .expect("a transition")
}

fn transitions(actions: &[Action]) -> Vec<(SessionState, SessionState, Diag)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StateChanged(t) => Some((t.from, t.to, t.diag)),
            _ => None,
        })
        .collect()
}

/// Two sessions A and B with the given configs, brought Up by delivering packets between
/// them; returns them with the poll sequences finished.
fn up_pair(a_cfg: SessionConfig, b_cfg: SessionConfig) -> (Session, Session) {
    let mut a = Session::new(a_cfg, 0xa, 1);
    let mut b = Session::new(b_cfg, 0xb, 2);
    let mut to_b = sent(&a.handle(Event::Start));
    let mut to_a = sent(&b.handle(Event::Start));
    for _ in 0..10 {
        let mut next_a = Vec::new();
        let mut next_b = Vec::new();
        for p in to_b.drain(..) {
            next_a.extend(sent(&b.handle(Event::Received(p))));
        }
        for p in to_a.drain(..) {
            next_b.extend(sent(&a.handle(Event::Received(p))));
        }
        to_a = next_a;
        to_b = next_b;
        if to_a.is_empty() && to_b.is_empty() {
            break;
        }
    }
    assert_eq!(a.state(), SessionState::Up);
    assert_eq!(b.state(), SessionState::Up);
    assert!(!a.negotiated().polling && !b.negotiated().polling);
    (a, b)
}

#[test]
fn three_way_handshake() {
    let mut a = Session::new(cfg(300, 300, 3), 0x1111, 1);
    let mut b = Session::new(cfg(300, 300, 3), 0x2222, 2);

    // A starts: Down, Your Discriminator 0, slow rate (>= 1 s while not Up), timer armed.
    let acts = a.handle(Event::Start);
    let a1 = one_sent(&acts);
    assert_eq!(a1.state, SessionState::Down);
    assert_eq!((a1.my_discriminator, a1.your_discriminator), (0x1111, 0));
    assert_eq!(a1.desired_min_tx, 1_000_000, "1 s while not Up");
    assert_eq!(a1.required_min_rx, 300_000);
    assert_eq!(a1.detect_mult, 3);
    assert!(!a1.poll && !a1.final_);
    let t = timer(&acts, Timer::Transmit).expect("transmit timer");
    assert!(t >= SLOW_TX.mul_f64(0.75) && t <= SLOW_TX, "{t:?}");
    assert!(timer(&acts, Timer::Detect).is_none(), "nobody heard yet");
    // A session that was never started ignores packets.
    assert!(b.handle(Event::Received(a1)).is_empty());
    assert_eq!(one_sent(&b.handle(Event::Start)).state, SessionState::Down);

    // B hears Down: Down -> Init, answers at once with A's discriminator.
    let acts = b.handle(Event::Received(a1));
    assert_eq!(
        transitions(&acts),
        vec![(SessionState::Down, SessionState::Init, Diag::None)]
    );
    let b1 = one_sent(&acts);
    assert_eq!(b1.state, SessionState::Init);
    assert_eq!(b1.your_discriminator, 0x1111);
    // Detection time of a not-yet-Up peer: 3 x max(300 ms, its 1 s) = 3 s.
    assert_eq!(timer(&acts, Timer::Detect), Some(Duration::from_secs(3)));

    // A hears Init: Down -> Up; the first Up packet switches to 300 ms with a Poll.
    let acts = a.handle(Event::Received(b1));
    assert_eq!(
        transitions(&acts),
        vec![(SessionState::Down, SessionState::Up, Diag::None)]
    );
    let a2 = one_sent(&acts);
    assert_eq!(a2.state, SessionState::Up);
    assert!(a2.poll, "new Desired Min TX is announced with a Poll");
    assert_eq!(a2.desired_min_tx, 300_000);
    assert_eq!(a2.your_discriminator, 0x2222);

    // B hears Up with Poll: Init -> Up, answers with Final (and no Poll).
    let acts = b.handle(Event::Received(a2));
    assert_eq!(
        transitions(&acts),
        vec![(SessionState::Init, SessionState::Up, Diag::None)]
    );
    let b2 = one_sent(&acts);
    assert!(b2.final_ && !b2.poll, "{b2:?}");
    assert_eq!(b2.state, SessionState::Up);

    // A's poll ends with B's Final; nothing more to say until the timer.
    let acts = a.handle(Event::Received(b2));
    assert!(transitions(&acts).is_empty());
    assert!(!a.negotiated().polling);
    assert!(sent(&acts).is_empty(), "{acts:?}");
    assert!(b.negotiated().polling, "B's own poll is still running");
}

#[test]
fn detection_timeout_takes_the_session_down_and_forgets_the_peer() {
    let (mut a, _b) = up_pair(cfg(300, 300, 3), cfg(300, 300, 3));
    let n = a.negotiated();
    assert_eq!(n.detect_time, Some(MS * 900));
    assert_eq!(n.transmit_interval, Some(MS * 300));
    let acts = a.handle(Event::TimerExpired(Timer::Detect));
    assert_eq!(transitions(&acts).len(), 1);
    let t = first_transition(&acts);
    assert_eq!(
        (t.from, t.to, t.diag),
        (
            SessionState::Up,
            SessionState::Down,
            Diag::ControlDetectionTimeExpired
        )
    );
    assert!(is_failure(&t), "a detection timeout is a path failure");
    let p = one_sent(&acts);
    assert_eq!(p.state, SessionState::Down);
    assert_eq!(p.diag, Diag::ControlDetectionTimeExpired);
    assert_eq!(p.your_discriminator, 0, "bfd.RemoteDiscr reset");
    assert_eq!(p.desired_min_tx, 1_000_000, "back to the slow rate");
    assert_eq!(a.negotiated().detect_time, None);
    // A second expiry (nothing armed it) changes nothing.
    assert!(a.handle(Event::TimerExpired(Timer::Detect)).is_empty());
}

#[test]
fn poll_final_on_interval_change_and_lag_rules() {
    let (mut a, mut b) = up_pair(cfg(300, 300, 3), cfg(300, 300, 3));
    // A slows its transmit rate to 1 s: advertised at once with P, but A keeps sending every
    // 300 ms until B's Final says B has updated its detection time.
    let acts = a.handle(Event::Reconfigure(cfg(1000, 300, 3)));
    let p = one_sent(&acts);
    assert!(p.poll);
    assert_eq!(p.desired_min_tx, 1_000_000);
    assert_eq!(a.negotiated().transmit_interval, Some(MS * 300));
    let acts = a.handle(Event::TimerExpired(Timer::Transmit));
    assert!(one_sent(&acts).poll, "P on every packet of the sequence");
    let t = timer(&acts, Timer::Transmit).unwrap();
    assert!(t <= MS * 300, "{t:?}");

    // B answers with Final and now expects A's packets every 1 s: 3 s detection.
    let acts = b.handle(Event::Received(p));
    let f = one_sent(&acts);
    assert!(f.final_ && !f.poll);
    assert_eq!(b.negotiated().detect_time, Some(Duration::from_secs(3)));

    // The Final ends A's poll: now the slower rate is in effect.
    let acts = a.handle(Event::Received(f));
    assert!(!a.negotiated().polling);
    assert_eq!(
        a.negotiated().transmit_interval,
        Some(Duration::from_secs(1))
    );
    let t = timer(&acts, Timer::Transmit).expect("re-armed for the new interval");
    assert!(t >= MS * 750 && t <= MS * 1000, "{t:?}");
    let acts = a.handle(Event::TimerExpired(Timer::Transmit));
    assert!(!one_sent(&acts).poll, "sequence over");

    // A lowers its Required Min RX to 100 ms: until the Final, detection keeps using
    // 300 ms (B still sends at 300 ms); after it, 100 ms.
    let acts = a.handle(Event::Reconfigure(cfg(1000, 100, 3)));
    let p = one_sent(&acts);
    assert!(p.poll);
    assert_eq!(p.required_min_rx, 100_000);
    assert_eq!(a.negotiated().detect_time, Some(MS * 900));
    let f = one_sent(&b.handle(Event::Received(p)));
    assert!(f.final_);
    assert_eq!(
        b.negotiated().transmit_interval,
        Some(MS * 300),
        "B's own 300 ms"
    );
    a.handle(Event::Received(f));
    assert_eq!(
        a.negotiated().detect_time,
        Some(MS * 900),
        "B's 300 ms tx still rules"
    );

    // B speeds up to 50 ms: A's detection follows B's advertised tx at once.
    let p = one_sent(&b.handle(Event::Reconfigure(cfg(50, 300, 3))));
    assert_eq!(p.desired_min_tx, 50_000);
    let acts = a.handle(Event::Received(p));
    assert!(one_sent(&acts).final_);
    assert_eq!(
        a.negotiated().detect_time,
        Some(MS * 300),
        "3 x max(100, 50)"
    );
}

#[test]
fn a_second_change_during_a_poll_waits_for_the_first() {
    let (mut a, mut b) = up_pair(cfg(300, 300, 3), cfg(300, 300, 3));
    let p1 = one_sent(&a.handle(Event::Reconfigure(cfg(500, 300, 3))));
    assert!(p1.poll);
    // Second change while the first poll runs: no new immediate packet, values go out in
    // the periodic packets; the poll continues after the first Final.
    let acts = a.handle(Event::Reconfigure(cfg(800, 300, 3)));
    assert!(sent(&acts).is_empty(), "{acts:?}");
    let f1 = one_sent(&b.handle(Event::Received(p1)));
    a.handle(Event::Received(f1));
    assert!(a.negotiated().polling, "second sequence started");
    assert_eq!(
        a.negotiated().transmit_interval,
        Some(MS * 500),
        "only the acknowledged 500 ms is in effect"
    );
    let p2 = one_sent(&a.handle(Event::TimerExpired(Timer::Transmit)));
    assert!(p2.poll);
    assert_eq!(p2.desired_min_tx, 800_000);
    let f2 = one_sent(&b.handle(Event::Received(p2)));
    a.handle(Event::Received(f2));
    assert!(!a.negotiated().polling);
    assert_eq!(a.negotiated().transmit_interval, Some(MS * 800));
}

#[test]
fn admin_down_both_ways() {
    let (mut a, mut b) = up_pair(cfg(300, 300, 3), cfg(300, 300, 3));
    // Local AdminDown: diag 7, packets say AdminDown, Detect disarmed.
    let acts = a.handle(Event::AdminDown);
    assert_eq!(
        transitions(&acts),
        vec![(
            SessionState::Up,
            SessionState::AdminDown,
            Diag::AdministrativelyDown
        )]
    );
    assert!(acts.contains(&Action::StopTimer(Timer::Detect)));
    let p = one_sent(&acts);
    assert_eq!(p.state, SessionState::AdminDown);
    assert_eq!(p.diag, Diag::AdministrativelyDown);
    assert_eq!(p.your_discriminator, 0xb);

    // The peer goes Down with diag 3, and that is *not* a failure for its clients.
    let acts = b.handle(Event::Received(p));
    let t = first_transition(&acts);
    assert_eq!((t.from, t.to), (SessionState::Up, SessionState::Down));
    assert_eq!(t.diag, Diag::NeighborSignaledDown);
    assert_eq!(t.remote_state, SessionState::AdminDown);
    assert!(
        !is_failure(&t),
        "RFC 5882: AdminDown from the peer is no failure"
    );

    // While AdminDown, A ignores what it hears (and does not answer Polls).
    let mut poll = one_sent(&b.handle(Event::TimerExpired(Timer::Transmit)));
    poll.poll = true;
    let acts = a.handle(Event::Received(poll));
    assert!(
        transitions(&acts).is_empty() && sent(&acts).is_empty(),
        "{acts:?}"
    );

    // Re-enabled: back to Down, and up again through the handshake.
    let acts = a.handle(Event::Start);
    assert_eq!(
        transitions(&acts),
        vec![(SessionState::AdminDown, SessionState::Down, Diag::None)]
    );
    let down = one_sent(&acts);
    let init = one_sent(&b.handle(Event::Received(down)));
    assert_eq!(init.state, SessionState::Init);
    a.handle(Event::Received(init));
    assert_eq!(a.state(), SessionState::Up);
}

#[test]
fn a_neighbor_signalling_down_is_a_failure() {
    let (mut a, mut b) = up_pair(cfg(300, 300, 3), cfg(300, 300, 3));
    // B times out (its path towards A broke) and tells A.
    let p = one_sent(&b.handle(Event::TimerExpired(Timer::Detect)));
    assert_eq!(p.state, SessionState::Down);
    let acts = a.handle(Event::Received(p));
    let t = first_transition(&acts);
    assert_eq!(t.diag, Diag::NeighborSignaledDown);
    assert_eq!(t.remote_diag, Diag::ControlDetectionTimeExpired);
    assert!(is_failure(&t));
}

#[test]
fn the_peers_multiplier_and_intervals_are_used() {
    // Ours: tx 100, rx 300, mult 3. Theirs: tx 200, rx 50, mult 5.
    let (a, _b) = up_pair(cfg(100, 300, 3), cfg(200, 50, 5));
    let n = a.negotiated();
    // Detection: *their* multiplier x max(our rx 300, their tx 200).
    assert_eq!(n.remote_detect_mult, 5);
    assert_eq!(n.detect_time, Some(MS * 1500));
    // Transmit: max(our tx 100, their rx 50).
    assert_eq!(n.transmit_interval, Some(MS * 100));

    let (a, b) = up_pair(cfg(100, 30, 2), cfg(200, 400, 7));
    assert_eq!(a.negotiated().detect_time, Some(MS * 7 * 200));
    assert_eq!(
        a.negotiated().transmit_interval,
        Some(MS * 400),
        "their rx 400"
    );
    assert_eq!(
        b.negotiated().detect_time,
        Some(MS * 2 * 400),
        "max(400, 100) x 2"
    );
}

fn transmit_delays(seed: u64, mult: u8, n: usize) -> Vec<f64> {
    let (mut a, _b) = {
        let mut a = Session::new(cfg(100, 100, mult), 0xa, seed);
        let mut b = Session::new(cfg(100, 100, 3), 0xb, seed + 1);
        b.handle(Event::Start);
        let a0 = one_sent(&a.handle(Event::Start));
        let b0 = one_sent(&b.handle(Event::Received(a0)));
        let a1 = one_sent(&a.handle(Event::Received(b0)));
        let b1 = one_sent(&b.handle(Event::Received(a1)));
        a.handle(Event::Received(b1));
        (a, b)
    };
    assert_eq!(a.negotiated().transmit_interval, Some(MS * 100));
    (0..n)
        .map(|_| {
            let d = timer(
                &a.handle(Event::TimerExpired(Timer::Transmit)),
                Timer::Transmit,
            )
            .expect("re-armed");
            d.as_secs_f64() / 0.1
        })
        .collect()
}

#[test]
fn jitter_bounds() {
    let f = transmit_delays(7, 3, 2000);
    assert!(f.iter().all(|x| (0.75..=1.0).contains(x)), "{:?}", &f[..10]);
    let mean = f.iter().sum::<f64>() / f.len() as f64;
    assert!((0.85..0.90).contains(&mean), "mean factor {mean}");
    assert!(
        f.iter().any(|x| *x < 0.8) && f.iter().any(|x| *x > 0.95),
        "spread"
    );
    // Detect Mult 1: at most 90 % of the interval.
    let f1 = transmit_delays(7, 1, 2000);
    assert!(f1.iter().all(|x| (0.75..=0.90).contains(x)));
    // Reproducible from the seed, different across seeds.
    assert_eq!(transmit_delays(9, 3, 50), transmit_delays(9, 3, 50));
    assert_ne!(transmit_delays(9, 3, 50), transmit_delays(10, 3, 50));
}

#[test]
fn passive_role_waits_for_the_peer() {
    let passive = SessionConfig {
        passive: true,
        ..cfg(300, 300, 3)
    };
    let mut a = Session::new(passive, 0xa, 1);
    let acts = a.handle(Event::Start);
    assert!(acts.is_empty(), "{acts:?}");
    let mut b = Session::new(cfg(300, 300, 3), 0xb, 2);
    let b0 = one_sent(&b.handle(Event::Start));
    let acts = a.handle(Event::Received(b0));
    let a0 = one_sent(&acts);
    assert_eq!(a0.state, SessionState::Init);
    assert!(timer(&acts, Timer::Transmit).is_some(), "now periodic");
    // Once the peer is forgotten (silence), the passive side goes quiet again.
    let acts = a.handle(Event::TimerExpired(Timer::Detect));
    assert!(sent(&acts).is_empty(), "{acts:?}");
    assert!(acts.contains(&Action::StopTimer(Timer::Transmit)));
    assert!(a.handle(Event::TimerExpired(Timer::Transmit)).is_empty());
}

#[test]
fn polls_are_answered_at_once_and_zero_min_rx_stops_periodic_packets() {
    let (mut a, mut b) = up_pair(cfg(300, 300, 3), cfg(300, 300, 3));
    let mut p = one_sent(&b.handle(Event::TimerExpired(Timer::Transmit)));
    p.poll = true;
    let f = one_sent(&a.handle(Event::Received(p)));
    assert!(f.final_ && !f.poll);
    // The peer says it wants no packets: no periodic ones, but a Poll is still answered.
    let mut quiet = p;
    quiet.poll = false;
    quiet.required_min_rx = 0;
    let acts = a.handle(Event::Received(quiet));
    assert!(
        acts.contains(&Action::StopTimer(Timer::Transmit)),
        "{acts:?}"
    );
    assert_eq!(a.negotiated().transmit_interval, None);
    assert!(sent(&a.handle(Event::TimerExpired(Timer::Transmit))).is_empty());
    quiet.poll = true;
    assert!(one_sent(&a.handle(Event::Received(quiet))).final_);
}

#[test]
fn echo_interval_is_advertised_as_configured() {
    let echo = SessionConfig {
        required_min_echo_rx: MS * 50,
        ..cfg(300, 300, 3)
    };
    let mut a = Session::new(echo, 0xa, 1);
    assert_eq!(
        one_sent(&a.handle(Event::Start)).required_min_echo_rx,
        50_000
    );
    let mut b = Session::new(cfg(300, 300, 3), 0xb, 1);
    assert_eq!(one_sent(&b.handle(Event::Start)).required_min_echo_rx, 0);
}
