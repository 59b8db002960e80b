//! Scripted tests of the pure session FSM: events in, actions out, no sockets or sleeping.

use std::net::Ipv4Addr;
use std::time::Duration;

use ferrolb_bgp::fsm::{
    Action, BACKOFF_CAP, ConnId, DownReason, Event, Fsm, FsmConfig, OPEN_SENT_HOLD, State, Timer,
    decode_shutdown_message, encode_shutdown_message, negotiate_timers,
};
use ferrolb_bgp::wire::{AS_TRANS, AddressFamily, Capability, Message, Notification, Open, Update};

const OUT: ConnId = ConnId::Outbound;
const IN: ConnId = ConnId::Inbound;

fn config() -> FsmConfig {
    FsmConfig {
        local_as: 64522,
        remote_as: 64512,
        router_id: Ipv4Addr::new(10, 0, 0, 2),
        hold_time: 90,
        keepalive: None,
        families: vec![AddressFamily::Ipv4Unicast, AddressFamily::Ipv6Unicast],
        graceful_restart: None,
        passive: false,
    }
}

fn peer_open(asn: u32, hold: u16, id: Ipv4Addr) -> Open {
    let two_octet = u16::try_from(asn).unwrap_or(AS_TRANS);
    Open {
        version: 4,
        my_as: if asn > u32::from(u16::MAX) {
            u32::from(two_octet)
        } else {
            asn
        },
        hold_time: hold,
        bgp_id: id,
        capabilities: vec![
            Capability::Multiprotocol(AddressFamily::Ipv4Unicast),
            Capability::RouteRefresh,
            Capability::FourOctetAs(asn),
        ],
    }
}

fn peer_id() -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 1)
}

fn sent_notification(actions: &[Action]) -> Option<Notification> {
    actions.iter().find_map(|a| match a {
        Action::Send(_, Message::Notification(n)) => Some(n.clone()),
        _ => None,
    })
}

fn timer_started(actions: &[Action], timer: Timer) -> Option<Duration> {
    actions.iter().find_map(|a| match a {
        Action::StartTimer(t, d) if *t == timer => Some(*d),
        _ => None,
    })
}

/// Drive a fresh FSM to Established over the outbound connection.
fn established(cfg: FsmConfig, peer_hold: u16) -> Fsm {
    let mut fsm = Fsm::new(cfg, 7);
    fsm.handle(Event::ManualStart);
    fsm.handle(Event::TcpConnected(OUT));
    fsm.handle(Event::Message(
        OUT,
        Message::Open(peer_open(64512, peer_hold, peer_id())),
    ));
    let acts = fsm.handle(Event::Message(OUT, Message::Keepalive));
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::SessionEstablished(OUT, _))),
        "not established: {acts:?}"
    );
    assert_eq!(fsm.state(), State::Established);
    fsm
}

#[test]
fn full_handshake_emits_open_keepalive_and_session_context() {
    let mut fsm = Fsm::new(config(), 1);
    let acts = fsm.handle(Event::ManualStart);
    assert!(acts.contains(&Action::Connect));
    assert_eq!(fsm.state(), State::Connect);

    let acts = fsm.handle(Event::TcpConnected(OUT));
    let open = acts.iter().find_map(|a| match a {
        Action::Send(OUT, Message::Open(o)) => Some(o.clone()),
        _ => None,
    });
    let open = open.expect("OPEN sent");
    assert_eq!(open.hold_time, 90);
    assert_eq!(open.four_octet_as(), Some(64522));
    assert_eq!(timer_started(&acts, Timer::Hold(OUT)), Some(OPEN_SENT_HOLD));
    assert_eq!(fsm.state(), State::OpenSent);

    let acts = fsm.handle(Event::Message(
        OUT,
        Message::Open(peer_open(64512, 30, peer_id())),
    ));
    assert!(acts.contains(&Action::Send(OUT, Message::Keepalive)));
    assert_eq!(
        timer_started(&acts, Timer::Hold(OUT)),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        timer_started(&acts, Timer::Keepalive(OUT)),
        Some(Duration::from_secs(10))
    );
    assert_eq!(fsm.state(), State::OpenConfirm);

    let acts = fsm.handle(Event::Message(OUT, Message::Keepalive));
    let ctx = acts.iter().find_map(|a| match a {
        Action::SessionEstablished(OUT, ctx) => Some(ctx.clone()),
        _ => None,
    });
    let ctx = ctx.expect("established");
    assert!(ctx.four_octet_as);
    assert_eq!(ctx.families, vec![AddressFamily::Ipv4Unicast]);
    assert_eq!(ctx.peer_as, 64512);
    assert!(acts.contains(&Action::StateChanged {
        from: State::OpenConfirm,
        to: State::Established
    }));
}

