//! The session driver against a scripted peer on loopback (no root needed), and two of
//! our own speakers against each other (connection collision on real sockets).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_bgp::fsm::State;
use ferrolb_bgp::session::{
    PeerConfig, PeerSelector, RouteSpec, Speaker, SpeakerConfig, SpeakerEvent,
};
use ferrolb_bgp::wire::{
    AddressFamily, Capability, Message, Open, PathAttributes, SessionContext, decode, encode,
    message_length,
};
use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::UnboundedReceiver;

const OUR_AS: u32 = 64522;
const PEER_AS: u32 = 64512;

/// Read one message; `None` on EOF.
async fn read_msg(s: &mut TcpStream, ctx: &SessionContext) -> Option<Message> {
    let mut buf = vec![0u8; 19];
    s.read_exact(&mut buf).await.ok()?;
    let len = message_length(&buf)
        .expect("valid header")
        .expect("complete header");
    buf.resize(len, 0);
    s.read_exact(&mut buf[19..]).await.ok()?;
    Some(
        decode(&buf, ctx)
            .expect("we only send valid messages")
            .message,
    )
}

async fn read_msg_timeout(
    s: &mut TcpStream,
    ctx: &SessionContext,
    d: Duration,
) -> Result<Option<Message>, ()> {
    tokio::time::timeout(d, read_msg(s, ctx))
        .await
        .map_err(|_| ())
}

async fn send(s: &mut TcpStream, msg: &Message, ctx: &SessionContext) {
    s.write_all(&encode(msg, ctx).expect("encode"))
        .await
        .expect("write");
}

fn peer_open() -> Open {
    Open {
        version: 4,
        my_as: PEER_AS,
        hold_time: 90,
        bgp_id: Ipv4Addr::new(192, 0, 2, 1),
        capabilities: vec![
            Capability::Multiprotocol(AddressFamily::Ipv4Unicast),
            Capability::FourOctetAs(PEER_AS),
        ],
    }
}

/// Accept our speaker's connection and bring the session up; returns the stream and
/// the negotiated context.
async fn handshake(listener: &TcpListener) -> (TcpStream, SessionContext) {
    let (s, ctx, _) = handshake_with(listener, peer_open()).await;
    (s, ctx)
}

