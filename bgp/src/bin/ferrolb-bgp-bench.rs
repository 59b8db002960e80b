//! `ferrolb-bgp-bench`: announce N /32s to one peer and report how long it took.
//!
//! Reports time to Established, time from Established until the initial table and
//! End-of-RIB were written to the socket, and peak RSS. Optionally withdraws
//! everything after a delay. Stays up (`--hold-secs`) so the receiver can be measured,
//! then shuts down with a Cease. One JSON object per line on stdout.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use ferrolb_bgp::fsm::State;
use ferrolb_bgp::session::{
    PeerConfig, PeerSelector, RouteSpec, Speaker, SpeakerConfig, SpeakerEvent,
};
use ferrolb_bgp::wire::{AddressFamily, LargeCommunity, PathAttributes};
use ipnet::{IpNet, Ipv4Net};

#[derive(Parser, Debug)]
#[command(about = "Announce N /32 routes to a BGP peer and time it")]
struct Args {
    /// Peer address.
    #[arg(long)]
    peer: IpAddr,
    /// Peer port.
    #[arg(long, default_value_t = 179)]
    peer_port: u16,
    /// Peer AS.
    #[arg(long)]
    peer_as: u32,
    /// Our AS.
    #[arg(long)]
    local_as: u32,
    /// Our BGP identifier.
    #[arg(long)]
    router_id: Ipv4Addr,
    /// Source address of the connection.
    #[arg(long)]
    source: Option<IpAddr>,
    /// Wait for the peer to connect instead of connecting.
    #[arg(long)]
    passive: bool,
    /// Listen port (with --passive; also accepts inbound connections otherwise).
    #[arg(long)]
    port: Option<u16>,
    /// Number of /32 prefixes.
    #[arg(long, default_value_t = 1000)]
    prefixes: u32,
    /// First prefix.
    #[arg(long, default_value = "10.0.0.0")]
    base: Ipv4Addr,
    /// Communities, e.g. 64512:100,64512:200.
    #[arg(long, value_delimiter = ',')]
    communities: Vec<String>,
    /// Large communities, e.g. 64512:1:2.
    #[arg(long, value_delimiter = ',')]
    large_communities: Vec<String>,
    /// Hold time we propose.
    #[arg(long, default_value_t = 90)]
    hold_time: u16,
    /// TCP MD5 password.
    #[arg(long)]
    password: Option<String>,
    /// Withdraw everything this many seconds after End-of-RIB was sent.
    #[arg(long)]
    withdraw_after: Option<f64>,
    /// Withdraw everything when SIGUSR1 arrives (after End-of-RIB was sent).
    #[arg(long)]
    withdraw_on_signal: bool,
    /// Stay up this many seconds after the last step, then shut down.
    #[arg(long, default_value_t = 5.0)]
    hold_secs: f64,
    /// Give up if not Established within this many seconds.
    #[arg(long, default_value_t = 60.0)]
    timeout_secs: f64,
}

fn parse_community(s: &str) -> Result<u32, String> {
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| format!("community {s:?}: expected a:b"))?;
    let a: u16 = a.parse().map_err(|e| format!("community {s:?}: {e}"))?;
    let b: u16 = b.parse().map_err(|e| format!("community {s:?}: {e}"))?;
    Ok(u32::from(a) << 16 | u32::from(b))
}

fn parse_large(s: &str) -> Result<LargeCommunity, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let [g, l1, l2] = parts.as_slice() else {
        return Err(format!("large community {s:?}: expected a:b:c"));
    };
    let p = |x: &str| {
        x.parse::<u32>()
            .map_err(|e| format!("large community {s:?}: {e}"))
    };
    Ok(LargeCommunity {
        global: p(g)?,
        local1: p(l1)?,
        local2: p(l2)?,
    })
}