#[test]
fn hold_timer_expiry_sends_4_0_and_goes_down() {
    let mut fsm = established(config(), 3);
    let acts = fsm.handle(Event::TimerExpired(Timer::Hold(OUT)));
    let n = sent_notification(&acts).expect("notification");
    assert_eq!((n.code, n.subcode), (4, 0));
    assert!(acts.contains(&Action::CloseTcp(OUT)));
    assert!(acts.contains(&Action::SessionDown(DownReason::HoldTimerExpired)));
    assert_ne!(fsm.state(), State::Established);
    // It retries by itself after a back-off of about 1 s.
    let retry = timer_started(&acts, Timer::ConnectRetry).expect("retry scheduled");
    assert!(
        retry <= Duration::from_secs(1) && retry >= Duration::from_millis(750),
        "{retry:?}"
    );
}

#[test]
fn hold_timer_runs_on_received_messages_only() {
    let mut fsm = established(config(), 9);
    for msg in [Message::Keepalive, Message::Update(Update::default())] {
        let acts = fsm.handle(Event::Message(OUT, msg));
        assert_eq!(
            timer_started(&acts, Timer::Hold(OUT)),
            Some(Duration::from_secs(9))
        );
    }
    // Our own keepalive does not touch the hold timer.
    let acts = fsm.handle(Event::TimerExpired(Timer::Keepalive(OUT)));
    assert!(acts.contains(&Action::Send(OUT, Message::Keepalive)));
    assert_eq!(timer_started(&acts, Timer::Hold(OUT)), None);
    assert_eq!(
        timer_started(&acts, Timer::Keepalive(OUT)),
        Some(Duration::from_secs(3))
    );
}

#[test]
fn bad_peer_as_is_open_error_2_2() {
    let mut fsm = Fsm::new(config(), 1);
    fsm.handle(Event::ManualStart);
    fsm.handle(Event::TcpConnected(OUT));
    let acts = fsm.handle(Event::Message(
        OUT,
        Message::Open(peer_open(64999, 90, peer_id())),
    ));
    let n = sent_notification(&acts).expect("notification");
    assert_eq!((n.code, n.subcode), (2, 2));
    assert!(acts.contains(&Action::CloseTcp(OUT)));
    assert_ne!(fsm.state(), State::OpenConfirm);
}

#[test]
fn four_octet_peer_as_comes_from_the_capability() {
    let mut cfg = config();
    cfg.remote_as = 4_200_000_000;
    let mut fsm = Fsm::new(cfg, 1);
    fsm.handle(Event::ManualStart);
    fsm.handle(Event::TcpConnected(OUT));
    let open = peer_open(4_200_000_000, 90, peer_id());
    assert_eq!(open.my_as, u32::from(AS_TRANS));
    let acts = fsm.handle(Event::Message(OUT, Message::Open(open)));
    assert_eq!(sent_notification(&acts), None, "{acts:?}");
    assert_eq!(fsm.state(), State::OpenConfirm);
}

