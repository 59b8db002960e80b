//! `ferrolb-bfd-bench`: run N BFD sessions with the ferrolb-bgp engine, wait until all are
//! Up, then report this process's CPU time (from `/proc/self/stat`) over a measuring
//! window, and whether every session stayed Up. One JSON object per line on stdout.
//!
//! ```text
//! ferrolb-bfd-bench --session 10.0.0.1,10.0.0.101 --session 10.0.0.2,10.0.0.102 \
//!     --interval-ms 50 --multiplier 3 --measure-s 20
//! ```
//!
//! Single-threaded runtime, as `ferrolb-speaker` runs, so the number is what the speaker
//! pays for BFD.

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use ferrolb_bgp::bfd::session::SessionConfig;
use ferrolb_bgp::bfd::{Bfd, BfdConfig, PeerSpec, SessionState};

#[derive(Parser, Debug)]
#[command(about = "Run BFD sessions and measure their CPU cost")]
struct Args {
    /// `PEER,LOCAL` address pair of one single-hop session (repeat).
    #[arg(long = "session", value_parser = parse_pair, required = true)]
    sessions: Vec<(IpAddr, IpAddr)>,
    /// Desired Min TX and Required Min RX (ms).
    #[arg(long, default_value_t = 50)]
    interval_ms: u64,
    /// Detect multiplier.
    #[arg(long, default_value_t = 3)]
    multiplier: u8,
    /// How long all sessions may take to come Up.
    #[arg(long, default_value_t = 30)]
    up_timeout_s: u64,
    /// Length of the measuring window.
    #[arg(long, default_value_t = 20)]
    measure_s: u64,
}

fn parse_pair(s: &str) -> Result<(IpAddr, IpAddr), String> {
    let (a, b) = s
        .split_once(',')
        .ok_or_else(|| format!("{s:?}: expected PEER,LOCAL"))?;
    Ok((
        a.parse().map_err(|e| format!("{a:?}: {e}"))?,
        b.parse().map_err(|e| format!("{b:?}: {e}"))?,
    ))
}

/// utime + stime of this process, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| f.get(*i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    ticks as f64 / hz as f64
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let (bfd, _events) = match Bfd::new(BfdConfig::default()) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let interval = Duration::from_millis(args.interval_ms);
    for (peer, local) in &args.sessions {
        let spec = PeerSpec {
            local: Some(*local),
            session: SessionConfig {
                desired_min_tx: interval,
                required_min_rx: interval,
                detect_mult: args.multiplier,
                ..SessionConfig::default()
            },
            ..PeerSpec::single_hop(*peer)
        };
        if let Err(e) = bfd.set_peer(spec) {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    }
    let n = args.sessions.len();
    let all_up = |bfd: &Bfd| {
        let s = bfd.status();
        s.len() == n
            && s.iter()
                .all(|s| s.state == SessionState::Up && !s.negotiated.polling)
    };
    let start = Instant::now();
    while !all_up(&bfd) {
        if start.elapsed() > Duration::from_secs(args.up_timeout_s) {
            let up = bfd
                .status()
                .iter()
                .filter(|s| s.state == SessionState::Up)
                .count();
            println!(r#"{{"event":"timeout","up":{up},"sessions":{n}}}"#);
            return ExitCode::FAILURE;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        r#"{{"event":"up","sessions":{n},"after_s":{:.3}}}"#,
        start.elapsed().as_secs_f64()
    );
    let totals = |bfd: &Bfd| {
        bfd.status().iter().fold((0u64, 0u64, 0u64), |acc, s| {
            (
                acc.0 + s.control_packets_in,
                acc.1 + s.control_packets_out,
                acc.2 + s.session_down_events,
            )
        })
    };
    let (in0, out0, down0) = totals(&bfd);
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(Duration::from_secs(args.measure_s)).await;
    let (cpu1, wall) = (cpu_seconds(), t0.elapsed().as_secs_f64());
    let (in1, out1, down1) = totals(&bfd);
    let still_up = all_up(&bfd);
    println!(
        r#"{{"event":"measured","sessions":{n},"interval_ms":{},"multiplier":{},"wall_s":{wall:.3},"cpu_s":{:.3},"cpu_percent":{:.3},"packets_in":{},"packets_out":{},"down_events":{},"all_up":{still_up}}}"#,
        args.interval_ms,
        args.multiplier,
        cpu1 - cpu0,
        100.0 * (cpu1 - cpu0) / wall,
        in1 - in0,
        out1 - out0,
        down1 - down0,
    );
    bfd.shutdown().await;
    if still_up && down1 == down0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