/// [`handshake`] with the peer sending `theirs`; also returns our OPEN.
async fn handshake_with(listener: &TcpListener, theirs: Open) -> (TcpStream, SessionContext, Open) {
    let (mut s, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("speaker connects")
        .expect("accept");
    let pre = SessionContext::default_for_open();
    let Some(Message::Open(ours)) = read_msg(&mut s, &pre).await else {
        panic!("expected OPEN first");
    };
    assert_eq!(ours.four_octet_as(), Some(OUR_AS));
    send(&mut s, &Message::Open(theirs.clone()), &pre).await;
    send(&mut s, &Message::Keepalive, &pre).await;
    assert_eq!(read_msg(&mut s, &pre).await, Some(Message::Keepalive));
    let ctx = SessionContext::negotiate(&theirs, &ours);
    (s, ctx, ours)
}

async fn setup() -> (
    TcpListener,
    Speaker,
    UnboundedReceiver<SpeakerEvent>,
    PeerConfig,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (speaker, events) =
        Speaker::new(SpeakerConfig::new(Ipv4Addr::new(10, 0, 0, 2))).expect("speaker");
    let mut cfg = PeerConfig::new(IpAddr::V4(Ipv4Addr::LOCALHOST), OUR_AS, PEER_AS);
    cfg.port = port;
    cfg.families = vec![AddressFamily::Ipv4Unicast];
    (listener, speaker, events, cfg)
}

fn routes(prefixes: &[&str], med: Option<u32>) -> BTreeMap<IpNet, RouteSpec> {
    let attrs = Arc::new(PathAttributes {
        med,
        ..PathAttributes::default()
    });
    prefixes
        .iter()
        .map(|p| {
            (
                p.parse().expect("prefix"),
                RouteSpec::self_next_hop(attrs.clone()),
            )
        })
        .collect()
}

/// Collect announced and withdrawn prefixes until nothing arrives for `quiet`.
async fn collect_updates(
    s: &mut TcpStream,
    ctx: &SessionContext,
    quiet: Duration,
) -> (Vec<IpNet>, Vec<IpNet>, usize) {
    let (mut ann, mut wd, mut eor) = (Vec::new(), Vec::new(), 0);
    while let Ok(Some(m)) = read_msg_timeout(s, ctx, quiet).await {
        match m {
            Message::Update(u) => {
                ann.extend(u.announced);
                wd.extend(u.withdrawn);
            }
            Message::EndOfRib(_) => eor += 1,
            _ => {}
        }
    }
    ann.sort();
    wd.sort();
    (ann, wd, eor)
}

#[tokio::test]
async fn malformed_message_gets_notification_then_reconnect_after_backoff() {
    let (listener, speaker, _events, cfg) = setup().await;
    speaker.add_peer(cfg).expect("add");
    let (mut s, ctx) = handshake(&listener).await;
    // A header with a broken marker.
    let mut junk = vec![0u8; 19];
    junk[16] = 0;
    junk[17] = 19;
    junk[18] = 4;
    s.write_all(&junk).await.expect("write");
    let closed_at = Instant::now();
    let mut got = None;
    while let Ok(Some(m)) = read_msg_timeout(&mut s, &ctx, Duration::from_secs(5)).await {
        if let Message::Notification(n) = m {
            got = Some(n);
        }
    }
    let n = got.expect("NOTIFICATION before close");
    assert_eq!((n.code, n.subcode), (1, 1));
    // Reconnects by itself, after the back-off (no busy loop).
    let (_s2, _) = handshake(&listener).await;
    let waited = closed_at.elapsed();
    assert!(
        waited >= Duration::from_millis(700),
        "reconnected after {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "reconnected after {waited:?}"
    );
    speaker.shutdown(None).await;
}

#[tokio::test]
async fn live_session_gets_only_diffs_and_nothing_for_an_unchanged_set() {
    let (listener, speaker, _events, cfg) = setup().await;
    speaker
        .set_desired(
            PeerSelector::All,
            routes(&["10.1.0.1/32", "10.1.0.2/32"], None),
        )
        .expect("desired");
    speaker.add_peer(cfg.clone()).expect("add");
    let (mut s, ctx) = handshake(&listener).await;
    let quiet = Duration::from_millis(300);
    let (ann, wd, eor) = collect_updates(&mut s, &ctx, quiet).await;
    assert_eq!(
        ann,
        vec![
            "10.1.0.1/32".parse::<IpNet>().unwrap(),
            "10.1.0.2/32".parse().unwrap()
        ]
    );
    assert!(wd.is_empty());
    assert_eq!(eor, 1, "one End-of-RIB for IPv4");

    // Same set again: nothing on the wire.
    speaker
        .set_desired(
            PeerSelector::All,
            routes(&["10.1.0.1/32", "10.1.0.2/32"], None),
        )
        .expect("desired");
    let (ann, wd, _) = collect_updates(&mut s, &ctx, quiet).await;
    assert!(
        ann.is_empty() && wd.is_empty(),
        "unchanged set re-sent: {ann:?} {wd:?}"
    );

    // One removed, one added, one changed attribute.
    let mut next = routes(&["10.1.0.3/32"], None);
    next.extend(routes(&["10.1.0.2/32"], Some(5)));
    speaker
        .set_desired(PeerSelector::All, next)
        .expect("desired");
    let (ann, wd, _) = collect_updates(&mut s, &ctx, quiet).await;
    assert_eq!(
        ann,
        vec![
            "10.1.0.2/32".parse::<IpNet>().unwrap(),
            "10.1.0.3/32".parse().unwrap()
        ]
    );
    assert_eq!(wd, vec!["10.1.0.1/32".parse::<IpNet>().unwrap()]);

    // A next-hop override change is not session-affecting: no reset.
    let mut changed = cfg.clone();
    changed.ipv6_next_hop = Some("fd00::9".parse().unwrap());
    assert!(!speaker.update_peer(changed).expect("update"));
    let (ann, wd, _) = collect_updates(&mut s, &ctx, quiet).await;
    assert!(ann.is_empty() && wd.is_empty());
    assert_eq!(speaker.peer_status()[0].state, State::Established);
    assert_eq!(speaker.peer_status()[0].prefixes_announced, 2);

    // Removing the peer sends Cease 6/3.
    speaker.remove_peer(cfg.address).await.expect("remove");
    let mut cease = None;
    while let Ok(Some(m)) = read_msg_timeout(&mut s, &ctx, Duration::from_secs(3)).await {
        if let Message::Notification(n) = m {
            cease = Some(n);
        }
    }
    let n = cease.expect("Cease");
    assert_eq!((n.code, n.subcode), (6, 3));
    assert!(speaker.peer_status().is_empty());
}

#[tokio::test]
async fn shutdown_sends_cease_with_the_shutdown_message() {
    let (listener, speaker, _events, cfg) = setup().await;
    speaker.add_peer(cfg).expect("add");
    let (mut s, ctx) = handshake(&listener).await;
    speaker.shutdown(Some("node drained")).await;
    let mut cease = None;
    while let Ok(Some(m)) = read_msg_timeout(&mut s, &ctx, Duration::from_secs(3)).await {
        if let Message::Notification(n) = m {
            cease = Some(n);
        }
    }
    let n = cease.expect("Cease arrives before the close");
    assert_eq!((n.code, n.subcode), (6, 2));
    assert_eq!(n.data, [&[12u8][..], b"node drained"].concat());
}

/// Everything the peer reads until the connection closes (or 3 s of silence): the
/// NOTIFICATIONs, and whether it saw the close.
async fn until_close(s: &mut TcpStream, ctx: &SessionContext) -> (Vec<(u8, u8)>, bool) {
    let mut notifications = Vec::new();
    loop {
        match read_msg_timeout(s, ctx, Duration::from_secs(3)).await {
            Ok(Some(Message::Notification(n))) => notifications.push((n.code, n.subcode)),
            Ok(Some(_)) => {}
            Ok(None) => return (notifications, true),
            Err(()) => return (notifications, false),
        }
    }
}

fn graceful_open() -> Open {
    let mut o = peer_open();
    o.capabilities.push(Capability::GracefulRestart {
        restarting: false,
        restart_time: 120,
        families: vec![(AddressFamily::Ipv4Unicast, false)],
    });
    o
}

#[tokio::test]
async fn restart_stop_closes_a_graceful_restart_session_without_notification() {
    let (listener, speaker, _events, mut cfg) = setup().await;
    cfg.graceful_restart = Some(45);
    speaker.add_peer(cfg).expect("add");
    let (mut s, ctx, ours) = handshake_with(&listener, graceful_open()).await;
    // Our capability: the configured restart time, R clear, F set for the family.
    let gr = ours
        .capabilities
        .iter()
        .find(|c| matches!(c, Capability::GracefulRestart { .. }))
        .cloned();
    assert_eq!(
        gr,
        Some(Capability::GracefulRestart {
            restarting: false,
            restart_time: 45,
            families: vec![(AddressFamily::Ipv4Unicast, true)],
        })
    );
    assert!(ctx.graceful_restart.is_some());
    speaker.shutdown_for_restart(Some("restart")).await;
    let (notifications, closed) = until_close(&mut s, &ctx).await;
    assert!(closed, "the connection is closed");
    assert!(
        notifications.is_empty(),
        "a restarting speaker sends no NOTIFICATION (RFC 4724 4.1): {notifications:?}"
    );
}

#[tokio::test]
async fn restart_stop_sends_cease_where_graceful_restart_was_not_negotiated() {
    // We offer graceful restart, the peer does not: a silent close would leave our routes
    // there until its hold timer, so it gets the Cease as on a plain shutdown.
    let (listener, speaker, _events, mut cfg) = setup().await;
    cfg.graceful_restart = Some(45);
    speaker.add_peer(cfg).expect("add");
    let (mut s, ctx, _) = handshake_with(&listener, peer_open()).await;
    assert!(ctx.graceful_restart.is_none());
    speaker.shutdown_for_restart(Some("restart")).await;
    let (notifications, closed) = until_close(&mut s, &ctx).await;
    assert_eq!(notifications, vec![(6, 2)]);
    assert!(closed);
}

/// The peer announces `prefixes` (next hop 192.0.2.1), then End-of-RIB.
async fn announce_then_eor(s: &mut TcpStream, ctx: &SessionContext, prefixes: &[&str]) {
    send(s, &update_of(prefixes), ctx).await;
    send(s, &Message::EndOfRib(AddressFamily::Ipv4Unicast), ctx).await;
}

/// Learned/withdrawn events until nothing arrives for `quiet`: (learned, withdrawn).
async fn rib_events(
    events: &mut UnboundedReceiver<SpeakerEvent>,
    quiet: Duration,
) -> (Vec<IpNet>, Vec<IpNet>) {
    let (mut learned, mut withdrawn) = (Vec::new(), Vec::new());
    while let Ok(Some(ev)) = tokio::time::timeout(quiet, events.recv()).await {
        match ev {
            SpeakerEvent::RouteLearned { prefix, .. } => learned.push(prefix),
            SpeakerEvent::RouteWithdrawn { prefix, .. } => withdrawn.push(prefix),
            _ => {}
        }
    }
    learned.sort();
    withdrawn.sort();
    (learned, withdrawn)
}

fn graceful_open_with(restart_time: u16, forwarding: bool) -> Open {
    let mut o = peer_open();
    o.capabilities.push(Capability::GracefulRestart {
        restarting: false,
        restart_time,
        families: vec![(AddressFamily::Ipv4Unicast, forwarding)],
    });
    o
}

fn nets(v: &[&str]) -> Vec<IpNet> {
    let mut v: Vec<IpNet> = v.iter().map(|p| p.parse().unwrap()).collect();
    v.sort();
    v
}

/// A speaker offering graceful restart, peered with a scripted peer offering it too
/// (`restart_time`, F for IPv4), which announced `prefixes` and End-of-RIB.
struct GrSession {
    listener: TcpListener,
    speaker: Speaker,
    events: UnboundedReceiver<SpeakerEvent>,
    stream: TcpStream,
}

async fn gr_session(restart_time: u16, prefixes: &[&str]) -> GrSession {
    let (listener, speaker, mut events, mut cfg) = setup().await;
    cfg.graceful_restart = Some(30);
    speaker.add_peer(cfg).expect("add");
    let (mut stream, ctx, _) =
        handshake_with(&listener, graceful_open_with(restart_time, true)).await;
    announce_then_eor(&mut stream, &ctx, prefixes).await;
    let (learned, _) = rib_events(&mut events, Duration::from_millis(300)).await;
    assert_eq!(learned.len(), prefixes.len());
    GrSession {
        listener,
        speaker,
        events,
        stream,
    }
}

/// The scripted peer's announcement of `prefixes` (next hop 192.0.2.1).
fn update_of(prefixes: &[&str]) -> Message {
    Message::Update(ferrolb_bgp::wire::Update {
        attributes: Some(PathAttributes::default()),
        next_hop: Some(ferrolb_bgp::wire::NextHop::V4(Ipv4Addr::new(192, 0, 2, 1))),
        announced: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
        ..Default::default()
    })
}

#[tokio::test]
async fn helper_keeps_a_restarting_peers_routes_until_its_end_of_rib() {
    let GrSession {
        listener,
        speaker,
        mut events,
        stream: s,
    } = gr_session(30, &["10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24"]).await;

    // The peer restarts: the TCP connection ends without a NOTIFICATION. Nothing is
    // withdrawn while it is away.
    drop(s);
    let (mut s, ctx, _) = handshake_with(&listener, graceful_open_with(30, true)).await;
    let (_, withdrawn) = rib_events(&mut events, Duration::from_millis(300)).await;
    assert!(withdrawn.is_empty(), "kept while restarting: {withdrawn:?}");
    // Back, it sends two of the three again: at its End-of-RIB the third goes, only it.
    announce_then_eor(&mut s, &ctx, &["10.1.0.0/24", "10.2.0.0/24"]).await;
    let (_, withdrawn) = rib_events(&mut events, Duration::from_millis(500)).await;
    assert_eq!(withdrawn, nets(&["10.3.0.0/24"]));
    // A second End-of-RIB changes nothing.
    send(&mut s, &Message::EndOfRib(AddressFamily::Ipv4Unicast), &ctx).await;
    let (_, withdrawn) = rib_events(&mut events, Duration::from_millis(300)).await;
    assert!(withdrawn.is_empty(), "{withdrawn:?}");
    speaker.shutdown(None).await;
}

#[tokio::test]
async fn helper_drops_stale_routes_after_the_restart_time_or_at_once_when_it_must() {
    // Restart time 2 s and the peer never comes back (its address refuses connections).
    let GrSession {
        listener,
        speaker,
        mut events,
        stream,
    } = gr_session(2, &["10.1.0.0/24", "10.2.0.0/24"]).await;
    let t0 = Instant::now();
    drop(stream);
    drop(listener);
    // (A fixed window: the reconnect attempts' state events keep coming.)
    let window = tokio::time::sleep(Duration::from_millis(1200));
    tokio::pin!(window);
    loop {
        tokio::select! {
            () = &mut window => break,
            ev = events.recv() => if let Some(SpeakerEvent::RouteWithdrawn { prefix, .. }) = ev {
                panic!("{prefix} withdrawn after {:?}, within the restart time", t0.elapsed());
            },
        }
    }
    let mut withdrawn = Vec::new();
    while withdrawn.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
            Ok(Some(SpeakerEvent::RouteWithdrawn { prefix, .. })) => withdrawn.push(prefix),
            Ok(Some(_)) => {}
            _ => panic!("stale routes not withdrawn after the restart time: {withdrawn:?}"),
        }
    }
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "withdrawn after {took:?}, restart time 2 s"
    );
    speaker.shutdown(None).await;

    // Restart time 0 (nonsense): no helper mode, withdrawn at once.
    let mut g = gr_session(0, &["10.1.0.0/24"]).await;
    drop(g.stream);
    let (_, withdrawn) = rib_events(&mut g.events, Duration::from_millis(500)).await;
    assert_eq!(withdrawn, nets(&["10.1.0.0/24"]));
    drop(g.listener);
    g.speaker.shutdown(None).await;

    // Back without the forwarding bit: its stale routes go at once, before any End-of-RIB.
    let mut g = gr_session(30, &["10.1.0.0/24"]).await;
    drop(g.stream);
    let (_s, _ctx, _) = handshake_with(&g.listener, graceful_open_with(30, false)).await;
    let (_, withdrawn) = rib_events(&mut g.events, Duration::from_millis(500)).await;
    assert_eq!(withdrawn, nets(&["10.1.0.0/24"]));
    g.speaker.shutdown(None).await;
}