#[test]
fn hold_time_one_is_2_6_and_zero_disables_timers() {
    let mut fsm = Fsm::new(config(), 1);
    fsm.handle(Event::ManualStart);
    fsm.handle(Event::TcpConnected(OUT));
    let acts = fsm.handle(Event::Message(
        OUT,
        Message::Open(peer_open(64512, 1, peer_id())),
    ));
    let n = sent_notification(&acts).expect("notification");
    assert_eq!((n.code, n.subcode), (2, 6));

    let mut fsm = Fsm::new(config(), 1);
    fsm.handle(Event::ManualStart);
    fsm.handle(Event::TcpConnected(OUT));
    let acts = fsm.handle(Event::Message(
        OUT,
        Message::Open(peer_open(64512, 0, peer_id())),
    ));
    assert_eq!(timer_started(&acts, Timer::Hold(OUT)), None);
    assert_eq!(timer_started(&acts, Timer::Keepalive(OUT)), None);
    assert!(acts.contains(&Action::StopTimer(Timer::Hold(OUT))));
    let acts = fsm.handle(Event::Message(OUT, Message::Keepalive));
    assert_eq!(fsm.state(), State::Established);
    assert_eq!(timer_started(&acts, Timer::Hold(OUT)), None);
    let acts = fsm.handle(Event::Message(OUT, Message::Keepalive));
    assert_eq!(timer_started(&acts, Timer::Hold(OUT)), None);
}

#[test]
fn version_and_identifier_checks() {
    let run = |open: Open, cfg: FsmConfig| {
        let mut fsm = Fsm::new(cfg, 1);
        fsm.handle(Event::ManualStart);
        fsm.handle(Event::TcpConnected(OUT));
        sent_notification(&fsm.handle(Event::Message(OUT, Message::Open(open))))
    };
    let mut v3 = peer_open(64512, 90, peer_id());
    v3.version = 3;
    let n = run(v3, config()).expect("2/1");
    assert_eq!((n.code, n.subcode, n.data), (2, 1, vec![0, 4]));

    let n = run(peer_open(64512, 90, Ipv4Addr::UNSPECIFIED), config()).expect("2/3");
    assert_eq!((n.code, n.subcode), (2, 3));

    // iBGP with our own identifier is refused; eBGP with the same identifier is fine.
    let mut ibgp = config();
    ibgp.remote_as = 64522;
    let n = run(peer_open(64522, 90, ibgp.router_id), ibgp.clone()).expect("2/3 ibgp");
    assert_eq!((n.code, n.subcode), (2, 3));
    assert_eq!(
        run(peer_open(64512, 90, config().router_id), config()),
        None
    );
}

#[test]
fn keepalive_interval_is_min_of_configured_and_a_third_of_hold() {
    let mut cfg = config();
    assert_eq!(
        negotiate_timers(&cfg, 90),
        Some((Duration::from_secs(90), Duration::from_secs(30)))
    );
    cfg.keepalive = Some(60);
    assert_eq!(
        negotiate_timers(&cfg, 90).map(|t| t.1),
        Some(Duration::from_secs(30))
    );
    cfg.keepalive = Some(10);
    assert_eq!(
        negotiate_timers(&cfg, 90).map(|t| t.1),
        Some(Duration::from_secs(10))
    );
    assert_eq!(
        negotiate_timers(&cfg, 9),
        Some((Duration::from_secs(9), Duration::from_secs(3)))
    );
    assert_eq!(negotiate_timers(&cfg, 0), None);
    cfg.hold_time = 0;
    assert_eq!(negotiate_timers(&cfg, 90), None);
}

#[test]
fn manual_stop_sends_cease_6_2_with_shutdown_message() {
    let mut fsm = established(config(), 90);
    let acts = fsm.handle(Event::ManualStop {
        reason: Some("maintenance 42".into()),
    });
    let n = sent_notification(&acts).expect("cease");
    assert_eq!((n.code, n.subcode), (6, 2));
    let mut expected = vec![14u8];
    expected.extend_from_slice(b"maintenance 42");
    assert_eq!(n.data, expected);
    assert_eq!(
        decode_shutdown_message(&n.data).as_deref(),
        Some("maintenance 42")
    );
    assert!(acts.contains(&Action::CloseTcp(OUT)));
    assert!(acts.contains(&Action::SessionDown(DownReason::Stopped)));
    assert_eq!(fsm.state(), State::Idle);
    // Stopped means stopped: the retry timer firing late does nothing.
    assert!(
        fsm.handle(Event::TimerExpired(Timer::ConnectRetry))
            .is_empty()
    );
}