/// Peak and current resident set size in KiB, from /proc/self/status.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn routes(args: &Args) -> Result<BTreeMap<IpNet, RouteSpec>, String> {
    let attrs = Arc::new(PathAttributes {
        communities: args
            .communities
            .iter()
            .map(|c| parse_community(c))
            .collect::<Result<_, _>>()?,
        large_communities: args
            .large_communities
            .iter()
            .map(|c| parse_large(c))
            .collect::<Result<_, _>>()?,
        ..PathAttributes::default()
    });
    let base = u32::from(args.base);
    (0..args.prefixes)
        .map(|i| {
            let ip = Ipv4Addr::from(
                base.checked_add(i)
                    .ok_or_else(|| "prefix range overflows".to_string())?,
            );
            let net = Ipv4Net::new(ip, 32).map_err(|e| e.to_string())?;
            Ok((IpNet::V4(net), RouteSpec::self_next_hop(attrs.clone())))
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

async fn run(args: Args) -> Result<(), String> {
    let start = Instant::now();
    // Installed first: SIGUSR1's default action would kill us.
    let mut usr1 = if args.withdraw_on_signal {
        Some(
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
                .map_err(|e| format!("cannot handle SIGUSR1: {e}"))?,
        )
    } else {
        None
    };
    let listen = match (args.passive, args.port) {
        (_, Some(p)) => Some(SocketAddr::new(IpAddr::from([0u8; 16]), p)),
        (true, None) => Some(SocketAddr::new(IpAddr::from([0u8; 16]), 179)),
        (false, None) => None,
    };
    let (speaker, mut events) = Speaker::new(SpeakerConfig {
        router_id: args.router_id,
        listen,
    })
    .map_err(|e| e.to_string())?;
    let table = routes(&args)?;
    let count = table.len();
    speaker
        .set_desired(PeerSelector::All, table)
        .map_err(|e| e.to_string())?;
    let mut peer = PeerConfig::new(args.peer, args.local_as, args.peer_as);
    peer.port = args.peer_port;
    peer.source_address = args.source;
    peer.passive = args.passive;
    peer.hold_time = args.hold_time;
    peer.password = args.password.clone();
    peer.families = vec![AddressFamily::Ipv4Unicast];
    speaker.add_peer(peer).map_err(|e| e.to_string())?;

    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(args.timeout_secs);
    let mut established: Option<Instant> = None;
    loop {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| "timed out waiting for the session".to_string())?
            .ok_or("speaker stopped")?;
        match ev {
            SpeakerEvent::PeerStateChanged {
                to: State::Established,
                ..
            } => {
                let now = Instant::now();
                established = Some(now);
                println!(
                    "{{\"event\":\"established\",\"since_start_ms\":{}}}",
                    ms(now - start)
                );
            }
            SpeakerEvent::PeerStateChanged {
                from: State::Established,
                reason,
                ..
            } => {
                return Err(format!("session went down: {}", reason.unwrap_or_default()));
            }
            SpeakerEvent::EndOfRibSent { prefixes, .. } => {
                let now = Instant::now();
                let est = established.unwrap_or(now);
                let (hwm, rss) = rss_kib();
                println!(
                    "{{\"event\":\"end_of_rib_sent\",\"prefixes\":{prefixes},\"requested\":{count},\"after_established_ms\":{},\"peak_rss_kib\":{hwm},\"rss_kib\":{rss}}}",
                    ms(now - est)
                );
                break;
            }
            _ => {}
        }
    }
    let withdraw = match (&mut usr1, args.withdraw_after) {
        (Some(sig), _) => {
            sig.recv().await;
            true
        }
        (None, Some(secs)) => {
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            true
        }
        (None, None) => false,
    };
    if withdraw {
        let t = Instant::now();
        speaker
            .set_desired(PeerSelector::All, BTreeMap::new())
            .map_err(|e| e.to_string())?;
        // Wait until the peer task has processed it (its counter drops to zero).
        while speaker
            .peer_status()
            .iter()
            .any(|s| s.prefixes_announced > 0)
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        println!(
            "{{\"event\":\"withdrawn\",\"queued_ms\":{}}}",
            ms(t.elapsed())
        );
    }
    tokio::time::sleep(Duration::from_secs_f64(args.hold_secs)).await;
    let (hwm, rss) = rss_kib();
    let status = speaker.peer_status();
    let sent = status.first().map_or(0, |s| s.updates_sent);
    println!(
        "{{\"event\":\"done\",\"updates_sent\":{sent},\"peak_rss_kib\":{hwm},\"rss_kib\":{rss}}}"
    );
    speaker.shutdown(Some("benchmark finished")).await;
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferrolb-bgp-bench: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrolb-bgp-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