#[tokio::test]
async fn helper_waits_for_end_of_rib_no_longer_than_the_restart_time() {
    let GrSession {
        listener,
        speaker,
        mut events,
        stream,
    } = gr_session(2, &["10.1.0.0/24", "10.2.0.0/24"]).await;
    drop(stream);
    // Back, sends one route again but never an End-of-RIB: the other goes after the
    // restart time, the refreshed one stays.
    let (mut s, ctx, _) = handshake_with(&listener, graceful_open_with(2, true)).await;
    send(&mut s, &update_of(&["10.1.0.0/24"]), &ctx).await;
    let (_, withdrawn) = rib_events(&mut events, Duration::from_secs(4)).await;
    assert_eq!(withdrawn, nets(&["10.2.0.0/24"]));
    speaker.shutdown(None).await;
}

#[tokio::test]
async fn two_speakers_colliding_end_with_one_session_and_exchange_routes() {
    // Both sides connect to each other at the same time on loopback addresses.
    let a_ip: IpAddr = "127.0.0.1".parse().unwrap();
    let b_ip: IpAddr = "127.0.0.2".parse().unwrap();
    let (a, mut a_events) = Speaker::new(SpeakerConfig {
        router_id: Ipv4Addr::new(10, 0, 0, 1),
        listen: Some(SocketAddr::new(a_ip, 0)),
    })
    .expect("speaker a");
    let (b, mut b_events) = Speaker::new(SpeakerConfig {
        router_id: Ipv4Addr::new(10, 0, 0, 2),
        listen: Some(SocketAddr::new(b_ip, 0)),
    })
    .expect("speaker b");
    let (a_port, b_port) = (
        a.listen_addr().expect("a").port(),
        b.listen_addr().expect("b").port(),
    );
    let mut to_b = PeerConfig::new(b_ip, 65001, 65002);
    to_b.port = b_port;
    to_b.source_address = Some(a_ip);
    to_b.families = vec![AddressFamily::Ipv4Unicast];
    let mut to_a = PeerConfig::new(a_ip, 65002, 65001);
    to_a.port = a_port;
    to_a.source_address = Some(b_ip);
    to_a.families = vec![AddressFamily::Ipv4Unicast];
    a.set_desired(PeerSelector::All, routes(&["10.9.0.1/32"], None))
        .expect("desired");
    a.add_peer(to_b).expect("a adds b");
    b.add_peer(to_a).expect("b adds a");

    let learned = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(SpeakerEvent::RouteLearned { prefix, .. }) = b_events.recv().await {
                break prefix;
            }
        }
    })
    .await
    .expect("b learns a's route");
    assert_eq!(learned, "10.9.0.1/32".parse::<IpNet>().unwrap());
    // The session stays up: no flapping between the two connections.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for s in [&a, &b] {
        let st = s.peer_status();
        assert_eq!(st[0].state, State::Established, "{st:?}");
        assert!(
            st[0].uptime.expect("uptime") >= Duration::from_millis(1400),
            "{st:?}"
        );
    }
    // Exactly one TCP session: the kept connection was initiated by the higher
    // identifier (b, 10.0.0.2), so a's end of it is a's listening socket.
    let a_local = a.peer_status()[0].local_address.expect("local");
    assert_eq!(
        a_local,
        SocketAddr::new(a_ip, a_port),
        "a accepted b's connection"
    );
    while let Ok(ev) = a_events.try_recv() {
        if let SpeakerEvent::PeerStateChanged {
            from: State::Established,
            ..
        } = ev
        {
            panic!("session flapped: {ev:?}");
        }
    }
    a.shutdown(None).await;
    b.shutdown(None).await;
}

#[tokio::test]
async fn route_refresh_resends_the_family_and_end_of_rib() {
    let (listener, speaker, _events, cfg) = setup().await;
    speaker
        .set_desired(
            PeerSelector::All,
            routes(&["10.2.0.1/32", "10.2.0.2/32"], None),
        )
        .expect("desired");
    speaker.add_peer(cfg).expect("add");
    let (mut s, ctx) = handshake(&listener).await;
    let quiet = Duration::from_millis(300);
    let (ann, _, eor) = collect_updates(&mut s, &ctx, quiet).await;
    assert_eq!((ann.len(), eor), (2, 1));
    send(
        &mut s,
        &Message::RouteRefresh(AddressFamily::Ipv4Unicast),
        &ctx,
    )
    .await;
    let (ann, wd, eor) = collect_updates(&mut s, &ctx, quiet).await;
    assert_eq!(
        ann,
        vec![
            "10.2.0.1/32".parse::<IpNet>().unwrap(),
            "10.2.0.2/32".parse().unwrap()
        ]
    );
    assert!(wd.is_empty());
    assert_eq!(eor, 1);
    speaker.shutdown(None).await;
}