#[test]
fn shutdown_message_is_cut_at_255_bytes_on_a_char_boundary() {
    let long = "é".repeat(200); // 400 bytes
    let data = encode_shutdown_message(&long);
    assert_eq!(data[0], 254);
    assert_eq!(data.len(), 255);
    assert_eq!(
        decode_shutdown_message(&data).map(|s| s.chars().count()),
        Some(127)
    );
}

#[test]
fn deconfigure_and_admin_reset_subcodes() {
    let mut fsm = established(config(), 90);
    let n = sent_notification(&fsm.handle(Event::Deconfigured)).expect("6/3");
    assert_eq!((n.code, n.subcode), (6, 3));
    assert_eq!(fsm.state(), State::Idle);

    let mut fsm = established(config(), 90);
    let acts = fsm.handle(Event::AdminReset {
        reason: Some("config".into()),
    });
    let n = sent_notification(&acts).expect("6/4");
    assert_eq!((n.code, n.subcode), (6, 4));
    assert!(
        timer_started(&acts, Timer::ConnectRetry).is_some(),
        "reconnects after a reset"
    );
}

/// Both sides connect at once; both connections reach the peer's OPEN.
fn collide(local_id: Ipv4Addr, remote_id: Ipv4Addr) -> (Fsm, Vec<Action>, Vec<Action>) {
    let mut cfg = config();
    cfg.router_id = local_id;
    let mut fsm = Fsm::new(cfg, 3);
    fsm.handle(Event::ManualStart);
    fsm.handle(Event::TcpConnected(OUT));
    fsm.handle(Event::TcpConnected(IN));
    assert!(fsm.has_conn(OUT) && fsm.has_conn(IN));
    let first = fsm.handle(Event::Message(
        OUT,
        Message::Open(peer_open(64512, 90, remote_id)),
    ));
    let second = fsm.handle(Event::Message(
        IN,
        Message::Open(peer_open(64512, 90, remote_id)),
    ));
    (fsm, first, second)
}

#[test]
fn collision_keeps_the_connection_of_the_higher_identifier() {
    // We are higher: our outbound connection survives, the inbound one gets 6/7 as soon
    // as the peer's identifier is known (from the first OPEN).
    let (mut fsm, first, second) = collide(Ipv4Addr::new(10, 0, 0, 9), Ipv4Addr::new(10, 0, 0, 1));
    let n = sent_notification(&first).expect("cease");
    assert_eq!((n.code, n.subcode), (6, 7));
    assert!(first.contains(&Action::Send(IN, Message::Notification(n))));
    assert!(first.contains(&Action::CloseTcp(IN)));
    assert!(
        second.is_empty(),
        "late OPEN on the closed connection is ignored"
    );
    assert!(fsm.has_conn(OUT) && !fsm.has_conn(IN));
    fsm.handle(Event::Message(OUT, Message::Keepalive));
    assert_eq!(fsm.established_conn(), Some(OUT));

    // Both OPENs arrive while both connections are still open: the decision is the same.
    let mut cfg = config();
    cfg.router_id = Ipv4Addr::new(10, 0, 0, 9);
    let mut fsm = Fsm::new(cfg, 3);
    fsm.handle(Event::ManualStart);
    fsm.handle(Event::TcpConnected(IN));
    fsm.handle(Event::Message(
        IN,
        Message::Open(peer_open(64512, 90, peer_id())),
    ));
    assert_eq!(fsm.state(), State::OpenConfirm);
    fsm.handle(Event::TcpConnected(OUT));
    let acts = fsm.handle(Event::Message(
        OUT,
        Message::Open(peer_open(64512, 90, peer_id())),
    ));
    assert!(acts.contains(&Action::Send(
        IN,
        Message::Notification(Notification {
            code: 6,
            subcode: 7,
            data: vec![]
        })
    )));
    assert!(fsm.has_conn(OUT) && !fsm.has_conn(IN));

    // The peer is higher: the connection it initiated (our inbound) survives. Its
    // identifier is known from the first OPEN, so our outbound one is closed at once.
    let (mut fsm, first, second) = collide(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 9));
    let n = sent_notification(&first).expect("cease");
    assert_eq!((n.code, n.subcode), (6, 7));
    assert!(first.contains(&Action::Send(OUT, Message::Notification(n))));
    assert_eq!(sent_notification(&second), None);
    assert!(fsm.has_conn(IN) && !fsm.has_conn(OUT));
    fsm.handle(Event::Message(IN, Message::Keepalive));
    assert_eq!(fsm.established_conn(), Some(IN));
}

#[test]
fn inbound_connection_while_established_is_refused() {
    let mut fsm = established(config(), 90);
    let acts = fsm.handle(Event::TcpConnected(IN));
    assert_eq!(acts, vec![Action::CloseTcp(IN)]);
    assert_eq!(fsm.established_conn(), Some(OUT));
}

#[test]
fn backoff_doubles_to_the_cap_with_bounded_jitter_and_resets_after_established() {
    let mut fsm = Fsm::new(config(), 42);
    fsm.handle(Event::ManualStart);
    let mut delays = Vec::new();
    for _ in 0..11 {
        let acts = fsm.handle(Event::TcpConnectFailed);
        delays.push(timer_started(&acts, Timer::ConnectRetry).expect("retry timer"));
        assert_eq!(fsm.state(), State::Active);
        let acts = fsm.handle(Event::TimerExpired(Timer::ConnectRetry));
        assert!(acts.contains(&Action::Connect), "{acts:?}");
    }
    let bases = [1u64, 2, 4, 8, 16, 32, 64, 120, 120, 120, 120];
    for (d, base) in delays.iter().zip(bases) {
        let base = Duration::from_secs(base);
        assert!(
            *d <= base && *d >= base.mul_f64(0.75),
            "delay {d:?} for base {base:?}"
        );
        assert!(*d <= BACKOFF_CAP);
    }
    // Jitter really varies (not a constant factor).
    let factors: Vec<f64> = delays
        .iter()
        .zip(bases)
        .map(|(d, b)| d.as_secs_f64() / b as f64)
        .collect();
    assert!(
        factors.windows(2).any(|w| (w[0] - w[1]).abs() > 1e-6),
        "{factors:?}"
    );

    // Established resets the sequence: the next failure waits about 1 s again.
    fsm.handle(Event::TcpConnected(OUT));
    fsm.handle(Event::Message(
        OUT,
        Message::Open(peer_open(64512, 90, peer_id())),
    ));
    fsm.handle(Event::Message(OUT, Message::Keepalive));
    assert_eq!(fsm.state(), State::Established);
    let acts = fsm.handle(Event::TcpClosed(OUT));
    assert!(acts.contains(&Action::SessionDown(DownReason::TcpClosed)));
    let d = timer_started(&acts, Timer::ConnectRetry).expect("retry");
    assert!(
        d <= Duration::from_secs(1) && d >= Duration::from_millis(750),
        "{d:?}"
    );
}

#[test]
fn jitter_is_reproducible_from_the_seed() {
    let delays = |seed| {
        let mut fsm = Fsm::new(config(), seed);
        fsm.handle(Event::ManualStart);
        (0..5)
            .map(|_| {
                let d = timer_started(&fsm.handle(Event::TcpConnectFailed), Timer::ConnectRetry);
                fsm.handle(Event::TimerExpired(Timer::ConnectRetry));
                d
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(delays(5), delays(5));
    assert_ne!(delays(5), delays(6));
}

#[test]
fn decode_error_sends_the_codec_notification_and_received_notification_goes_down() {
    let mut fsm = established(config(), 90);
    let bad = Notification {
        code: 3,
        subcode: 1,
        data: vec![],
    };
    let acts = fsm.handle(Event::DecodeError(OUT, bad.clone()));
    assert!(acts.contains(&Action::Send(OUT, Message::Notification(bad.clone()))));
    assert!(acts.contains(&Action::SessionDown(DownReason::NotificationSent(bad))));

    let mut fsm = established(config(), 90);
    let theirs = Notification {
        code: 6,
        subcode: 2,
        data: vec![],
    };
    let acts = fsm.handle(Event::Message(OUT, Message::Notification(theirs.clone())));
    assert_eq!(
        sent_notification(&acts),
        None,
        "never answer a NOTIFICATION"
    );
    assert!(
        acts.contains(&Action::SessionDown(DownReason::NotificationReceived(
            theirs
        )))
    );
}

#[test]
fn unexpected_message_is_fsm_error_and_updates_are_delivered() {
    let mut fsm = Fsm::new(config(), 1);
    fsm.handle(Event::ManualStart);
    fsm.handle(Event::TcpConnected(OUT));
    let n =
        sent_notification(&fsm.handle(Event::Message(OUT, Message::Keepalive))).expect("fsm error");
    assert_eq!((n.code, n.subcode), (5, 1));

    let mut fsm = established(config(), 90);
    let u = Update {
        withdrawn: vec!["10.0.0.1/32".parse().unwrap()],
        ..Update::default()
    };
    let acts = fsm.handle(Event::Message(OUT, Message::Update(u.clone())));
    assert!(acts.contains(&Action::DeliverUpdate(u)));
    let acts = fsm.handle(Event::Message(
        OUT,
        Message::RouteRefresh(AddressFamily::Ipv4Unicast),
    ));
    assert!(acts.contains(&Action::RouteRefreshRequested(AddressFamily::Ipv4Unicast)));
    let acts = fsm.handle(Event::Message(
        OUT,
        Message::EndOfRib(AddressFamily::Ipv4Unicast),
    ));
    assert!(acts.contains(&Action::EndOfRibReceived(AddressFamily::Ipv4Unicast)));
}

#[test]
fn passive_peer_waits_for_the_peer_and_accepts_it() {
    let mut cfg = config();
    cfg.passive = true;
    let mut fsm = Fsm::new(cfg, 1);
    let acts = fsm.handle(Event::ManualStart);
    assert!(!acts.contains(&Action::Connect));
    assert_eq!(fsm.state(), State::Active);
    let acts = fsm.handle(Event::TcpConnected(IN));
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::Send(IN, Message::Open(_))))
    );
    // A stopped FSM refuses inbound connections.
    let mut stopped = Fsm::new(config(), 1);
    assert_eq!(
        stopped.handle(Event::TcpConnected(IN)),
        vec![Action::CloseTcp(IN)]
    );
}

#[test]
fn connect_timeout_abandons_the_attempt_and_backs_off() {
    let mut fsm = Fsm::new(config(), 1);
    fsm.handle(Event::ManualStart);
    let acts = fsm.handle(Event::TimerExpired(Timer::ConnectRetry));
    assert!(acts.contains(&Action::CloseTcp(OUT)));
    assert!(timer_started(&acts, Timer::ConnectRetry).is_some());
    assert!(!fsm.has_conn(OUT));
    // A late success of the abandoned connect is closed, not used.
    assert_eq!(
        fsm.handle(Event::TcpConnected(OUT)),
        vec![Action::CloseTcp(OUT)]
    );
}

#[test]
fn max_prefixes_exceeded_sends_cease_6_1_and_holds_off_both_directions() {
    let mut fsm = established(config(), 90);
    let restart = Duration::from_secs(300);
    let acts = fsm.handle(Event::MaxPrefixesExceeded {
        family: AddressFamily::Ipv4Unicast,
        limit: 100,
        restart_after: restart,
    });
    let n = sent_notification(&acts).expect("Cease sent");
    assert_eq!((n.code, n.subcode), (6, 1));
    // RFC 4486: AFI 1, SAFI 1, the upper bound as 4 octets.
    assert_eq!(n.data, vec![0, 1, 1, 0, 0, 0, 100]);
    assert!(acts.contains(&Action::SessionDown(DownReason::MaxPrefixes { limit: 100 })));
    assert_eq!(timer_started(&acts, Timer::ConnectRetry), Some(restart));
    assert_eq!(fsm.state(), State::Active);
    // The peer reconnecting at once is refused during the hold-off.
    let acts = fsm.handle(Event::TcpConnected(IN));
    assert_eq!(acts, vec![Action::CloseTcp(IN)]);
    // Once the timer fires we connect again.
    let acts = fsm.handle(Event::TimerExpired(Timer::ConnectRetry));
    assert!(acts.contains(&Action::Connect), "{acts:?}");
    let acts = fsm.handle(Event::TcpConnected(IN));
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::Send(IN, Message::Open(_)))),
        "{acts:?}"
    );
}
